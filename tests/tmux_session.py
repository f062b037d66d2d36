"""A private tmux server for end-to-end console tests: the console runs in a real terminal of a fixed size and the
test reads the screen as an operator would (``capture-pane``). tmux is a required peer (installed by ``make test``):
missing is a failure, not a skip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from waiting import wait_for

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

    def start(self, command: list[str], env: dict[str, str], *, cwd: Path | None = None) -> int:
        """Run ``command`` in the pane, in ``cwd`` (default: the test's own)."""
        exports = [f"{k}={v}" for k, v in env.items()]
        # the window gets its size first, the console starts after (else it may start at 80x24 and be resized)
        self.run("-f", "/dev/null", "new-session", "-d", "-x", "100", "-y", "30", "-s", "rt", "cat")
        self.run("set-option", "-g", "window-size", "manual")  # no client attached: never fall back to 80x24
        self.run("set-option", "-g", "default-size", "100x30")
        self.run("resize-window", "-t", "rt", "-x", "100", "-y", "30")
        wait_for(lambda: self.run("display", "-p", "-t", "rt", "#{pane_width}x#{pane_height}").strip() == "100x30",
                 10, what="tmux pane of 100x30")
        # -u: a COLUMNS/LINES inherited from the test runner would override the pty's real size
        where = ["-c", str(cwd)] if cwd is not None else []
        self.run("respawn-pane", "-k", *where, "-t", "rt", "env", "-u", "COLUMNS", "-u", "LINES", *exports, *command)
        self.pid = int(self.run("list-panes", "-t", "rt", "-F", "#{pane_pid}").split()[0])
        return self.pid

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "rt", check=False)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "rt", *keys)

    def kill(self) -> None:
        self.run("kill-server", check=False)


# tmux 3.3a does not always reap a pane's process (it stays a zombie, pane_dead_status stays empty): a parent of
# our own records the exit status instead
_RECORD_EXIT = ("import pathlib, subprocess, sys; "
                "pathlib.Path(sys.argv[1]).write_text(str(subprocess.call(sys.argv[2:])))")


def recording_exit(status_file: Path, command: list[str]) -> list[str]:
    """``command`` run by a small Python parent that writes its exit status to ``status_file`` when it ends."""
    return [sys.executable, "-c", _RECORD_EXIT, str(status_file), *command]


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


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    yield t
    t.kill()  # SIGHUP to the console; a failed test must not leave it running either
    if t.pid is not None:
        try:  # a console running its station goes on headless without its terminal: SIGTERM stops it
            os.kill(t.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            wait_for(lambda: not alive(t.pid), 40, what="the console to exit after its terminal went away")
        finally:
            if alive(t.pid):
                os.kill(t.pid, 9)
