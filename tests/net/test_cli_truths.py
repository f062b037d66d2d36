"""[CONSOLE] small CLI truths: what ``show``, the command-line options and ``send --wait`` say is so."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import free_port, rtstation, station_toml, write_config

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.outbound.queue import JobQueue


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RTSTATION_CONFIG"}
    return {**env, "PYTHONPATH": os.getcwd(), **extra}


def test_show_of_an_unknown_patient_says_so_and_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", free_port()))
    proc = rtstation("show", "--patient", "NOPE", config=config, check=False)
    assert proc.returncode == 1
    assert "no patient with PatientID 'NOPE'" in proc.stderr


def test_show_without_a_configuration_names_where_it_looked_and_creates_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "rtstation_tui", "show"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc
    assert "no configuration found" in proc.stderr and "./rtstation.toml" in proc.stderr
    assert "/etc/rtstation/rtstation.toml" in proc.stderr and "RTSTATION_CONFIG" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no ./var


def test_a_bad_port_on_the_command_line_is_reported_as_the_command_lines(tmp_path: Path) -> None:
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", free_port()))
    proc = rtstation("--port", "70000", "show", config=config, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("rtstation: configuration error: command line: --port 70000: 70000 is out of range")


def test_send_wait_timeout_stops_waiting_on_a_node_that_is_down_and_keeps_the_job(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tui_support import fill_plans

    extra = (f'[[nodes]]\nname = "DOWN"\nae_title = "NOBODY"\nhost = "127.0.0.1"\nport = {free_port()}\n'
             'retry = "10x1h"\n')
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", free_port(), extra=extra))
    fill_plans(load_config(config), tmp_path, [("PAT01", "DOE^JANE", "LIVE")])
    # without --timeout this waits through ten hours of retries (the subprocess timeout would fail the test)
    proc = rtstation("send", "--plan", "LIVE", "--to", "DOWN", "--wait", "--timeout", "3", config=config,
                     check=False, timeout=90)
    assert proc.returncode == 1, proc
    assert "stopped waiting after 3 s" in proc.stderr and "stay in the queue" in proc.stderr
    [job] = JobQueue(load_config(config).data_dir).jobs(active_only=True)
    assert job.state in ("waiting-retry", "queued") and job.node == "DOWN" and job.origin == "cli"


def test_timeout_without_wait_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", free_port()))
    proc = rtstation("send", "--plan", "X", "--to", "QA", "--timeout", "0", config=config, check=False)
    assert proc.returncode == 2 and "expected a number of seconds above 0" in proc.stderr


def test_every_subcommands_help_has_a_description_and_an_example() -> None:
    import argparse

    from rtstation_tui.cli import build_parser

    def walk(sub: argparse._SubParsersAction, prefix: str = ""):  # type: ignore[type-arg]
        for name, parser in sub.choices.items():
            yield f"{prefix}{name}", parser
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    yield from walk(action, f"{prefix}{name} ")

    [top] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    seen = 0
    for name, parser in walk(top):
        text = parser.format_help()
        assert parser.description and parser.description.strip(), name
        assert "\nexample:\n  rtstation " in text, (name, text[-300:])
        seen += 1
    assert seen >= 20


def test_serve_without_receiver_watches_the_folder_given_prints_its_configuration_and_a_heartbeat(tmp_path: Path) -> None:
    import shutil
    import signal
    import subprocess
    import sys

    from helpers import BREAST, echoscu, show_json, wait_for

    port = free_port()
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port, extra=(
        '[logging]\nheartbeat_minutes = 0.02\n\n'
        '[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = 11200\n')))
    incoming = tmp_path / "drop"
    incoming.mkdir()
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "serve", "--config", str(config),
                                 "--no-receiver", "--watch-folder", str(incoming)], stdout=fh,
                                stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    try:
        wait_for(lambda: "serving" in log.read_text(), 30, what="serve to start")
        text = log.read_text()
        for line in (f"configuration: {config}", "AE RTSTATION on no receiver (--no-receiver)",
                     f"data_dir {tmp_path / 'var'}", "allowed calling AEs: any", f"import folder: {incoming}",
                     "nodes: QA STORESCP@127.0.0.1:11200"):
            assert line in text, (line, text)
        assert echoscu(port).returncode != 0  # nobody listens
        for f in BREAST:
            shutil.copy(f, incoming / Path(f).name)
        wait_for(lambda: any(p["patient_id"] == "123456" for p in show_json(config)), 60,
                 what=f"the dropped files imported; log:\n{log.read_text()}")
        wait_for(lambda: "heartbeat: receiver off, 4 objects received today" in log.read_text(), 30,
                 what=f"a heartbeat with the counters; log:\n{log.read_text()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
