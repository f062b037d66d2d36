"""The plans a station service still has to act on after ``BundleReady``, worked off in the service's thread.

Why one piece for several services: the rules and the metrics both act once per ready bundle, off the event loop;
both catch up at start on what was announced while they were not running; and both keep a plan whose work failed
(database busy, a worker process lost) to try it again later instead of dropping it. Only *what* they do differs.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Generic, Iterable, TypeVar

READY_STATES = ("ready", "ready-incomplete")

T = TypeVar("T")


class ReadyWork(Generic[T]):
    """``work(uid, why)`` per pending plan; ``catch_up()`` once, before the first round, yields (uid, why)."""

    def __init__(self, what: str, log: logging.Logger, retry_s: float, work: Callable[[str, str], T | None],
                 catch_up: Callable[[], Iterable[tuple[str, str]]],
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.what, self.log, self.retry_s = what, log, retry_s
        self._work, self._catch_up, self._stopping = work, catch_up, stopping
        self._pending: dict[str, str] = {}  # plan uid -> why it is worked on (the BundleReady reason)
        self._lock = threading.Lock()
        self._caught_up = False

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, uid: str, why: str) -> None:
        with self._lock:
            self._pending[uid] = why

    def discard(self, uid: str) -> None:
        with self._lock:
            self._pending.pop(uid, None)

    def _keep(self, uid: str, why: str) -> None:
        with self._lock:
            self._pending.setdefault(uid, why)

    def run(self) -> list[T]:
        """One round, in the service's worker thread: what each plan's work returned (None is left out)."""
        if not self._caught_up:
            for uid, why in self._catch_up():
                self._keep(uid, why)
            self._caught_up = True
        with self._lock:
            pending, self._pending = self._pending, {}
        out: list[T] = []
        for uid, why in pending.items():
            if self._stopping():
                break  # what is left is found again by the next start's catch-up
            try:
                result = self._work(uid, why)
            except Exception:
                if self._stopping():
                    self.log.info("%s of plan %s interrupted by the stop; done at the next start", self.what, uid)
                    break
                self.log.exception("%s of plan %s failed; trying again in %.0f s", self.what, uid, self.retry_s)
                self._keep(uid, why)
                continue
            if result is not None:
                out.append(result)
        return out
