"""The index writer thread: takes stored objects off the receive path and commits them in batches.

Why: a C-STORE response must not wait for SQLite. The file is already in place (the truth); the indexer catches up
within milliseconds, and the readiness of a bundle is evaluated only after the indexer has passed the end-of-session
marker, so it always sees every object of that association.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from ..events import EventBus, InstancesStored, SessionEnded, StoredItem
from .index import Index, IndexRecord

log = logging.getLogger("rtstation.index")
BATCH = 500
# After the first record arrives, gather more for up to this long: one SQLite transaction and one wake-up of this
# thread per batch instead of per instance, which keeps the GIL with the receive path during a transfer. Readiness
# waits for the session's end marker, so this adds at most this much to "plan ready".
BATCH_WINDOW = 0.05


class _Marker:
    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action


class Indexer:
    def __init__(self, index: Index, bus: EventBus, provenance: Path) -> None:
        self.index = index
        self.bus = bus
        self.provenance = provenance
        self._queue: queue.SimpleQueue[IndexRecord | _Marker | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="rtstation-indexer", daemon=True)
        self._idle = threading.Condition()
        self._pending = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, record: IndexRecord) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(record)

    def end_session(self, session_id: int, instances: int, nbytes: int, failures: int) -> None:
        """Queued behind the session's records: the session ends in the index after they are committed."""
        def action() -> None:
            self.index.end_session(session_id, instances, nbytes, failures)
            self.bus.post(SessionEnded(session_id))
        self.put_marker(action)

    def put_marker(self, action: Callable[[], None]) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(_Marker(action))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            # Sleep through the window, then take what came: one wake-up of this thread per batch, not one per
            # record (each wake-up takes the GIL from the receive path, and costs futex calls on both sides).
            time.sleep(BATCH_WINDOW)
            batch: list[IndexRecord | _Marker] = [item]
            stop = False
            while len(batch) < BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._process(batch)
            if stop:
                return

    def _process(self, batch: list[IndexRecord | _Marker]) -> None:
        records: list[IndexRecord] = []
        for item in batch:
            if isinstance(item, _Marker):
                self._commit(records)
                records = []
                self._safely(item.action)
            else:
                records.append(item)
        self._commit(records)
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()

    def _commit(self, records: list[IndexRecord]) -> None:
        if not records:
            return
        try:
            self.index.add(records)
            self._write_provenance(records)
        except Exception:
            # The files are safe on disk; a restart re-indexes them (Station.reconcile).
            log.exception("indexing %d objects failed; they stay on disk and are re-indexed at next start", len(records))
            return
        self.bus.post(InstancesStored(tuple(
            StoredItem(r.info.patient_id, r.info.sop_uid, r.info.modality, r.placed.status, r.placed.size,
                       r.calling_ae or r.source) for r in records)))

    def _write_provenance(self, records: list[IndexRecord]) -> None:
        """Where each file came from, beside the store, so ``index --rebuild`` keeps it."""
        lines = [json.dumps({"path": r.placed.relpath, "source": r.source, "calling_ae": r.calling_ae,
                             "received_at": r.received_at}) for r in records if r.placed.status != "duplicate"]
        if lines:
            fd = os.open(self.provenance, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, ("\n".join(lines) + "\n").encode())
            finally:
                os.close(fd)

    def _safely(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            log.exception("index marker failed")
