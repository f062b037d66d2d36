"""When is a plan bundle *ready*?

As soon as, at the end of an association (or import run), its RTPLAN and every object it references are present;
otherwise after ``settle_seconds`` without new objects for its patient, as *ready, incomplete* with what is missing.
New objects later change it again. Rules and the console act on these events, never per instance.

How: sessions (associations and import runs) end in the index *after* their objects are committed. Whenever one
ends — in this process (an event) or in another one, such as ``rtstation import`` (a poll every second) — the
bundles of the patients it touched are recomputed and compared with the last state told to the world, which is
persisted in the ``bundles`` table: a restart never re-announces what did not change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Iterable

from .bundle import Bundle, bundle_for, patient_view
from ..events import BundleChanged, BundleReady, Event, EventBus, InstancesStored, SessionEnded
from ..store.index import Index
from ..loops import Ticker
from ..store.files import Store

log = logging.getLogger("rtstation.readiness")
POLL_SECONDS = 1.0
WAITING, READY, READY_INCOMPLETE, REMOVED = "waiting", "ready", "ready-incomplete", "removed"


def state_row(b: Bundle, state: str) -> tuple[object, ...]:
    summary = {"label": b.label, "name": b.name, "machines": list(b.machines), "approval": b.approval,
               "counts": b.counts(), "missing": b.missing_summary(), "conflicts": len(b.conflicts),
               "fractions": b.fractions, "beams": len(b.beams)}
    return (b.plan_uid, b.patient_id, state, int(b.complete), b.signature(), len(b.missing), json.dumps(summary),
            time.time())


def settled_states(index: Index, patients: Iterable[str]) -> list[tuple[object, ...]]:
    """States for bundles nobody is waiting on (after ``index --rebuild``): ready or ready-incomplete."""
    rows = []
    for pid in patients:
        for b in patient_view(index.conn, pid).bundles:
            rows.append(state_row(b, READY if b.complete else READY_INCOMPLETE))
    return rows


class Readiness:
    def __init__(self, index: Index, bus: EventBus, settle_seconds: float, store: Store | None = None) -> None:
        self.index = index
        self.bus = bus
        self.store = store
        self.settle = settle_seconds
        self._deadlines: dict[str, float] = {}  # waiting plan UID -> monotonic deadline
        self._patient_of: dict[str, str] = {}
        self._lock = threading.Lock()  # the dicts above are touched by the loop and by worker threads
        self._ticker = Ticker("readiness", self.step, self._next_wait)

    async def start(self) -> None:
        now = time.monotonic()
        for uid, row in (await asyncio.to_thread(self.index.bundle_states)).items():
            if row["state"] == WAITING:
                self._deadlines[uid] = now + self.settle
                self._patient_of[uid] = row["patient_id"]
        self.bus.subscribe(self.on_events)
        self._ticker.start()  # its first step evaluates sessions that ended while we were down

    async def stop(self) -> None:
        await self._ticker.stop()

    def _next_wait(self) -> float:
        with self._lock:
            if not self._deadlines:
                return POLL_SECONDS
            return min(POLL_SECONDS, min(self._deadlines.values()) - time.monotonic())

    def on_events(self, batch: list[Event]) -> None:
        now = time.monotonic()
        for ev in batch:
            if isinstance(ev, SessionEnded):
                self._ticker.kick()
            elif isinstance(ev, InstancesStored) and self._deadlines:
                touched = {i.patient_id for i in ev.items}
                with self._lock:
                    for uid, pid in self._patient_of.items():
                        if pid in touched and uid in self._deadlines:
                            self._deadlines[uid] = max(self._deadlines[uid], now + self.settle)

    async def step(self) -> None:
        events = await asyncio.to_thread(self._evaluate_sessions)
        now = time.monotonic()
        with self._lock:
            due = [uid for uid, t in self._deadlines.items() if t <= now]
        if due:
            events += await asyncio.to_thread(self._settle, due)
        for ev in events:
            self.bus.post(ev)

    # -- worker-thread parts -----------------------------------------------------------------------------------
    def _evaluate_sessions(self) -> list[Event]:
        sessions = self.index.sessions_to_evaluate()
        if not sessions:
            return []
        if self.store is not None:  # objects another process (rtstation import) stored
            self.store.load_known(self.index.session_pairs(sessions))
        events = self.evaluate_patients(self.index.session_patients(sessions), "association ended")
        self.index.mark_evaluated(sessions)
        return events

    def evaluate_patients(self, patients: Iterable[str], reason: str) -> list[Event]:
        events: list[Event] = []
        rows: list[tuple[object, ...]] = []
        for pid in sorted(patients):
            states = self.index.bundle_states(pid)
            view = patient_view(self.index.conn, pid)
            for b in view.bundles:
                prev = states.pop(b.plan_uid, None)
                if prev is not None and prev["signature"] == b.signature():
                    continue
                if b.complete:
                    self._forget(b.plan_uid)
                    rows.append(state_row(b, READY))
                    events.append(BundleChanged(b.plan_uid, pid, b.label, READY, True, 0))
                    events.append(BundleReady(b.plan_uid, pid, b.label, True, (), reason))
                    log.info("plan %s (%s) of patient %s is ready, complete (%s)", b.label, b.plan_uid, pid, reason)
                else:
                    with self._lock:
                        self._deadlines[b.plan_uid] = time.monotonic() + self.settle
                        self._patient_of[b.plan_uid] = pid
                    rows.append(state_row(b, WAITING))
                    events.append(BundleChanged(b.plan_uid, pid, b.label, WAITING, False, len(b.missing)))
            for uid, prev in states.items():  # plans whose files were removed
                self._forget(uid)
                events.append(BundleChanged(uid, pid, json.loads(prev["summary"] or "{}").get("label", ""),
                                            REMOVED, False, 0))
            self.index.delete_bundle_states(states)
        self.index.save_bundle_states(rows)
        return events

    def _settle(self, due: list[str]) -> list[Event]:
        events: list[Event] = []
        rows = []
        for uid in due:
            pid = self._patient_of.get(uid, "")
            self._forget(uid)
            b = bundle_for(self.index.conn, uid)
            if b is None:
                continue
            state = READY if b.complete else READY_INCOMPLETE
            rows.append(state_row(b, state))
            missing = tuple(m.uid for m in b.missing)
            events.append(BundleChanged(uid, pid or b.patient_id, b.label, state, b.complete, len(missing)))
            events.append(BundleReady(uid, b.patient_id, b.label, b.complete, missing, "settled"))
            log.info("plan %s (%s) of patient %s is ready%s after %.0f s without new objects", b.label, uid,
                     b.patient_id, "" if b.complete else f", incomplete: {b.missing_summary()}", self.settle)
        self.index.save_bundle_states(rows)
        return events

    def _forget(self, uid: str) -> None:
        with self._lock:
            self._deadlines.pop(uid, None)
            self._patient_of.pop(uid, None)
