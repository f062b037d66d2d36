"""[ATTACH] (after [HARDEN2] 2): the console that runs the station loses its terminal (tmux kill-session, an SSH
drop) in the middle of a receive, and the station goes on headless.

Before [HARDEN2] the process hung for ever (Textual's input thread spinning on EOF, SIGTERM ignored, the data_dir
lock held); [HARDEN2] made it exit cleanly; now "losing the terminal never stops receiving": the receive goes on to
the end, every instance storescu got a Success for is stored, the process idles (no CPU spent on a screen nobody
sees), answers C-ECHO, serves the API (the next ``rtstation`` attaches and shows the plan), and ``rtstation stop``
or SIGTERM ends it within seconds, releasing the lock.
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

from apiclient import curl
from helpers import (BREAST, PEER_ENV, Serve, dcmtk, echoscu, free_port, rtstation, station_toml, stored_files,
                     storescu, wait_for, write_config)
from test_tui_e2e import Tmux, alive, tmux  # noqa: F401  (tmux is a fixture)

from rtstation_tui.synthetic import make_ct_bulk

COUNT = 600  # small CT (64 x 64): the receive is still under way when the terminal goes
STOP_WITHIN = 5.0  # s from `rtstation stop` / SIGTERM to the process gone (idle station; slack for 2 loaded cores)
IDLE_CPU_S = 0.2  # CPU seconds a headless station may spend in IDLE_WINDOW_S with nothing arriving
IDLE_WINDOW_S = 3.0
ENV = {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none", "PYTHONPATH": os.getcwd()}


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("stop_with", ["rtstation-stop", "sigterm"])
def test_losing_the_terminal_mid_receive_leaves_the_station_running_headless(tmp_path: Path, tmux: Tmux,  # noqa: F811
                                                                            stop_with: str) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    config = write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port))
    files = make_ct_bulk(tmp_path / "bulk", COUNT, rows=64, cols=64)
    pid = tmux.start([sys.executable, "-m", "rtstation_tui", "--config", str(config)], ENV)
    wait_for(lambda: "listening" in tmux.screen(), 30, what=f"console listening; screen:\n{tmux.screen()}")

    out = tmp_path / "storescu.out"
    with open(out, "wb") as fh:
        sender = subprocess.Popen([dcmtk("storescu"), "-v", "-aet", "ECLIPSE", "-aec", "RTSTATION", "127.0.0.1",
                                   str(port), *map(str, files)], env=PEER_ENV, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(acknowledged(out.read_text())) >= 20 or sender.poll() is not None, 30,
                 interval=0.01, what="the receive under way")
        tmux.run("kill-session", "-t", "rt")  # the terminal goes away in the middle of the receive
        assert sender.poll() is None, "storescu finished before the terminal was killed: not a mid-receive test"
        assert sender.wait(120) == 0  # the receive went on to its end
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()

    done = acknowledged(out.read_text())
    assert len(done) == COUNT
    uid_of = {str(f): str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    missing = {uid_of[f] for f in done} - stored_uids(data_dir)
    assert not missing, f"{len(missing)} of {len(done)} acknowledged instances are not in the store"
    sock = data_dir / "api.sock"
    station = curl(sock, "/api/v1/status")[1]["pid"]  # the console's child (the tmux pane runs its waiting parent)
    log_file = data_dir / "logs" / "rtstation.log"
    assert f"terminal lost: station continues headless (pid {station})" in log_file.read_text()
    assert alive(station) and echoscu(port).returncode == 0
    assert storescu(port, BREAST).returncode == 0  # still receiving: a plan arrives after the loss
    wait_for(lambda: curl(sock, "/api/v1/status")[1]["counts"]["instances"] == COUNT + 4, 60,
             what="everything indexed")

    before = cpu_seconds(station) + cpu_seconds(pid)
    time.sleep(IDLE_WINDOW_S)  # a measurement window, not a wait for something to happen
    spent = cpu_seconds(station) + cpu_seconds(pid) - before
    assert spent < IDLE_CPU_S, f"the headless station spent {spent:.2f} s of CPU in {IDLE_WINDOW_S:.0f} s idle"

    again = Tmux(tmp_path / "tmux2.sock")  # the next console attaches to the headless station
    try:
        again.start([sys.executable, "-m", "rtstation_tui", "--config", str(config)], ENV)
        wait_for(lambda: f"attached pid {station}" in again.screen() and "123456" in again.screen(), 30,
                 what=f"a console attached with the plan; screen:\n{again.screen()}")
    finally:
        again.kill()

    asked = time.monotonic()
    if stop_with == "sigterm":
        os.kill(station, signal.SIGTERM)
    else:
        assert rtstation("stop", config=config).returncode == 0
    wait_for(lambda: not alive(station) and not alive(pid), 30, interval=0.02, what="the headless station to stop")
    took = time.monotonic() - asked
    assert took < STOP_WITHIN, f"the headless station took {took:.1f} s to stop"
    assert "headless station stopped" in log_file.read_text()
    assert not leftovers(str(config)), leftovers(str(config))

    server = Serve(config, tmp_path / "serve.log").start()  # the data_dir lock was released
    try:
        assert server.stop() == 0
    finally:
        server.kill()


def test_q_leave_running_gives_the_shell_back_and_the_station_goes_on(tmp_path: Path, tmux: Tmux) -> None:  # noqa: F811
    """With a rule configured, q's default is "leave running": the terminal's job ends (the shell gets its prompt
    back, told how to attach and stop), the station goes on receiving and serving, `rtstation stop` ends it."""
    port = free_port()
    data_dir = tmp_path / "var"
    config = write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port, extra=(
        '[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = 1\n\n'
        '[[rules]]\nname = "qa"\ntargets = ["QA"]\n')))
    pid = tmux.start([sys.executable, "-m", "rtstation_tui", "--config", str(config)], ENV)
    tmux.run("set-option", "-t", "rt", "remain-on-exit", "on")  # the pane keeps what the job printed last
    wait_for(lambda: "listening" in tmux.screen(), 30, what=f"console listening; screen:\n{tmux.screen()}")
    tmux.keys("q")
    wait_for(lambda: "Leave running" in tmux.screen(), 10, what=f"the quit question; screen:\n{tmux.screen()}")
    tmux.keys("Enter")  # the default with a rule configured
    wait_for(lambda: not alive(pid), 15, interval=0.02, what="the terminal's job to end")
    sock = data_dir / "api.sock"
    station = curl(sock, "/api/v1/status")[1]["pid"]
    printed = tmux.run("capture-pane", "-p", "-J", "-S", "-100", "-t", "rt")  # with the lines scrolled away
    assert f"the station goes on headless (pid {station})" in printed, printed
    assert alive(station) and echoscu(port).returncode == 0
    assert storescu(port, BREAST).returncode == 0
    assert "left running on quit: station continues headless" in (data_dir / "logs" / "rtstation.log").read_text()
    assert rtstation("stop", config=config).returncode == 0
    wait_for(lambda: not alive(station), 15, interval=0.02, what="the station to stop")
    assert not leftovers(str(config)), leftovers(str(config))
