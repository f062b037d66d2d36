"""Storage retention: remove plan bundles older than ``[retention] days`` whose sends are all done.

Never removed: anything unsent (a bundle with no delivered job, unconnected objects), anything in a queued, running
or waiting job, anything whose last send failed or was cancelled, and objects another kept bundle still references
(a CT shared by two plans stays while either plan is kept).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..audit import audit
from ..plans.bundle import all_views
from ..store.index import Index
from .queue import ACTIVE, DONE, JobQueue
from ..store.files import Store

log = logging.getLogger("rtstation.retention")


@dataclass
class Removal:
    patient_id: str
    plan_uid: str
    label: str
    files: list[str] = field(default_factory=list)  # relative store paths
    nbytes: int = 0


@dataclass
class Kept:
    patient_id: str
    plan_uid: str
    label: str
    why: str


def plan_cleanup(index: Index, queue: JobQueue, store: Store, days: float, now: float | None = None
                 ) -> tuple[list[Removal], list[Kept]]:
    """What would be removed (and why the other old bundles stay). Pure: changes nothing."""
    cutoff = (now or time.time()) - days * 86400
    removals: list[Removal] = []
    kept: list[Kept] = []
    for view in all_views(index.conn):
        keep_paths: set[str] = {m.path for m in view.unconnected}
        candidates = []
        for b in view.bundles:
            newest = max((m.received_at for m in b.members), default=0.0)
            why = _why_keep(queue, store, b.plan_uid, [m.path for m in b.members]) if newest < cutoff else "recent"
            if why:
                keep_paths.update(m.path for m in b.members)
                if why != "recent":
                    kept.append(Kept(view.patient_id, b.plan_uid, b.label, why))
            else:
                candidates.append(b)
        for b in candidates:
            files = sorted({m.path for m in b.members} - keep_paths)
            size = sum(m.size for m in b.members if m.path in files)
            removals.append(Removal(view.patient_id, b.plan_uid, b.label, files, size))
            keep_paths.update(files)  # another candidate sharing them must not list them twice
    return removals, kept


def _why_keep(queue: JobQueue, store: Store, plan_uid: str, paths: list[str]) -> str:
    jobs = queue.history(plan_uid)
    if not jobs:
        return "never sent"
    if any(j.state in ACTIVE for j in jobs):
        return "a send is queued or running"
    latest: dict[str, str] = {}
    for j in jobs:  # ordered by id: the last job per node decides
        latest[j.node] = j.state
    bad = sorted(n for n, s in latest.items() if s != DONE)
    if bad:
        return f"last send to {', '.join(bad)} did not complete"
    absolute = [str(store.abspath(p)) for p in paths]
    busy = [n for n in {j.node for j in queue.jobs(active_only=True)} if queue.pending(n, absolute)]
    if busy:
        return f"objects are in a running job to {', '.join(sorted(busy))}"
    return ""


def apply_cleanup(index: Index, store: Store, removals: list[Removal]) -> int:
    """Delete the files first (the truth), then their index rows. Returns files removed."""
    n = 0
    for r in removals:
        for rel in r.files:
            try:
                store.abspath(rel).unlink()
                n += 1
            except FileNotFoundError:
                pass
        sops = _sops_by_path(index, r.files)
        index.remove_paths(r.files)
        index.delete_bundle_states([r.plan_uid])
        for rel in r.files:
            store.forget(sops.get(rel, ""), rel)
        log.info("retention: removed plan %s (%s) of patient %s: %d files, %.1f MB", r.label, r.plan_uid,
                 r.patient_id, len(r.files), r.nbytes / 1e6)
        audit("removed", plan_uid=r.plan_uid, label=r.label, patient_id=r.patient_id, files=len(r.files),
              bytes=r.nbytes, reason="retention: every send done and older than the limit")
    return n


def _sops_by_path(index: Index, paths: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(paths), 500):
        chunk = paths[i:i + 500]
        q = f"SELECT path, sop_uid FROM instances WHERE path IN ({','.join('?' * len(chunk))})"
        out.update({r[0]: r[1] for r in index.conn.execute(q, chunk)})
    return out


class RetentionService:
    """``[retention] auto = true``: the cleanup runs when the station starts and then once a day."""

    def __init__(self, days: float, index: Index, queue: JobQueue, store: Store) -> None:
        from ..loops import Ticker

        self.days, self.index, self.queue, self.store = days, index, queue, store
        self._ticker = Ticker("retention", self._step, lambda: 86400.0)

    async def start(self, station: object = None) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()

    async def _step(self) -> None:
        import asyncio

        def work() -> None:
            removals, _ = plan_cleanup(self.index, self.queue, self.store, self.days)
            if removals:
                apply_cleanup(self.index, self.store, removals)
        await asyncio.to_thread(work)
