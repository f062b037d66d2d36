"""The rules over time, in-process: an evaluation a crash interrupted is caught up at start; rules installed on a
store that already holds ready plans do not forward them; importing a plan does not re-forward the patient's others;
held plans are known after a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from helpers import free_port, station_toml, storescu, write_config
from waiting import until
from rulestools import audit_records, node_toml, rule_toml

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.outbound.rules import RulesService
from rtstation_tui.engine.station import Station
from rtstation_tui.synthetic import make_patient


def make(tmp_path: Path, port: int, rules: bool = True, settle: float = 30) -> Station:
    extra = node_toml("DOWN", f"DOWN@127.0.0.1:{free_port()}", retry="10x60s")  # nobody listens: jobs stay queued
    if rules:
        extra += rule_toml("everything", ["DOWN"])
    text = station_toml(tmp_path / "var", port, extra=extra)
    text = text.replace("settle_seconds = 30", f"settle_seconds = {settle}")
    return Station(load_config(write_config(tmp_path / "rt.toml", text)))


def jobs(tmp_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "var" / "queue.sqlite") as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT plan_uid, origin FROM jobs ORDER BY id")]


async def test_an_evaluation_interrupted_by_a_crash_is_caught_up_at_start(tmp_path, monkeypatch):
    patient = make_patient(tmp_path / "p", "CRASH1", label="C1", slices=2, rows=8, cols=8)
    port = free_port()
    calls: list[str] = []

    def crash(self, plan_uid, why):  # type: ignore[no-untyped-def]
        calls.append(plan_uid)
        raise RuntimeError("simulated crash before the rules acted")

    with monkeypatch.context() as m:
        m.setattr(RulesService, "evaluate", crash)
        station = make(tmp_path, port)
        await station.start()
        try:
            await asyncio.to_thread(storescu, port, patient.files)
            await until(lambda: calls, what="the ready bundle reaching the rules")
        finally:
            await station.stop()
    assert jobs(tmp_path) == []

    station = make(tmp_path, port)
    await station.start()
    try:
        await until(lambda: audit_records(tmp_path / "var" / "logs"), what="the caught-up evaluation")
        assert jobs(tmp_path) == [(patient.plan_uid, "rule:everything")]
        [rec] = audit_records(tmp_path / "var" / "logs")
        assert rec["trigger"] == "announced while the rules were not running" and rec["outcome"] == "send"
    finally:
        await station.stop()


async def test_rules_installed_on_an_existing_store_do_not_forward_old_plans(tmp_path):
    old = make_patient(tmp_path / "old", "OLD1", label="OLD", slices=2, rows=8, cols=8)
    port = free_port()
    station = make(tmp_path, port, rules=False)
    await station.start()
    try:
        await asyncio.to_thread(storescu, port, old.files)
        await until(lambda: [r["state"] for r in station.index.bundle_states("OLD1").values()] == ["ready"],
                        what="OLD ready")
    finally:
        await station.stop()
    with sqlite3.connect(tmp_path / "var" / "index.sqlite") as conn:  # as a store from before rules existed
        conn.execute("DROP TABLE rule_marks")
        conn.execute("DELETE FROM meta WHERE key='rules_baseline'")
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND (name LIKE 'metric%' OR name = 'plan_tags')").fetchall():
            conn.execute(f"DROP TABLE {table}")  # later releases' tables: such a store predates them
        conn.execute("PRAGMA user_version=0")  # such a store predates schema versions too

    new = make_patient(tmp_path / "new", "NEW1", label="NEW", slices=2, rows=8, cols=8)
    station = make(tmp_path, port)
    await station.start()
    try:
        await asyncio.to_thread(storescu, port, new.files)
        await until(lambda: audit_records(tmp_path / "var" / "logs"), what="the new plan's evaluation")
        assert jobs(tmp_path) == [(new.plan_uid, "rule:everything")]
        assert {r["plan_uid"] for r in audit_records(tmp_path / "var" / "logs")} == {new.plan_uid}
    finally:
        await station.stop()


async def test_importing_a_plan_never_re_forwards_the_patients_other_plans(tmp_path):
    first = make_patient(tmp_path / "a", "SAME1", label="A", slices=2, rows=8, cols=8)
    second = make_patient(tmp_path / "b", "SAME1", label="B", slices=2, rows=8, cols=8)
    port = free_port()
    station = make(tmp_path, port)
    await station.start()
    try:
        await asyncio.to_thread(storescu, port, first.files)
        log_dir = tmp_path / "var" / "logs"
        await until(lambda: audit_records(log_dir), what="plan A evaluated")
        await asyncio.to_thread(station.importer().run, second.files, "import", "IMPORT")
        await until(lambda: len(audit_records(log_dir)) == 2, what="plan B evaluated")
        assert [r["plan_uid"] for r in audit_records(log_dir)] == [first.plan_uid, second.plan_uid]
        assert [uid for uid, _ in jobs(tmp_path)] == [first.plan_uid, second.plan_uid]
    finally:
        await station.stop()


async def test_held_plans_are_known_after_a_restart(tmp_path):
    from rtstation_tui.engine.plans.queries import held_plans

    patient = make_patient(tmp_path / "p", "HELD1", label="H", slices=2, rows=8, cols=8)
    port = free_port()
    station = make(tmp_path, port, settle=0.5)
    await station.start()
    try:
        assert held_plans(station.index.conn) == {}
        await asyncio.to_thread(storescu, port, [f for f in patient.files if f not in patient.ct])
        await until(lambda: held_plans(station.index.conn), what="the plan held")
    finally:
        await station.stop()
    station = make(tmp_path, port, settle=0.5)
    try:
        assert held_plans(station.index.conn) == {patient.plan_uid: ("everything",)}
        await station.start()
        await asyncio.to_thread(storescu, port, patient.ct)
        await until(lambda: not held_plans(station.index.conn), what="the complete plan no longer held")
        assert jobs(tmp_path) == [(patient.plan_uid, "rule:everything")]
    finally:
        await station.stop()
