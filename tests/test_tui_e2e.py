"""End to end in a real terminal: tmux runs ``rtstation`` (python -m rtstation_tui) on a temporary config, DCMTK
storescu sends plan B1, the tree shows it, keys select it; then the terminal goes away (SIGHUP) and the console
stops cleanly. tmux is a required peer (installed by ``make test``): missing is a failure, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from helpers import BREAST, free_port, station_toml, storescu, wait_for, write_config

TMUX = "/usr/bin/tmux"


class Tmux:
    """One private tmux server (own socket) running one command in a 100x30 window."""

    def __init__(self, socket: Path) -> None:
        if not Path(TMUX).exists():
            raise AssertionError(f"tmux missing at {TMUX}: run `make test` (it installs the peers)")
        self.socket = str(socket)

    def run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([TMUX, "-S", self.socket, *args], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def start(self, command: list[str], env: dict[str, str]) -> int:
        exports = [f"{k}={v}" for k, v in env.items()]
        self.run("-f", "/dev/null", "new-session", "-d", "-x", "100", "-y", "30", "-s", "rt",
                 "env", *exports, *command)
        return int(self.run("list-panes", "-t", "rt", "-F", "#{pane_pid}").split()[0])

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
    t.kill()


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


def test_console_in_tmux_receives_b1_selects_it_and_survives_sighup(tmp_path: Path, tmux: Tmux) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    qa_port = free_port()
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
    screen = tmux.screen()
    assert "UNAPPROVED" in screen and "today 4 received" in screen

    # TODO(issue 6, after the sender lands on main): start DCMTK storescp on qa_port as node QA, press "s",
    # choose QA with Space, confirm with Enter, wait until storescp has received the bundle's 4 files and the
    # progress bar showed 100% (the node's tree label says "QA: done").

    tmux.kill()  # the terminal goes away: SIGHUP
    wait_for(lambda: not alive(pid), 40, what="the console to exit after SIGHUP")
    log = (data_dir / "logs" / "rtstation.log").read_text()
    assert "SIGHUP: stopping" in log and "receiver stopped" in log
