"""Site plug-ins through entry points: a tiny package pip-installs into the test venv at test time (and is removed
after); a real ``rtstation serve`` runs its transform on one node's copies, its hooks on ready and on sent, and a
plug-in that raises fails only its own job, with the traceback in the log."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pydicom
import pytest

from helpers import Serve, free_port, rtstation, station_toml, storescu, wait_for, write_config
from peers import StoreSCP
from rulestools import node_toml, rule_toml
from rtstation_tui.synthetic import make_patient

PACKAGE = "rtstation_test_site_plugin"


@pytest.fixture
def site_plugin(tmp_path: Path) -> Iterator[Path]:
    """Installs the package; yields the file its hooks append JSON lines to."""
    events = tmp_path / "hook-events.jsonl"
    src = tmp_path / "plugin-src"
    (src / PACKAGE).mkdir(parents=True)
    (src / PACKAGE / "__init__.py").write_text(textwrap.dedent(f'''
        import json

        EVENTS = {str(events)!r}

        def stamp(objects):
            """marks every object with StationName SITEPLUGIN"""
            for ds in objects:
                ds.StationName = "SITEPLUGIN"
            return objects

        def boom(objects):
            raise RuntimeError("site bug in boom")

        def log_event(event):
            with open(EVENTS, "a") as fh:
                fh.write(json.dumps(event) + "\\n")

        def broken_hook(event):
            raise ValueError("hook bug")
    '''))
    (src / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{PACKAGE.replace("_", "-")}"
        version = "0.1"
        [project.entry-points."rtstation.transforms"]
        stamp = "{PACKAGE}:stamp"
        boom = "{PACKAGE}:boom"
        [project.entry-points."rtstation.hooks"]
        "on_ready.log" = "{PACKAGE}:log_event"
        "on_sent.log" = "{PACKAGE}:log_event"
        "on_ready.broken" = "{PACKAGE}:broken_hook"
        [tool.setuptools]
        packages = ["{PACKAGE}"]
    '''))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(src)], check=True,
                   capture_output=True, cwd=tmp_path)
    try:
        yield events
    finally:
        subprocess.run([*pip, "uninstall", "-y", PACKAGE.replace("_", "-")], check=True, capture_output=True)


def test_a_plugin_transform_and_hooks_run_and_a_failing_plugin_fails_only_its_job(tmp_path, site_plugin):
    good, bad = StoreSCP(tmp_path / "good", aet="GOODSCP").start(), StoreSCP(tmp_path / "bad", aet="BADSCP").start()
    server = None
    try:
        nodes = (node_toml("GOOD", good.spec, retry="1x1s") + 'transforms = ["plugin:stamp"]\n\n'
                 + node_toml("BAD", bad.spec, retry="1x1s") + 'transforms = ["plugin:boom"]\n\n')
        config = write_config(tmp_path / "rt.toml", station_toml(
            tmp_path / "var", port := free_port(), extra=nodes + rule_toml("both", ["GOOD", "BAD"])))
        p = make_patient(tmp_path / "syn", "PLUG1", label="PLUG", slices=3, rows=8, cols=8)
        server = Serve(config, tmp_path / "serve.log").start()
        storescu(port, p.files, aet="ECLIPSE")
        wait_for(lambda: len(good.files()) == len(p.files), 60, what="the stamped copies")
        jobs = lambda: {j["node"]: j for j in json.loads(rtstation("queue", "--json", config=config).stdout)}  # noqa
        wait_for(lambda: {n: j["state"] for n, j in jobs().items()} == {"GOOD": "done", "BAD": "failed"}, 60,
                 what="one job done, the other failed")
        assert jobs()["BAD"]["error"] == "plugin:boom raised RuntimeError: site bug in boom"
        assert bad.files() == []  # nothing half-done went out
        assert {pydicom.dcmread(f).StationName for f in good.files()} == {"SITEPLUGIN"}
        events = lambda: [json.loads(line) for line in site_plugin.read_text().splitlines()]  # noqa: E731
        wait_for(lambda: site_plugin.exists() and len(events()) == 3, 30, what="ready + two sent events")
        ready, *sent = events()
        assert ready["event"] == "on_ready" and ready["plan_uid"] == p.plan_uid and ready["rules"] == {"both": "send"}
        assert sorted((e["event"], e["node"], e["state"]) for e in sent) == [("on_sent", "BAD", "failed"),
                                                                            ("on_sent", "GOOD", "done")]
        log = server.text()
        assert "Traceback" in log and "RuntimeError: site bug in boom" in log and "ValueError: hook bug" in log
    finally:
        if server is not None:
            server.stop()
        good.stop()
        bad.stop()


def test_an_unknown_plugin_is_refused_when_queueing(tmp_path, site_plugin):
    config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port()))
    make_patient(tmp_path / "syn", "PLUG2", label="P2", slices=2, rows=8, cols=8)
    rtstation("import", str(tmp_path / "syn"), config=config)
    out = rtstation("send", "--plan", "P2", "--to", "X@127.0.0.1:1", "--transform", "plugin:nosuch", config=config,
                    check=False)
    assert out.returncode == 2 and "no plug-in transform 'nosuch'" in out.stderr and "boom, stamp" in out.stderr
