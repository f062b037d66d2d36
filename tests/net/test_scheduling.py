"""[FAST] scheduling against DCMTK storescp: a node's rate limit paces what the peer receives, a manual send to a
node busy with a rule's backlog is delivered before the backlog ends, and a send or rule naming a ``[[groups]]``
entry reaches every node of the group (``rtstation send --to GROUP``, ``rules test``)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pydicom

from helpers import BREAST, rtstation
from peers import StoreSCP
from test_sender import configure, node
from waiting import until

from rtstation_tui.engine.config.model import Config, load_config
from rtstation_tui.engine.events import EventBus
from rtstation_tui.engine.intake.importer import BatchWriter, Importer
from rtstation_tui.engine.outbound.priority import YIELDED
from rtstation_tui.engine.outbound.sender import Sender
from rtstation_tui.engine.store.files import Store
from rtstation_tui.engine.store.index import Index
from rtstation_tui.synthetic import make_ct_bulk, make_patient

PLAN = "1.2.246.352.71.5.320687012.24189.20090603083342"  # breast_boost's RTPLAN, label B1


def station(config: Config, *folders: Path) -> Sender:
    """A sender over an index holding ``folders`` (imported in this process: no subprocess per test)."""
    store, index = Store(config.data_dir, "os"), Index(config.data_dir)
    writer = BatchWriter(index)
    Importer(store, index, writer).run(list(folders), "import", "ECLIPSE")
    writer.flush()
    return Sender(config, index, store, EventBus())


def arrivals(scp: StoreSCP) -> list[float]:
    """When the peer wrote each instance it received (its own clock: what the peer noticed)."""
    return sorted(f.stat().st_mtime for f in scp.files())


async def test_a_rate_limited_node_receives_20_instances_a_second_not_a_burst(tmp_path: Path) -> None:
    files = make_ct_bulk(tmp_path / "ct", 40, rows=16, cols=16, patient_id="PACE")
    scp = StoreSCP(tmp_path / "scp").start()
    sender = station(load_config(configure(tmp_path, node("SLOW", scp.spec, extra="max_instances_per_s = 20"))),
                     tmp_path / "ct")
    sender.bus.start()
    await sender.start()
    try:
        sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
        started = time.monotonic()
        [job_id] = [e.job_id for e in sender.enqueue_instances(sops, ["SLOW"])]
        await until(lambda: sender.queue.state_of(job_id) == "done", 30, what="the paced job to finish")
        elapsed = time.monotonic() - started
    finally:
        await sender.stop()
        await sender.bus.stop()
        scp.stop()
    times = arrivals(scp)
    assert len(times) == 40
    # unpaced, 40 tiny CTs take well under 0.5 s on loopback; 20/s with no burst spaces them 50 ms apart (1.95 s)
    assert times[-1] - times[0] >= 1.5 and elapsed >= 1.5, (times[-1] - times[0], elapsed)


async def test_a_manual_send_overtakes_a_rules_backlog_to_the_same_node(tmp_path: Path, caplog) -> None:
    """A rule queued 100 instances to a node limited to 40/s (one association); a plan sent by hand while the
    backlog is under way is delivered first. The backlog gives the node up after an acknowledged instance, waits
    as "queued" (no retry counted), then resumes: the peer gets every instance exactly once."""
    bulk = make_patient(tmp_path / "bulk", "BULK1", slices=97, rows=16, cols=16, label="NIGHTLY")
    urgent = make_patient(tmp_path / "urgent", "URG1", slices=3, rows=16, cols=16, label="URGENT")
    assert len(bulk.files) == 100
    scp = StoreSCP(tmp_path / "scp").start()
    sender = station(load_config(configure(tmp_path, node("LINAC", scp.spec, extra="max_instances_per_s = 40"))),
                     tmp_path / "bulk", tmp_path / "urgent")
    caplog.set_level(logging.INFO, logger="rtstation.sender")
    sender.bus.start()
    await sender.start()
    try:
        [backlog] = [e.job_id for e in sender.enqueue_plan(bulk.plan_uid, ["LINAC"], origin="rule:nightly")]
        await until(lambda: sender.queue.job(backlog).done >= 10, 30, what="the backlog under way")  # type: ignore
        [manual] = [e.job_id for e in sender.enqueue_plan(urgent.plan_uid, ["LINAC"], origin="manual")]
        await until(lambda: sender.queue.state_of(manual) == "done", 30, what="the manual plan delivered")
        mid = sender.queue.job(backlog)
        await until(lambda: sender.queue.state_of(backlog) == "done", 30, what="the backlog delivered")
        done = sender.queue.job(backlog)
        last = {j: max(i.sent_at or 0 for i in sender.queue.items(j)) for j in (backlog, manual)}
    finally:
        await sender.stop()
        await sender.bus.stop()
        scp.stop()
    assert mid is not None and mid.done < 100, "the manual plan had to wait for the whole backlog"
    assert last[manual] < last[backlog]
    assert done is not None and (done.done, done.failed, done.attempts) == (100, 0, 0)
    assert any(YIELDED.split()[0] in r.getMessage() or "paused after" in r.getMessage() for r in caplog.records)
    received = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in scp.files()]
    assert len(received) == len(set(received)) == 100 + len(urgent.files)


def test_send_to_a_group_reaches_its_nodes_and_rules_test_shows_them(tmp_path: Path, capsys) -> None:
    from rtstation_tui.cli.rulescmd import print_test
    from rtstation_tui.engine.outbound.dryrun import plan_test

    qa, phys = StoreSCP(tmp_path / "qa", aet="QASCP").start(), StoreSCP(tmp_path / "phys", aet="PHYSSCP").start()
    try:
        config = configure(tmp_path, node("QA", qa.spec) + node("PHYS", phys.spec) +
                           '[[groups]]\nname = "QA-ALL"\nnodes = ["QA", "PHYS"]\n\n'
                           '[[rules]]\nname = "all plans"\ntargets = ["QA-ALL"]\n')
        sender = station(load_config(config), *map(Path, BREAST))
        test = plan_test(sender.config, sender.index, sender.queue, PLAN)  # what `rules test` prints, as JSON
        assert test is not None
        [rule] = test["rules"]
        assert (rule["named"], rule["targets"]) == (("QA-ALL",), ("QA", "PHYS"))
        assert [w["node"] for w in rule["would_send"]] == ["QA", "PHYS"]
        print_test(test, False)
        assert "targets: QA-ALL = QA, PHYS" in capsys.readouterr().out
        sender.index.close()
        rows = json.loads(rtstation("send", "--plan", "B1", "--to", "QA-ALL", "--wait", "--json",
                                    config=config).stdout)
        assert [(r["node"], r["state"], r["instances"]) for r in rows] == [("QA", "done", 4), ("PHYS", "done", 4)]
        assert len(qa.files()) == len(phys.files()) == 4
    finally:
        qa.stop()
        phys.stop()
