"""Typed engine events and the thread-safe sink that delivers them, batched, on the asyncio loop.

Why a sink: pynetdicom runs every association in its own thread and the console must never be touched from one.
Threads ``post()`` (a deque append, no lock, no wait); the loop drains everything that piled up and hands each
subscriber one list per wake-up, so a burst of 500 stores costs the UI one update, not 500.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

log = logging.getLogger("rtstation.events")


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class ReceiverState(Event):
    state: str  # "listening", "stopped" or "error"
    address: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AssociationOpened(Event):
    assoc_id: int
    calling_ae: str
    peer: str


@dataclass(frozen=True)
class AssociationRejected(Event):
    calling_ae: str
    peer: str
    reason: str


@dataclass(frozen=True)
class AssociationClosed(Event):
    assoc_id: int
    calling_ae: str
    peer: str
    instances: int
    nbytes: int
    seconds: float
    failures: int
    duplicates: int
    aborted: bool


@dataclass(frozen=True)
class ReceiveProgress(Event):
    """How many objects of one patient an open association has brought so far (``done``: the association ended).

    Posted by the receiver at most every ``PROGRESS_SECONDS`` per association (and at its first object of each
    patient, and at its end), so a peer sending a thousand objects a second costs a few events, not a thousand; the
    counts are cumulative, so a console that attaches mid-way or misses one is right again with the next."""

    assoc_id: int
    calling_ae: str
    patient_id: str
    patient_name: str
    received: int
    done: bool = False


@dataclass(frozen=True)
class StoredItem:
    patient_id: str
    sop_uid: str
    modality: str
    status: str  # stored, duplicate, conflict
    size: int
    source: str


@dataclass(frozen=True)
class InstancesStored(Event):
    """A batch of objects that are now in the store *and* the index."""

    items: tuple[StoredItem, ...]


@dataclass(frozen=True)
class InstanceQuarantined(Event):
    name: str
    reason: str
    source: str


@dataclass(frozen=True)
class SessionEnded(Event):
    session_id: int


@dataclass(frozen=True)
class BundleChanged(Event):
    plan_uid: str
    patient_id: str
    label: str
    state: str  # waiting, ready, ready-incomplete, removed
    complete: bool
    missing: int


@dataclass(frozen=True)
class BundleReady(Event):
    plan_uid: str
    patient_id: str
    label: str
    complete: bool
    missing: tuple[str, ...]  # SOP/series UIDs still missing
    reason: str  # "association ended", "settled", ...


@dataclass(frozen=True)
class JobChanged(Event):
    """A send job changed state: queued, sending, waiting-retry, done, failed or cancelled."""

    job_id: int
    node: str
    plan_uid: str
    label: str
    state: str
    done: int
    total: int
    failed: int
    error: str = ""
    commitment: str = ""  # a done job's storage commitment: '', waiting, committed, commit failed: N instances (…)


@dataclass(frozen=True)
class JobProgress(Event):
    job_id: int
    node: str
    plan_uid: str
    label: str
    done: int
    total: int
    bytes_done: int
    bytes_total: int
    rate: float  # instances per second over this attempt


@dataclass(frozen=True)
class LogEvent(Event):
    level: int
    logger: str
    message: str


@dataclass(frozen=True)
class MetricsComputed(Event):
    """A ready bundle's plan metrics and DVHs are stored (status ok, partial: no dose or structures, or error)."""

    plan_uid: str
    patient_id: str
    label: str
    status: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class RulesEvaluated(Event):
    """The rules looked at a ready bundle: which rules sent it, which hold it until it is complete, jobs made."""

    plan_uid: str
    patient_id: str
    label: str
    sent_by: tuple[str, ...]
    held_by: tuple[str, ...]
    jobs: tuple[int, ...]


@dataclass(frozen=True)
class ImportFolderState(Event):
    """The watched import folder: off (not configured), watching, or error (missing, unreadable: detail says)."""

    state: str
    folder: str
    detail: str = ""
    pending: int = 0  # files seen but not yet stable


@dataclass(frozen=True)
class ObjectsDeleted(Event):
    """Objects left the store (a delete by hand, retention, ``delete_after_send``): every view drops them; a
    patient with nothing left (``patient_gone``) leaves the tree. Each removed plan also gets ``BundleChanged``
    with state ``removed``."""

    patient_id: str
    plan_uids: tuple[str, ...]
    instances: int
    nbytes: int
    patient_gone: bool
    who: str


@dataclass(frozen=True)
class RetrieveProgress(Event):
    """A retrieve the station runs ([QR], started by the console or the API): one C-MOVE/C-GET response's
    sub-operation counts for the unit (``step``: "RTSTRUCT: structure set") now on the wire."""

    retrieve_id: int
    node: str
    patient_id: str
    step: str
    remaining: int | None
    completed: int
    failed: int
    warning: int


@dataclass(frozen=True)
class RetrieveFinished(Event):
    """The retrieve ended: ``ok`` False with ``message`` saying why (the node refused, no plan matched...)."""

    retrieve_id: int
    node: str
    patient_id: str
    ok: bool
    message: str
    stored: int = 0
    skipped: int = 0
    failed: int = 0
    plans: tuple[str, ...] = ()  # the labels of the plans pulled


Subscriber = Callable[[list[Event]], Awaitable[None] | None]


class EventBus:
    def __init__(self) -> None:
        self._queue: collections.deque[Event] = collections.deque()
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def post(self, event: Event) -> None:
        """Thread-safe, never blocks. Before ``start()`` events simply wait in the queue."""
        self._queue.append(event)
        loop = self._loop
        if loop is not None and not self._scheduled:
            self._scheduled = True
            try:
                loop.call_soon_threadsafe(self._set_wake)
            except RuntimeError:  # loop closed during shutdown
                pass

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="event-bus")
        if self._queue:
            self._wake.set()

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._loop = None

    async def drain(self) -> None:
        """Deliver whatever is queued now (used at shutdown and by tests)."""
        await self._deliver()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._scheduled = False
            await self._deliver()

    async def _deliver(self) -> None:
        batch: list[Event] = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return
        for fn in list(self._subscribers):
            try:
                result: Any = fn(batch)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one broken subscriber must not silence the others
                log.exception("event subscriber %r failed", fn)


class BusLogHandler(logging.Handler):
    """Turns log records into LogEvents, so subscribers (the console's log pane) see the same lines as the file."""

    def __init__(self, bus: EventBus, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.bus = bus
        from .logsetup import SafeFormatter  # values from the network must not break or forge lines in the pane

        self.setFormatter(SafeFormatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bus.post(LogEvent(record.levelno, record.name, self.format(record), at=record.created))
        except Exception:
            self.handleError(record)
