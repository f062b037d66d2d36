"""The metrics worker: when a bundle becomes ready, its plan metrics and DVHs are computed and stored.

Why this shape:
- Like the rules, it acts on ``BundleReady`` and never per instance, and it remembers per plan the bundle
  signature it computed for: a restart recomputes nothing that did not change, a bundle that changes (its dose
  arrived later) is recomputed, and at start it catches up on ready bundles without metrics (after
  ``index --rebuild``, or a crash mid-computation).
- The computation runs in one separate, lower-priority process (``compute.compute``: NumPy plus Python loops for
  seconds): in a thread it would hold the GIL that the receiver's pynetdicom threads need. This service's own
  thread only reads the index, waits for the process and writes the rows.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from ..config.model import Config
from ..events import BundleChanged, BundleReady, Event, EventBus, MetricsComputed
from ..loops import Ticker
from ..plans.bundle import Bundle, bundle_for
from ..plans.readywork import READY_STATES, ReadyWork
from ..store.files import Store
from ..store.index import Index
from . import tables
from .compute import MetricsJob, compute

log = logging.getLogger("rtstation.metrics")
RETRY_SECONDS = 60.0


def job_for(bundle: Bundle, store: Store, signature: str, points: tuple[str, ...] = ()) -> MetricsJob | None:
    """What the worker process needs: absolute paths of the plan (newest version), its doses and structures."""
    def paths(part: str) -> tuple[str, ...]:
        chosen = sorted((m for m in bundle.members if m.part == part), key=lambda m: (-m.received_at, -m.version))
        return tuple(str(store.abspath(m.path)) for m in chosen)
    plans = paths("plan")
    if not plans:
        return None
    received = min((m.received_at for m in bundle.plan_members), default=0.0)
    return MetricsJob(bundle.plan_uid, bundle.patient_id, bundle.patient_name, signature, received, plans[0],
                      paths("dose"), paths("structure"), points)


def _lower_priority() -> None:
    try:
        os.nice(10)
    except OSError:
        pass


class MetricsService:
    """Station service. ``run_job`` may be replaced (tests, ``index --rebuild``) to compute in-process."""

    def __init__(self, config: Callable[[], Config], index: Index, store: Store, bus: EventBus) -> None:
        self._config = config
        self.index = index
        self.store = store
        self.bus = bus
        self._pending = ReadyWork("metrics", log, RETRY_SECONDS, lambda uid, why: self.refresh(uid), self._catch_up,
                                  lambda: self._stopping)
        self._removed: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._stopping = False
        self._ticker = Ticker("metrics", self._step, lambda: RETRY_SECONDS if self._pending else 3600.0)
        bus.subscribe(self.on_events)  # now, not in start(): readiness may announce bundles first

    async def start(self, station: Any = None) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        """Stop at once, also mid-computation: the worker process is terminated (what it was computing is not
        stored, so the next start's catch-up computes it again). A station stopping must not wait for a DVH."""
        self._stopping = True
        pool, self._pool = self._pool, None
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):  # no public way to end a busy worker
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
        await self._ticker.stop()

    def on_events(self, batch: list[Event]) -> None:
        touched = False
        for e in batch:
            if isinstance(e, BundleReady):
                self._pending.add(e.plan_uid, e.reason)
                touched = True
            elif isinstance(e, BundleChanged) and e.state == "removed":
                with self._lock:
                    self._removed.add(e.plan_uid)
                self._pending.discard(e.plan_uid)
                touched = True
        if touched:
            self._ticker.kick()

    async def _step(self) -> None:
        if not self._config().metrics.enabled:
            return
        for ev in await asyncio.to_thread(self.run_pending):
            self.bus.post(ev)

    # -- worker thread -----------------------------------------------------------------------------------------
    def run_pending(self) -> list[Event]:
        with self._lock:
            removed, self._removed = self._removed, set()
        if removed:
            tables.forget(self.index.conn, removed)
        return list(self._pending.run())

    def _catch_up(self) -> list[tuple[str, str]]:
        done = tables.signatures(self.index.conn)
        return [(uid, "ready without current metrics") for uid, row in self.index.bundle_states().items()
                if row["state"] in READY_STATES and done.get(uid) != row["signature"]]

    def refresh(self, plan_uid: str) -> MetricsComputed | None:
        """Compute and store the metrics of one ready bundle unless they are current. Idempotent."""
        conn = self.index.conn
        row = conn.execute("SELECT state, signature FROM bundles WHERE plan_uid=?", (plan_uid,)).fetchone()
        if row is None or row["state"] not in READY_STATES:
            return None  # changed since: a new BundleReady will come
        if tables.signatures(conn).get(plan_uid) == row["signature"]:
            return None
        bundle = bundle_for(conn, plan_uid)
        return self.compute_bundle(bundle, row["signature"]) if bundle is not None else None

    def compute_bundle(self, bundle: Bundle, signature: str) -> MetricsComputed | None:
        """Compute and store one bundle's metrics, remembered under ``signature``."""
        job = job_for(bundle, self.store, signature, self._config().metrics.dvh_points)
        if job is None:
            return None
        started = time.monotonic()
        log.info("computing metrics of plan %s (%s) of patient %s", bundle.label, bundle.plan_uid, job.patient_id)
        try:
            plan, rois = self.run_job(job)
        except (ValueError, OSError) as exc:  # unreadable plan: remembered, so it is not retried on every event
            plan, rois = error_row(job, f"{type(exc).__name__}: {exc}"), []
        tables.save(self.index.conn, plan, rois)
        seconds = time.monotonic() - started
        log.info("metrics of plan %s (%s) of patient %s: %s in %.1f s%s", bundle.label, bundle.plan_uid,
                 job.patient_id, plan["status"], seconds, f" ({plan['detail']})" if plan.get("detail") else "")
        return MetricsComputed(bundle.plan_uid, job.patient_id, plan.get("label") or bundle.label, plan["status"],
                               seconds,
                               plan.get("detail") or "")

    def run_job(self, job: MetricsJob) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self._stopping:
            raise RuntimeError("the station is stopping")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_lower_priority)
        try:
            return self._pool.submit(compute, job).result()
        except BrokenProcessPool:  # the worker died (out of memory? or we stop): a fresh one next time
            self._pool = None
            raise RuntimeError("the metrics worker process " + ("was stopped" if self._stopping else "died")) from None


def error_row(job: MetricsJob, detail: str) -> dict[str, Any]:
    return {"plan_uid": job.plan_uid, "patient_id": job.patient_id, "patient_name": job.patient_name,
            "received": job.received, "computed": time.time(), "signature": job.signature, "status": "error",
            "detail": detail, "facts": "{}"}
