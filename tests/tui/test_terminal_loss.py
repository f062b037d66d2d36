"""[HARDEN2] 2: the console loses its terminal (tmux kill-session, an SSH drop) in the middle of a receive.

Before the fix the receiver stopped, then the process never exited: Textual's input thread looped on ``read(0)``
returning EOF (a core spinning), SIGTERM was ignored and the data_dir lock stayed held, so ``rtstation serve`` could
not start. Required: the process exits within a few seconds, in-flight stores finished (everything storescu was told
was stored is in the store), the lock released, nothing left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from helpers import PEER_ENV, Serve, dcmtk, free_port, station_toml, stored_files, wait_for, write_config
from test_tui_e2e import Tmux, alive, tmux  # noqa: F401  (tmux is a fixture)

from rtstation_tui.synthetic import make_ct_bulk

COUNT = 2000  # small CT (64 x 64): more than the ~1 s that open associations may go on after the loss
EXIT_WITHIN = 3.0  # s after the terminal goes away (the requirement is 2 s; slack for a loaded 2-core machine)


def acknowledged(log: str) -> list[str]:
    """Files storescu sent and got a Success response for (``-v`` output)."""
    done, current = [], None
    for line in log.splitlines():
        if m := re.match(r"I: Sending file: (.*)$", line):
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current is not None:
            done.append(current)
            current = None
    return done


def stored_uids(data_dir: Path) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            for p in stored_files(data_dir)}


def leftovers(marker: str) -> list[str]:
    """Processes still running whose command line names ``marker`` (the test's config path)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(f"{d.name}: {cmd}")
    return found


@pytest.mark.parametrize("stop_signal", [None, signal.SIGTERM], ids=["terminal-only", "then-sigterm"])
def test_console_exits_cleanly_when_its_terminal_dies_mid_receive(tmp_path: Path, tmux: Tmux,  # noqa: F811
                                                                   stop_signal: int | None) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    config = write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port))
    files = make_ct_bulk(tmp_path / "bulk", COUNT, rows=64, cols=64)
    pid = tmux.start([sys.executable, "-m", "rtstation_tui", "--config", str(config)],
                     {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none", "PYTHONPATH": os.getcwd()})
    wait_for(lambda: "listening" in tmux.screen(), 30, what=f"console listening; screen:\n{tmux.screen()}")

    out = tmp_path / "storescu.out"
    with open(out, "wb") as fh:
        sender = subprocess.Popen([dcmtk("storescu"), "-v", "-aet", "ECLIPSE", "-aec", "RTSTATION", "127.0.0.1",
                                   str(port), *map(str, files)], env=PEER_ENV, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(acknowledged(out.read_text())) >= 20 or sender.poll() is not None, 30,
                 interval=0.01, what="the receive under way")
        tmux.run("kill-session", "-t", "rt")  # the terminal goes away in the middle of the receive
        lost = time.monotonic()
        assert sender.poll() is None, "storescu finished before the terminal was killed: not a mid-receive test"
        if stop_signal is not None:
            os.kill(pid, stop_signal)
        wait_for(lambda: not alive(pid), 30, interval=0.02, what="the console to exit after losing its terminal")
        took = time.monotonic() - lost
        assert took < EXIT_WITHIN, f"the console took {took:.1f} s to exit after losing its terminal"
        sender.wait(30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()

    done = acknowledged(out.read_text())
    assert 20 <= len(done) < COUNT
    uid_of = {str(f): str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    missing = {uid_of[f] for f in done} - stored_uids(data_dir)
    assert not missing, f"{len(missing)} of {len(done)} acknowledged instances are not in the store"
    log = (data_dir / "logs" / "rtstation.log").read_text()
    assert "receiver stopped" in log
    assert not leftovers(str(config)), leftovers(str(config))

    server = Serve(config, tmp_path / "serve.log").start()  # the data_dir lock was released
    try:
        assert server.stop() == 0
    finally:
        server.kill()
