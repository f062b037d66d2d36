"""End to end in a real terminal: tmux runs ``rtstation`` (python -m rtstation_tui) on a temporary config, DCMTK
storescu sends plan B1, the tree shows it, keys select it, open the send dialog, pick the storescp node QA and
confirm; storescp receives the bundle and the tree says "QA: done". Then the terminal goes away (SIGHUP) and the
console stops cleanly. tmux is a required peer (installed by ``make test``): missing is a failure, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from helpers import BREAST, free_port, station_toml, storescu, wait_for, write_config
from peers import StoreSCP

TMUX = "/usr/bin/tmux"


class Tmux:
    """One private tmux server (own socket) running one command in a 100x30 window."""

    def __init__(self, socket: Path) -> None:
        if not Path(TMUX).exists():
            raise AssertionError(f"tmux missing at {TMUX}: run `make test` (it installs the peers)")
        self.socket = str(socket)
        self.pid: int | None = None

    def run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([TMUX, "-S", self.socket, *args], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def start(self, command: list[str], env: dict[str, str]) -> int:
        exports = [f"{k}={v}" for k, v in env.items()]
        # the window gets its size first, the console starts after (else it may start at 80x24 and be resized)
        self.run("-f", "/dev/null", "new-session", "-d", "-x", "100", "-y", "30", "-s", "rt", "cat")
        self.run("set-option", "-g", "window-size", "manual")  # no client attached: never fall back to 80x24
        self.run("set-option", "-g", "default-size", "100x30")
        self.run("resize-window", "-t", "rt", "-x", "100", "-y", "30")
        wait_for(lambda: self.run("display", "-p", "-t", "rt", "#{pane_width}x#{pane_height}").strip() == "100x30",
                 10, what="tmux pane of 100x30")
        # -u: a COLUMNS/LINES inherited from the test runner would override the pty's real size
        self.run("respawn-pane", "-k", "-t", "rt", "env", "-u", "COLUMNS", "-u", "LINES", *exports, *command)
        self.pid = int(self.run("list-panes", "-t", "rt", "-F", "#{pane_pid}").split()[0])
        return self.pid

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "rt", check=False)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "rt", *keys)

    def kill(self) -> None:
        self.run("kill-server", check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    yield t
    t.kill()  # SIGHUP to the console; a failed test must not leave it running either
    if t.pid is not None:
        try:
            wait_for(lambda: not alive(t.pid), 40, what="the console to exit after its terminal went away")
        finally:
            if alive(t.pid):
                os.kill(t.pid, 9)


@pytest.fixture
def qa(tmp_path: Path) -> Iterator[StoreSCP]:
    scp = StoreSCP(tmp_path / "qa").start()
    yield scp
    scp.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by tmux) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_console_in_tmux_receives_b1_sends_it_and_survives_sighup(tmp_path: Path, tmux: Tmux, qa: StoreSCP) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    qa_port = qa.port
    config = write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port, extra=(
        f'[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {qa_port}\n')))
    pid = tmux.start([sys.executable, "-m", "rtstation_tui", "--config", str(config)],
                     {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none", "PYTHONPATH": os.getcwd()})
    wait_for(lambda: "listening" in tmux.screen(), 30, what=f"console listening; screen:\n{tmux.screen()}")

    storescu(port, BREAST)
    wait_for(lambda: "123456" in tmux.screen(), 20, what="patient 123456 in the tree")
    tmux.keys("Enter")  # the cursor is on the only patient: open it
    wait_for(lambda: "B1" in tmux.screen(), 20, what=f"plan B1 in the tree; screen:\n{tmux.screen()}")
    tmux.keys("Down")
    wait_for(lambda: "txmachine" in tmux.screen() and "Fractions" in tmux.screen(), 20,
             what=f"details of B1; screen:\n{tmux.screen()}")
    assert "UNAPPROVED" in tmux.screen()
    wait_for(lambda: "today 4 received" in tmux.screen(), 20, what=f"status line; screen:\n{tmux.screen()}")

    tmux.keys("s")
    wait_for(lambda: "Send 1 plan" in tmux.screen(), 20, what=f"send dialog; screen:\n{tmux.screen()}")
    assert "1 CT, 1 RTSTRUCT, 1 RTPLAN, 1 RTDOSE = 4 objects" in tmux.screen()
    tmux.keys("Space")  # choose QA (the first node)
    wait_for(lambda: "Chosen: QA" in tmux.screen(), 10, what=f"QA chosen; screen:\n{tmux.screen()}")
    tmux.keys("Enter")
    wait_for(lambda: len(qa.files()) == 4, 30,
             what=f"storescp to receive the 4 objects of B1; screen:\n{tmux.screen()}\nlog:\n"
                  f"{(data_dir / 'logs' / 'rtstation.log').read_text()[-3000:]}")
    wait_for(lambda: "QA: done" in tmux.screen(), 20, what=f"'QA: done' in the tree; screen:\n{tmux.screen()}")
    # the bar itself (100%) is checked in-process: test_tui_live.py::test_send_to_storescp_progress_reaches_100

    tmux.kill()  # the terminal goes away: SIGHUP
    wait_for(lambda: not alive(pid), 40, what="the console to exit after SIGHUP")
    log = (data_dir / "logs" / "rtstation.log").read_text()
    assert "SIGHUP: stopping" in log and "receiver stopped" in log and "terminal lost: station stopped" in log
