"""End to end in a real terminal: tmux runs ``rtstation`` (python -m rtstation_tui) on a temporary config, DCMTK
storescu sends plan B1, the tree shows it, keys select it, open the send dialog, pick the storescp node QA and
confirm; storescp receives the bundle and the tree says "QA: done". Then the terminal goes away (SIGHUP): the
station goes on headless, and SIGTERM stops it cleanly. tmux is a required peer (installed by ``make test``): missing is a failure, not a skip.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest
from helpers import BREAST, free_port, station_toml, storescu, wait_for, write_config
from peers import StoreSCP
from tmux_session import Tmux, alive, tmux  # noqa: F401  (tmux is a fixture)


@pytest.fixture
def qa(tmp_path: Path) -> Iterator[StoreSCP]:
    scp = StoreSCP(tmp_path / "qa").start()
    yield scp
    scp.stop()


def test_console_in_tmux_receives_b1_sends_it_and_goes_headless_on_sighup(tmp_path: Path, tmux: Tmux, qa: StoreSCP) -> None:
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
    log_file = data_dir / "logs" / "rtstation.log"
    wait_for(lambda: "terminal lost: station continues headless" in log_file.read_text(), 20, what="headless")
    assert alive(pid) and "receiver stopped" not in log_file.read_text()  # the pane's process waits for the station
    os.kill(pid, signal.SIGTERM)  # handed on to the station
    wait_for(lambda: not alive(pid), 40, what="the headless station to exit after SIGTERM")
    assert "receiver stopped" in log_file.read_text() and "headless station stopped" in log_file.read_text()


def test_in_tmux_a_label_filter_sends_only_the_matching_plan(tmp_path: Path, tmux: Tmux, qa: StoreSCP) -> None:
    """[CONSOLE]: filtering ``LIVE`` once listed the patient's BIG1 too, ``j`` landed on it and ``s`` sent it."""
    import pydicom
    from tui_support import fill_plans

    from rtstation_tui.engine.config.model import load_config

    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", free_port(), extra=(
        f'[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {qa.port}\n')))
    fill_plans(load_config(config), tmp_path, [("PAT01", "DOE^JANE", "BIG1"), ("PAT01", "DOE^JANE", "LIVE"),
                                               ("PAT02", "ROE^RITA", "BIG2")])
    pid = tmux.start([sys.executable, "-m", "rtstation_tui", "--config", str(config)],
                     {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none", "PYTHONPATH": os.getcwd()})
    wait_for(lambda: "PAT02" in tmux.screen() and "listening" in tmux.screen(), 30,
             what=f"patients in the tree; screen:\n{tmux.screen()}")
    tmux.keys("/")  # as an operator: the box shows, then the label is typed into it
    wait_for(lambda: "filter: ID, name" in tmux.screen(), 20, what=f"the filter box; screen:\n{tmux.screen()}")
    tmux.keys("-l", "LIVE")
    wait_for(lambda: "PAT02" not in tmux.screen() and "LIVE" in tmux.screen(), 20,
             what=f"the filter applied; screen:\n{tmux.screen()}")
    tmux.keys("Enter")
    for key in ("j", "j", "j", "k", "k", "k", "j"):  # up and down through everything the filter lists
        tmux.keys(key)
    wait_for(lambda: "Plan      LIVE" in tmux.screen(), 20, what=f"details of LIVE; screen:\n{tmux.screen()}")
    assert "BIG1" not in tmux.screen()
    tmux.keys("s")
    wait_for(lambda: "Send 1 plan" in tmux.screen(), 20, what=f"send dialog; screen:\n{tmux.screen()}")
    assert "LIVE  patient PAT01  DOE JANE" in tmux.screen() and "BIG1" not in tmux.screen()
    tmux.keys("Space")
    wait_for(lambda: "Chosen: QA" in tmux.screen(), 10, what=f"QA chosen; screen:\n{tmux.screen()}")
    tmux.keys("Enter")
    wait_for(lambda: "QA: done" in tmux.screen(), 30, what=f"'QA: done' in the tree; screen:\n{tmux.screen()}")
    labels = {pydicom.dcmread(f, stop_before_pixels=True).get("RTPlanLabel") for f in qa.files()}
    assert labels == {None, "LIVE"} and len(qa.files()) == 5, (labels, qa.files())
    os.kill(pid, signal.SIGTERM)  # the console stops its station and exits
    wait_for(lambda: not alive(pid), 40, what="the console to exit after SIGTERM")
