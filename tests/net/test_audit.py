"""The audit log (JSON lines per day): every association and every object's fate, thread-safe, with retention."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from pathlib import Path

from helpers import BREAST, DATA, Serve, rtstation, station_toml, storescu, wait_for, write_config

from rtstation_tui.engine.audit import AuditLog

NELMS = [DATA / "nelms" / "Linear_AntPost_3mm_Aligned.dcm", DATA / "nelms" / "Linear_SupInf_3mm_Aligned.dcm"]


def records(log_dir: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(log_dir.glob("audit-*.jsonl")) for line in f.read_text().splitlines()]


def test_concurrent_writers_give_whole_lines_and_old_days_are_pruned(tmp_path: Path) -> None:
    old = tmp_path / f"audit-{(date.today() - timedelta(days=40)).isoformat()}.jsonl"
    recent = tmp_path / f"audit-{(date.today() - timedelta(days=3)).isoformat()}.jsonl"
    other = tmp_path / "audit-notes.txt"
    for p in (old, recent, other):
        p.write_text("{}\n")
    sink = AuditLog(tmp_path, retention_days=30)

    def writer(n: int) -> None:
        for i in range(500):
            sink.write("stored", {"thread": n, "i": i, "patient_id": "A\x00B\x1b[31m" * 20})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    today = tmp_path / f"audit-{date.today().isoformat()}.jsonl"
    lines = today.read_text().splitlines()
    assert len(lines) == 4000
    recs = [json.loads(line) for line in lines]  # every line is whole JSON
    assert {(r["thread"], r["i"]) for r in recs} == {(n, i) for n in range(8) for i in range(500)}
    assert "\x1b" not in today.read_text() and recs[0]["patient_id"].startswith("A\x00B\x1b[31m")
    assert not old.exists() and recent.exists() and other.exists()
    assert oct(today.stat().st_mode & 0o777) == "0o640"


def test_serve_and_import_audit_associations_and_every_object(tmp_path: Path, port: int) -> None:
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, port, receiver='allowed_calling_aes = '
                                                          '["ECLIPSE", "PINNACLE"]'))
    logs = data_dir / "logs"
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        assert storescu(port, BREAST[:1], aet="STRANGER", check=False).returncode != 0
        storescu(port, BREAST, aet="ECLIPSE", extra=["-xi"])
        storescu(port, BREAST[:1], aet="ECLIPSE", extra=["-xi"])  # the same CT again: a duplicate
        storescu(port, NELMS, aet="PINNACLE", extra=["-xi"])  # one SOP UID, two contents: a conflict
        wait_for(lambda: sum(r["kind"] == "association_closed" for r in records(logs)) == 3, what="3 closed")
    finally:
        server.kill()
    recs = records(logs)
    [rejected] = [r for r in recs if r["kind"] == "association_rejected"]
    assert rejected["calling_ae"] == "STRANGER" and rejected["peer"].startswith("127.0.0.1:")
    assert "not in receiver.allowed_calling_aes" in rejected["reason"]
    opened = [r for r in recs if r["kind"] == "association_opened"]
    assert [r["calling_ae"] for r in opened] == ["ECLIPSE", "ECLIPSE", "PINNACLE"] and not opened[0]["tls"]
    stored = [r for r in recs if r["kind"] == "stored"]
    assert len(stored) == 5 and {r["modality"] for r in stored} == {"CT", "RTPLAN", "RTSTRUCT", "RTDOSE"}
    assert all(r["source"] == "network" and (data_dir / "store" / r["path"]).is_file() for r in stored)
    [dup] = [r for r in recs if r["kind"] == "duplicate"]
    [conflict] = [r for r in recs if r["kind"] == "conflict"]
    assert dup["calling_ae"] == "ECLIPSE" and conflict["calling_ae"] == "PINNACLE"
    assert conflict["path"].endswith("~2.dcm")
    closed = [r for r in recs if r["kind"] == "association_closed"]
    assert [c["instances"] for c in closed] == [4, 1, 2] and not any(c["aborted"] for c in closed)

    proc = rtstation("import", str(DATA / "pydicom" / "rtplan_truncated.dcm"), *map(str, BREAST), config=cfg,
                     check=False)
    assert proc.returncode == 1
    recs = records(logs)
    [quarantined] = [r for r in recs if r["kind"] == "quarantined"]
    assert quarantined["source"] == "import" and "truncated" in quarantined["reason"]
    assert len([r for r in recs if r["kind"] == "duplicate" and r["source"] == "import"]) == 4
