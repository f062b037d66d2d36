"""A send job that crashes (the disk fills while it records progress) is retried on its schedule, and its state
says why (HARDEN2 item 8). Before: "send job 1 crashed; it will be retried", but recording the retry needed the
full disk too, so the job sat in "sending 30/60" until the next ``serve``.

The full disk is simulated on the queue database alone: its writes fail with SQLite's own "database or disk is
full" from the 30th acknowledged instance until four writes have failed, as they would until space is freed."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pydicom
import pytest

from helpers import rtstation
from peers import StoreSCP
from test_sender import configure, node

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import EventBus
from rtstation_tui.engine.outbound import queue as queue_mod
from rtstation_tui.engine.outbound.sender import Sender
from rtstation_tui.engine.store.files import Store
from rtstation_tui.engine.store.index import Index
from rtstation_tui.synthetic import make_ct_bulk
from waiting import until


class FullDisk:
    """Makes the queue's writes fail like a full disk: from the ``after``-th acknowledged instance, ``failures``
    writes in a row fail, then the space is back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int, failures: int) -> None:
        self.after, self.left, self.marked = after, failures, 0
        for name in ("mark_item", "requeue_items", "set_state", "fail_remaining"):
            original = getattr(queue_mod.JobQueue, name)
            monkeypatch.setattr(queue_mod.JobQueue, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def write(queue, *args, **kwargs):
            if name == "mark_item":
                self.marked += 1
            if self.marked >= self.after and self.left > 0:
                self.left -= 1
                raise sqlite3.OperationalError("database or disk is full")
            return original(queue, *args, **kwargs)
        return write


async def test_a_send_that_crashes_on_a_full_disk_is_retried_on_its_schedule_and_says_why(tmp_path: Path,
                                                                                            monkeypatch, caplog):
    files = make_ct_bulk(tmp_path / "ct", 60, rows=16, cols=16, patient_id="FULL")
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        config_path = configure(tmp_path, node("QA", scp.spec, retry="5x1s"))
        rtstation("import", str(tmp_path / "ct"), config=config_path)
        config = load_config(config_path)
        index = Index(config.data_dir)
        sender = Sender(config, index, Store(config.data_dir, "os"), EventBus())
        sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
        full = FullDisk(monkeypatch, after=30, failures=4)
        caplog.set_level(logging.INFO, logger="rtstation.sender")
        sender.bus.start()
        await sender.start()
        try:
            [job_id] = [e.job_id for e in sender.enqueue_instances(sops, ["QA"])]
            states: list[tuple[str, str]] = []

            def over() -> bool:
                job = sender.queue.job(job_id)
                assert job is not None
                states.append((job.state, job.error))
                return job.state in ("done", "failed")

            await until(over, 60, what="the crashed job to be retried and finish")
        finally:
            await sender.stop()
            await sender.bus.stop()
        job = sender.queue.job(job_id)
    finally:
        scp.stop()
    assert full.left == 0, "the simulated full disk was never hit"
    assert job is not None and job.state == "done" and job.done == 60, job
    assert job.attempts >= 1
    retry_errors = {e for s, e in states if s == "waiting-retry"}
    assert any("database or disk is full" in e for e in retry_errors), states[-5:]
    assert "crashed; it will be retried" in caplog.text and "retry 1 of 5" in caplog.text
    received = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in scp.files()}
    assert received == set(sops)
