"""[CONSOLE] delete from the store, [ACTIONS] delete_after_send's configuration, retention by size: what goes, what
stays (shared objects, anything unsent or held by a job), the audit, and a crash mid-delete never resurrecting."""

from __future__ import annotations

import logging

import pytest
from rulestools import audit_records
from tui_support import import_settled, make_config

from rtstation_tui.engine.audit import configure as configure_audit
from rtstation_tui.engine.config.model import ConfigError, load_config
from rtstation_tui.engine.intake.rebuild import rebuild
from rtstation_tui.engine.outbound import deletion, retention
from rtstation_tui.engine.outbound.queue import JobQueue, NewItem
from rtstation_tui.engine.store.files import Store
from rtstation_tui.engine.store.index import Index
from rtstation_tui.engine.store.removal import _write_journal, finish_interrupted
from rtstation_tui.synthetic import add_plan, make_patient
from helpers import station_toml, write_config


@pytest.fixture
def two_plans_one_ct(tmp_path):
    """Patient P1: plans A1 and A2 on one 3-slice CT (each with its own RTSTRUCT and dose); patient P2: plan B1."""
    config = make_config(tmp_path)
    p = make_patient(tmp_path / "in" / "a1", "P1", slices=3, rows=8, cols=8, label="A1")
    q = add_plan(tmp_path / "in" / "a2", p, "A2")
    b = make_patient(tmp_path / "in" / "b1", "P2", slices=2, rows=8, cols=8, label="B1")
    import_settled(config, [tmp_path / "in"])
    configure_audit(config.log_dir)
    parts = (Index(config.data_dir), JobQueue(config.data_dir), Store(config.data_dir, "os"))
    parts[2].load_known(parts[0].known_pairs())
    return config, parts, p, q, b


@pytest.fixture
def warnings_seen(caplog, monkeypatch):
    """caplog, also after a console test in the same run set up the station's own handlers (no propagation)."""
    monkeypatch.setattr(logging.getLogger("rtstation"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="rtstation.retention")
    return caplog


def stored(config) -> set[str]:
    return {f.name for f in (config.data_dir / "store").rglob("*.dcm")}


def test_a_shared_ct_stays_with_the_other_plan_and_goes_with_the_last(two_plans_one_ct):
    config, (index, queue, store), p, q, _ = two_plans_one_ct
    preview = deletion.select(index, queue, store, "P1", [p.plan_uid])[0]
    assert (preview.instances, preview.kept_shared, dict(preview.counts)) == (3, 3, {"RTDOSE": 1, "RTPLAN": 1,
                                                                                    "RTSTRUCT": 1})
    assert "plan A1 of patient P1: 3 objects" in preview.describe() and "3 shared objects stay" in preview.describe()
    done = deletion.delete(index, queue, store, "P1", [p.plan_uid], who="cli:test")
    assert done.deleted and not done.patient_gone
    left = stored(config)
    assert all(f"CT.{uid}.dcm" in left for uid in p.ct_uids) and f"RTPLAN.{p.plan_uid}.dcm" not in left
    assert [r[0] for r in index.conn.execute("SELECT sop_uid FROM plans WHERE patient_id='P1'")] == [q.plan_uid]
    assert index.bundle_states("P1").keys() == {q.plan_uid}

    done = deletion.delete(index, queue, store, "P1", [q.plan_uid], who="cli:test")
    assert done.instances == 6 and done.patient_gone  # the CT went with the last plan using it
    assert not any(f"CT.{uid}.dcm" in stored(config) for uid in p.ct_uids)
    assert index.usage("P1") == (0, 0) and "P1" not in index.patient_ids()
    assert not (config.data_dir / "store" / "P1").exists()  # empty folders pruned
    records = audit_records(config.log_dir, "deleted")
    assert [(r["who"], r["what"], r["labels"], r["files"]) for r in records] == [
        ("cli:test", "plan", ["A1"], 3), ("cli:test", "plan", ["A2"], 6)]
    assert set(records[1]["sop_uids"]) >= set(p.ct_uids)


def test_a_patient_delete_is_refused_while_a_job_holds_its_objects(two_plans_one_ct):
    config, (index, queue, store), p, _, b = two_plans_one_ct
    rel = index.conn.execute("SELECT path FROM instances WHERE sop_uid=?", (b.plan_uid,)).fetchone()[0]
    node = config.node("QA")
    job = queue.add_job(node, [NewItem(b.plan_uid, "", "RTPLAN", str(store.abspath(rel)), 1, "")], plan_uid=b.plan_uid,
                        patient_id="P2", label="B1")
    assert deletion.select(index, queue, store, "P2")[0].blocked_by == (f"job {job} to QA (queued, B1)",)
    with pytest.raises(deletion.DeleteRefused, match=f"patient P2 is not deleted: .*job {job} to QA"):
        deletion.delete(index, queue, store, "P2", who="console:test")
    assert len(stored(config)) == 14 and audit_records(config.log_dir, "deleted") == []
    queue.cancel(job)
    assert deletion.delete(index, queue, store, "P2", who="console:test").patient_gone
    with pytest.raises(deletion.NothingToDelete, match="no patient 'P2'"):
        deletion.select(index, queue, store, "P2")
    with pytest.raises(deletion.NothingToDelete, match="has no plan"):
        deletion.select(index, queue, store, "P1", [b.plan_uid])


def test_a_delete_cut_short_by_a_crash_is_finished_and_never_rebuilt_back(two_plans_one_ct):
    """The journal is written before any file goes: a crash after one unlink leaves a journal; the next start (and
    ``index --rebuild``) finishes the removal instead of indexing the rest back."""
    config, (index, queue, store), p, _, b = two_plans_one_ct
    going = [g.path for g in deletion.select(index, queue, store, "P2")[1]]
    _write_journal(store, {"paths": going, "plans": [b.plan_uid], "patients": ["P2"]})
    store.abspath(going[0]).unlink()  # the crash: one file gone, index untouched
    rebuild(config.data_dir)  # offline rebuild first: it must not resurrect the other four
    index = Index(config.data_dir)
    assert "P2" not in index.patient_ids() and not any(n.endswith(f"{b.plan_uid}.dcm") for n in stored(config))
    assert not list((config.data_dir / "deleting").glob("*"))
    assert finish_interrupted(index, store) == 0  # nothing left to finish
    assert len(stored(config)) == 9 and index.count_instances() == 9
    # the rebuilt index knows every file's size (disk usage needs no new column: sizes are kept since the store)
    assert index.usage() == (9, sum(f.stat().st_size for f in (config.data_dir / "store").rglob("*.dcm")))


def test_delete_after_send_needs_every_target_to_commit(tmp_path):
    nodes = ('[[nodes]]\nname = "PACS"\nae_title = "P"\nhost = "127.0.0.1"\nport = 104\ncommitment = true\n\n'
             '[[nodes]]\nname = "QA"\nae_title = "Q"\nhost = "127.0.0.1"\nport = 105\n\n')
    rule = '[[rules]]\nname = "archive then delete"\ntargets = ["PACS", "QA"]\ndelete_after_send = true\n'
    path = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", 11112, extra=nodes + rule))
    with pytest.raises(ConfigError, match=r"rules\[0\] \('archive then delete'\)\.delete_after_send: every target "
                                          r"must have commitment = true .*: QA"):
        load_config(path)
    write_config(path, station_toml(tmp_path / "var", 11112, extra=nodes + rule.replace(', "QA"', "")))
    assert load_config(path).rules[0].delete_after_send
    group = '[[groups]]\nname = "BOTH"\nnodes = ["PACS", "QA"]\n\n'  # a group stands for every node in it
    write_config(path, station_toml(tmp_path / "var", 11112, extra=nodes + group + rule.replace('"PACS", "QA"',
                                                                                               '"BOTH"')))
    with pytest.raises(ConfigError, match="without it: QA"):
        load_config(path)


def test_size_retention_removes_the_oldest_delivered_first_and_never_what_is_unsent(two_plans_one_ct,
                                                                                  warnings_seen):
    """A tiny limit: the delivered plans go, oldest first (the shared CT with the second of them); the unsent B1
    stays, and the station says the store is still over the limit."""
    config, (index, queue, store), p, q, b = two_plans_one_ct
    index.conn.execute("UPDATE instances SET received_at = received_at + 100 WHERE patient_id='P2'")
    index.conn.execute("UPDATE instances SET received_at = received_at + 50 WHERE sop_uid IN (?, ?, ?)",
                       (q.plan_uid, q.dose_uid, q.struct_uid))  # A2 came later than A1
    for plan in (p, q):
        job = queue.add_job(config.node("QA"), [], plan_uid=plan.plan_uid, patient_id="P1", label="x")
        queue.set_state(job, "done")
    removals, check = retention.plan_size_cleanup(index, queue, store, 1)
    assert [(r.label, len(r.files)) for r in removals] == [("A1", 3), ("A2", 6)] and check.over_after > 0
    removed, after = retention.run_cleanup(index, queue, store, 0, 1e-9)  # what [retention] auto runs: 1 byte
    assert removed == 9 and after is not None and after.over_after > 0
    retention.warn_over_limit(after)
    assert index.patient_ids() == ["P2"] and "is never removed" in warnings_seen.text
    assert [r["kind"] for r in audit_records(config.log_dir, "retention_over_limit")] == ["retention_over_limit"]
    big = int(index.usage()[1])  # at or under the limit: nothing goes
    assert retention.plan_size_cleanup(index, queue, store, big)[0] == []
    bad = write_config(config.path, config.path.read_text() + "\n[retention]\nmax_store_gb = -1\n")
    with pytest.raises(ConfigError, match="max_store_gb"):
        load_config(bad)


async def test_the_retention_service_applies_the_size_limit_and_warns_once(two_plans_one_ct, warnings_seen):
    """``[retention] auto`` with ``max_store_gb``: the service removes the delivered plan and says once (not at
    every check) that the unsent rest keeps the store over the limit."""
    from dataclasses import replace

    config, (index, queue, store), p, _, _ = two_plans_one_ct
    job = queue.add_job(config.node("QA"), [], plan_uid=p.plan_uid, patient_id="P1", label="A1")
    queue.set_state(job, "done")
    limited = replace(config, retention=replace(config.retention, auto=True, max_store_gb=1e-9))
    service = retention.RetentionService(lambda: limited, index, queue, store)
    await service._step()
    await service._step()
    assert [r["label"] for r in audit_records(config.log_dir, "removed")] == ["A1"]
    assert warnings_seen.text.count("is never removed") == 1
    assert len(audit_records(config.log_dir, "retention_over_limit")) == 1
