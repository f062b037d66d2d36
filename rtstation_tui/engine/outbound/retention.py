"""Storage retention: remove plan bundles whose sends are all done, by age (``[retention] days``) and by size
(``[retention] max_store_gb``: the oldest fully delivered bundles go first until the store fits).

Never removed: anything unsent (a bundle with no delivered job, unconnected objects), anything in a queued, running
or waiting job, anything whose last send failed or was cancelled, anything a ``commitment = true`` node has not
committed, and objects another kept bundle still references (a CT shared by two plans stays while either plan is
kept). When only such data remains over the size limit, nothing more is removed: a warning names how far over the
store is (logged and audited once per run of the cleanup), never a deletion.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..audit import audit
from ..config.model import Config
from ..events import EventBus
from ..plans.bundle import Bundle, PatientView, all_views
from ..store.files import Store
from ..store.index import Index
from ..store.removal import remove_objects
from .commitment import state_of
from .deletion import announce, human_bytes
from .queue import ACTIVE, DONE, JobQueue

log = logging.getLogger("rtstation.retention")
SIZE_CHECK_S = 600.0  # how often the service compares the store with max_store_gb


@dataclass
class Removal:
    patient_id: str
    plan_uid: str
    label: str
    files: list[str] = field(default_factory=list)  # relative store paths
    nbytes: int = 0
    sop_uids: list[str] = field(default_factory=list)


@dataclass
class Kept:
    patient_id: str
    plan_uid: str
    label: str
    why: str


@dataclass(frozen=True)
class SizeCheck:
    """The size limit's verdict: the store's size before, the limit, and what stays over it (0: it fits)."""

    total: int
    limit: int
    over_after: int


def plan_cleanup(index: Index, queue: JobQueue, store: Store, days: float, now: float | None = None,
                 committing: Iterable[str] = ()) -> tuple[list[Removal], list[Kept]]:
    """What would be removed by age (and why the other old bundles stay). Pure: changes nothing.
    ``committing``: names of the nodes with ``commitment = true`` (their sends count only once committed)."""
    cutoff = (now or time.time()) - days * 86400
    nodes = frozenset(committing)
    removals: list[Removal] = []
    kept: list[Kept] = []
    for view in all_views(index.conn):
        keep_paths: set[str] = {m.path for m in view.unconnected}
        candidates = []
        for b in view.bundles:
            why = _why_keep(queue, store, b, nodes) if _newest(b) < cutoff else "recent"
            if why:
                keep_paths.update(m.path for m in b.members)
                if why != "recent":
                    kept.append(Kept(view.patient_id, b.plan_uid, b.label, why))
            else:
                candidates.append(b)
        for b in candidates:
            removals.append(_removal(view, b, {m.path for m in b.members} - keep_paths))
            keep_paths.update(m.path for m in b.members)  # another candidate sharing them must not list them twice
    return removals, kept


def plan_size_cleanup(index: Index, queue: JobQueue, store: Store, max_bytes: int, committing: Iterable[str] = ()
                      ) -> tuple[list[Removal], SizeCheck]:
    """The oldest fully delivered bundles whose removal brings the store under ``max_bytes``. Pure.

    A file goes with the last removable bundle referencing it: the first of two plans on one CT frees only its
    own objects, the second frees the CT."""
    total = index.usage()[1]
    if total <= max_bytes:
        return [], SizeCheck(total, max_bytes, 0)
    nodes = frozenset(committing)
    views = all_views(index.conn)
    refs: dict[str, Counter[str]] = {v.patient_id: Counter(p for b in v.bundles for p in {m.path for m in b.members})
                                     for v in views}
    loose = {m.path for v in views for m in v.unconnected}
    candidates = sorted(((_newest(b), v, b) for v in views for b in v.bundles if not _why_keep(queue, store, b, nodes)),
                        key=lambda t: (t[0], t[2].plan_uid))
    removals: list[Removal] = []
    freed = 0
    for _, view, b in candidates:
        if total - freed <= max_bytes:
            break
        count = refs[view.patient_id]
        paths = {m.path for m in b.members}
        for p in paths:
            count[p] -= 1
        r = _removal(view, b, {p for p in paths if count[p] <= 0 and p not in loose})
        removals.append(r)
        freed += r.nbytes
    return removals, SizeCheck(total, max_bytes, max(0, total - freed - max_bytes))


def _newest(b: Bundle) -> float:
    return max((m.received_at for m in b.members), default=0.0)


def _removal(view: PatientView, b: Bundle, files: set[str]) -> Removal:
    chosen = [m for m in {m.path: m for m in b.members}.values() if m.path in files]
    return Removal(view.patient_id, b.plan_uid, b.label, sorted(files), sum(m.size for m in chosen),
                   sorted({m.sop_uid for m in chosen}))


def _why_keep(queue: JobQueue, store: Store, b: Bundle, committing: frozenset[str]) -> str:
    jobs = queue.history(b.plan_uid)
    if not jobs:
        return "never sent"
    if any(j.state in ACTIVE for j in jobs):
        return "a send is queued or running"
    latest = {j.node: j for j in jobs}  # ordered by id: the last job per node decides
    bad = sorted(n for n, j in latest.items() if j.state != DONE)
    if bad:
        return f"last send to {', '.join(bad)} did not complete"
    uncommitted = sorted(n for n, j in latest.items() if n in committing and state_of(queue, j.id) != "committed")
    if uncommitted:
        return f"not committed by {', '.join(uncommitted)} (storage commitment)"
    absolute = [str(store.abspath(m.path)) for m in b.members]
    busy = sorted(f"{j.node}" for j in queue.active_with(absolute))
    if busy:
        return f"objects are in a running job to {', '.join(sorted(set(busy)))}"
    return ""


def apply_cleanup(index: Index, store: Store, removals: list[Removal], bus: EventBus | None = None,
                  reason: str = "retention: every send done and older than the limit") -> int:
    """Remove each bundle's files and index rows, journaled (``store/removal.py``). Returns files removed."""
    n = 0
    for r in removals:
        done = remove_objects(index, store, r.files, [r.plan_uid], [r.patient_id])
        n += done.files
        log.info("retention: removed plan %s (%s) of patient %s: %d files, %s freed (%s)", r.label, r.plan_uid,
                 r.patient_id, len(r.files), human_bytes(r.nbytes), reason)
        audit("removed", plan_uid=r.plan_uid, label=r.label, patient_id=r.patient_id, files=len(r.files),
              bytes=r.nbytes, sop_uids=r.sop_uids, reason=reason, who="retention")
        announce(bus, r.patient_id, [(r.plan_uid, r.label)], len(r.files), r.nbytes,
                 r.patient_id in done.gone_patients, "retention")
    return n


def warn_over_limit(check: SizeCheck) -> None:
    """Only unsent, queued or uncommitted data keeps the store over the limit: say so, delete nothing."""
    if check.over_after > 0:
        log.warning("store is %s, %s over [retention] max_store_gb (%s): what remains is unsent, queued, failed "
                    "or not committed, and is never removed. Send it, or raise the limit", human_bytes(check.total),
                    human_bytes(check.over_after), human_bytes(check.limit))
        audit("retention_over_limit", total=check.total, limit=check.limit, over=check.over_after)


def run_cleanup(index: Index, queue: JobQueue, store: Store, days: float, max_gb: float,
                committing: Iterable[str] = (), bus: EventBus | None = None) -> tuple[int, SizeCheck | None]:
    """Both limits, age first (what ``[retention] auto`` runs); returns files removed and the size verdict (None
    without a size limit). The caller warns (``warn_over_limit``): the service once per time over the limit."""
    nodes = tuple(committing)
    n = 0
    if days > 0:
        removals, _ = plan_cleanup(index, queue, store, days, committing=nodes)
        n += apply_cleanup(index, store, removals, bus)
    check = None
    if max_gb > 0:
        removals, check = plan_size_cleanup(index, queue, store, int(max_gb * 1e9), nodes)
        n += apply_cleanup(index, store, removals, bus, "retention: the store is over max_store_gb, oldest "
                           "delivered bundles first")
    return n, check


class RetentionService:
    """``[retention] auto = true``: the cleanup runs when the station starts, then by age once a day and by size
    every ``SIZE_CHECK_S`` (when ``max_store_gb`` is set). Limits are read at each run (a reload applies)."""

    def __init__(self, config: Callable[[], Config], index: Index, queue: JobQueue, store: Store,
                 bus: EventBus | None = None) -> None:
        from ..loops import Ticker

        self.config = config
        self.index, self.queue, self.store, self.bus = index, queue, store, bus
        self._last_age = 0.0
        self._over = False  # warned that only unsent data keeps the store over the limit (said once, not hourly)
        self._ticker = Ticker("retention", self._step, lambda: SIZE_CHECK_S)

    async def start(self, station: object = None) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()

    async def _step(self) -> None:
        import asyncio

        config = self.config()
        r = config.retention
        if not r.auto:
            return
        now = time.monotonic()
        age_due = r.days > 0 and (self._last_age == 0.0 or now - self._last_age >= 86400)
        if age_due:
            self._last_age = now
        committing = [n.name for n in config.nodes if n.commitment]
        days = r.days if age_due else 0.0
        _, check = await asyncio.to_thread(run_cleanup, self.index, self.queue, self.store, days, r.max_store_gb,
                                           committing, self.bus)
        over = check is not None and check.over_after > 0
        if check is not None and over and not self._over:
            warn_over_limit(check)
        self._over = over
