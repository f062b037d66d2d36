"""``rtstation report --month``: per rule and node, from the send queue."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from helpers import station_toml, write_config
from rtstation_tui.cli import main
from rtstation_tui.engine.outbound.queue import JobQueue


def t(day: str) -> float:
    return datetime.fromisoformat(day).timestamp()


def job(q: JobQueue, jid: int, node: str, plan: str, origin: str, state: str, created: float, done: int,
        failed: int, sent_after: float | None) -> None:
    q.conn.execute("INSERT INTO jobs (id, node, node_json, plan_uid, origin, state, created, updated, total, done, "
                   "failed) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (jid, node, "{}", plan, origin, state, created, created, done + failed, done, failed))
    for seq in range(done):
        q.conn.execute("INSERT INTO items (job_id, seq, state, sent_at) VALUES (?,?,?,?)",
                       (jid, seq, "done", created + (sent_after or 0) * (seq + 1) / done))


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    conf = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", 1))
    q = JobQueue(tmp_path / "var")
    job(q, 1, "QA", "1.1", "rule:ADP", "done", t("2026-11-03T10:00"), 4, 0, 30.0)
    job(q, 2, "QA", "1.2", "rule:ADP", "done", t("2026-11-04T10:00"), 2, 0, 10.0)
    job(q, 3, "QA", "1.3", "rule:ADP", "failed", t("2026-11-05T10:00"), 1, 3, 5.0)
    job(q, 4, "PACS", "1.1", "manual", "done", t("2026-11-06T10:00"), 4, 0, 60.0)
    job(q, 5, "QA", "1.4", "rule:ADP", "done", t("2026-10-31T23:00"), 9, 0, 1.0)  # October
    q.close()
    return conf


def test_monthly_report_per_rule_and_node(capsys: pytest.CaptureFixture[str], conf: Path) -> None:
    assert main(["--config", str(conf), "report", "--month", "2026-11", "--json"]) == 0
    rows = {(r["rule"], r["node"]): r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {("ADP", "QA"), ("(manual)", "PACS")}
    adp = rows[("ADP", "QA")]
    assert (adp["jobs"], adp["plans"], adp["instances"], adp["failed_jobs"], adp["failed_instances"]) == (3, 2, 7, 1, 3)
    assert adp["median_delay_s"] == pytest.approx(20.0)  # jobs done: last instance 30 s and 10 s after queueing
    assert rows[("(manual)", "PACS")]["median_delay_s"] == pytest.approx(60.0)


def test_csv_and_bad_month(capsys: pytest.CaptureFixture[str], conf: Path) -> None:
    assert main(["--config", str(conf), "report", "--month", "2026-10", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("month,rule,node,jobs,plans,instances") and len(lines) == 2
    assert main(["--config", str(conf), "report", "--month", "11/2026"]) == 2
    assert "use YYYY-MM" in capsys.readouterr().err
