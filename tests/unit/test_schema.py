"""Versioned schemas: a data_dir the previous release wrote (``tests/data/legacy``, user_version 0) opens with every
row and the same listings, and is stamped; a newer file is refused by name; a failed migration changes nothing."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from helpers import DATA, rtstation, write_config

from rtstation_tui.engine.outbound.queue import JobQueue
from rtstation_tui.engine.plans.queries import held_plans
from rtstation_tui.engine.store.index import Index
from rtstation_tui.engine.store.schema import INDEX, QUEUE, Migration, Schema, SchemaError
from rtstation_tui.engine.store.schema.base import split_statements

LEGACY = DATA / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
LISTINGS = {"show": ["show", "--json"], "queue": ["queue", "--json"], "job1": ["queue", "show", "1", "--json"],
            "job2": ["queue", "show", "2", "--json"]}
JOB_ADDED = {"transform": "", "derived": 0}  # queue migrations 2 (jobs.transform: a job the old release queued sends
# the files) and 4 (jobs.derived: it carries no derived objects)


def added(job: dict) -> dict:
    """The columns queue migrations added, as they read for a job the old release queued: the stored files
    (migration 2), no derived objects (migration 4), a rule's job behind manual ones (migration 5, jobs.priority)."""
    return {**JOB_ADDED, "priority": 0 if str(job.get("origin") or "").startswith("rule:") else 1}


def listing(name: str) -> object:
    """What this release prints for the old files: the old release's listing plus the columns added since."""
    want = EXPECTED[name]
    if name == "queue":
        return [{**job, **added(job), "commitment": ""} for job in want]  # no storage commitment was asked
    if name == "show":  # every plan lists the tags rules gave it ([ACTIONS])
        return [{**patient, "plans": [{**plan, "tags": []} for plan in patient["plans"]]} for patient in want]
    return {**want, **added(want)} if name.startswith("job") else want


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy of the old release's data_dir (the checked-in one must never be written)."""
    return Path(shutil.copytree(LEGACY / "data_dir", tmp_path / "var"))


@pytest.fixture
def legacy_config(tmp_path: Path, legacy: Path) -> Path:
    return write_config(tmp_path / "rt.toml", f'[station]\ndata_dir = "{legacy}"\n')


def rows(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


def kept(db: Path, before: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The rows of the tables that were there before; tables later migrations added must still be empty."""
    now = rows(db)
    assert {t: r for t, r in now.items() if t not in before and r} == {}
    return {t: r for t, r in now.items() if t in before}


def version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def shape(db: Path) -> list[tuple[str, str, str]]:
    """Every table and index with its SQL, whitespace normalised: what a fresh file and an upgraded one must share."""
    with sqlite3.connect(db) as conn:
        return [(r[0], r[1], " ".join((r[2] or "").split())) for r in
                conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")]


def dump(db: Path) -> tuple[int, list[str]]:
    with sqlite3.connect(db) as conn:
        return version(db), list(conn.iterdump())


def test_an_index_and_queue_written_by_the_previous_release_open_and_are_upgraded_by_migrations(
        legacy, legacy_config, caplog):
    index_db, queue_db = legacy / "index.sqlite", legacy / "queue.sqlite"
    assert (version(index_db), version(queue_db)) == (0, 0)
    before = rows(index_db), rows(queue_db)
    assert {t: len(r) for t, r in before[0].items() if t in ("import_kept", "rule_marks", "instances")} == \
        {"import_kept": 5, "rule_marks": 2, "instances": 10}
    assert sorted(r[8] for r in before[1]["items"]) == ["done"] * 8 + ["failed"] * 2

    for name, args in LISTINGS.items():  # the old release printed exactly this for the same files (+ new columns)
        assert json.loads(rtstation(*args, config=legacy_config).stdout) == listing(name), name

    assert (version(index_db), version(queue_db)) == (INDEX.version, QUEUE.version)
    origin = 6  # jobs.origin in the old rows: rule jobs priority 0, the others 1 (migration 5)
    before = before[0], {**before[1], "jobs": [(*job, "", 0, 0 if str(job[origin]).startswith("rule:") else 1)
                                               for job in before[1]["jobs"]],  # transform '', derived 0, priority
                         "items": [(*item, 0, "", "") for item in before[1]["items"]]}  # none derived, sent UIDs ''
    assert (kept(index_db, before[0]), kept(queue_db, before[1])) == before
    with caplog.at_level(logging.INFO, logger="rtstation.schema"):
        index, queue = Index(legacy), JobQueue(legacy)  # the second open: nothing left to do
    assert [r.getMessage() for r in caplog.records] == []
    assert index.bundle_states().keys() == {p["plan_uid"] for pt in EXPECTED["show"] for p in pt["plans"]}
    assert [j.state for j in queue.jobs()] == ["failed", "failed"] and held_plans(index.conn) == {}
    index.close()
    queue.close()
    assert (kept(index_db, before[0]), kept(queue_db, before[1])) == before


def test_an_upgraded_legacy_file_has_exactly_the_shape_of_a_fresh_one(legacy, tmp_path):
    Index(legacy).close()
    JobQueue(legacy).close()
    Index(tmp_path / "fresh").close()
    JobQueue(tmp_path / "fresh").close()
    for name in ("index.sqlite", "queue.sqlite"):
        assert shape(legacy / name) == shape(tmp_path / "fresh" / name), name
        assert version(tmp_path / "fresh" / name) == version(legacy / name) > 0


def test_a_second_open_takes_no_write_lock(legacy):
    Index(legacy).close()
    holder = sqlite3.connect(legacy / "index.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: an upgrade would have to wait for it
    try:
        conn = sqlite3.connect(legacy / "index.sqlite", timeout=0, isolation_level=None)
        assert INDEX.upgrade(conn, legacy / "index.sqlite") == INDEX.version
        conn.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_rule_marks_from_before_held_plans_get_the_column_and_keep_their_rows(legacy):
    db = legacy / "index.sqlite"
    with sqlite3.connect(db) as conn:  # rule_marks as written before commit 362c77d
        conn.executescript("ALTER TABLE rule_marks RENAME TO old; CREATE TABLE rule_marks (plan_uid TEXT PRIMARY KEY,"
                           " signature TEXT, state TEXT, evaluated REAL); INSERT INTO rule_marks SELECT plan_uid,"
                           " signature, state, evaluated FROM old; DROP TABLE old;")
    marks = rows(db)["rule_marks"]
    Index(legacy).close()
    assert rows(db)["rule_marks"] == [(*m, "") for m in marks]
    assert version(db) == INDEX.version


def test_a_version_1_queue_gets_the_transform_column_and_its_jobs_send_the_stored_files(tmp_path):
    db = tmp_path / "queue.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    Schema("queue", QUEUE.migrations[:1]).upgrade(conn, db)  # a queue written before migration 2
    conn.execute("INSERT INTO jobs (node, node_json, state) VALUES ('PACS', '{}', 'queued')")
    conn.close()
    queue = JobQueue(tmp_path)
    assert version(db) == QUEUE.version >= 5
    assert [(j.node, j.state, j.transform) for j in queue.jobs()] == [("PACS", "queued", "")]
    queue.close()


@pytest.mark.parametrize("name, args", [("index.sqlite", ["show", "--json"]), ("queue.sqlite", ["queue", "--json"]),
                                        ("index.sqlite", ["index", "--rebuild"])])
def test_a_database_from_a_newer_version_is_refused_and_left_as_it_is(legacy, legacy_config, name, args):
    Index(legacy).close()
    JobQueue(legacy).close()
    db = legacy / name
    newer = (INDEX if name == "index.sqlite" else QUEUE).version + 1
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={newer}")
    before = dump(db)
    proc = rtstation(*args, config=legacy_config, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"rtstation: {db}: the {name.split('.')[0]} database has schema version {newer}, but this rtstation " \
           f"knows only versions up to {newer - 1}: it was written by a newer release" in proc.stderr
    assert "never downgraded" in proc.stderr and "Traceback" not in proc.stderr
    assert dump(db) == before


def test_a_failed_migration_leaves_the_file_unchanged(legacy):
    db = legacy / "index.sqlite"
    before = dump(db)
    broken = Schema("index", (*INDEX.migrations, Migration(
        INDEX.version + 1, "adds a column, then fails", "ALTER TABLE instances ADD COLUMN extra INTEGER;\n"
        "INSERT INTO no_such_table VALUES (1);\n")))
    conn = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(SchemaError) as err:
        broken.upgrade(conn, db)
    conn.close()
    assert str(err.value) == (f"{db}: index schema migration {INDEX.version + 1} (adds a column, then fails) failed:"
                              f" no such table: no_such_table; the file is unchanged (still version 0)")
    assert dump(db) == before  # migration 1, run in the same transaction, is undone too
    Index(legacy).close()
    assert version(db) == INDEX.version


def test_a_version_0_file_that_no_release_wrote_is_refused(tmp_path):
    db = tmp_path / "var" / "index.sqlite"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE instances (id INTEGER PRIMARY KEY, name TEXT)")
    before = dump(db)
    with pytest.raises(SchemaError, match=r"index.sqlite: not an rtstation index database of a known release "
                                          r"\(user_version 0\): instances has \(id, name\), expected \(id, sop_uid"):
        Index(tmp_path / "var")
    assert dump(db) == before


def test_migrations_must_be_numbered_in_order_and_end_each_statement():
    with pytest.raises(ValueError, match=r"numbered 1, 2, 3, … in order, got \[1, 3\]"):
        Schema("queue", (QUEUE.migrations[0], Migration(3, "skips 2", "")))
    with pytest.raises(ValueError, match="no ';' at a line end"):
        split_statements("CREATE TABLE a (x);\nCREATE TABLE b (y)\n")
    assert len(split_statements(QUEUE.migrations[0].sql)) == 5
