"""Broken-looking files in the watched folder that may still be growing: held, not quarantined.

Why: a file written slowly (a network share, a TPS that exports in bursts) can sit unchanged for longer than
``settle_seconds`` while its writer still has it open. Checked then, it is a truncated fragment; moved into
quarantine, the writer's next bytes go nowhere, the object is never stored and the source is gone. So a file that
fails the check while it may still grow is *held*: left where it is and looked at again when it changes. It goes
to quarantine only once it is known complete and still broken: its writer closed it after its last change
(inotify close-write, through watchdog), or it has not changed for ``hold_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rtstation.watcher")


@dataclass(frozen=True)
class _Held:
    size: int
    mtime_ns: int
    reason: str


class Holds:
    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self._held: dict[Path, _Held] = {}
        self._closed: dict[Path, int] = {}  # path -> wall-clock ns of its last close-write event
        self._lock = threading.Lock()

    def closed(self, path: Path) -> None:
        """A writer closed ``path`` (watchdog's thread)."""
        with self._lock:
            self._closed[path] = time.time_ns()

    def complete(self, path: Path, st: tuple[int, int], stable_for: float) -> bool:
        """Whether ``path`` (size, mtime_ns ``st``) can no longer grow: closed after its last change, or unchanged
        for ``hold_seconds`` (as watched, or by its mtime: a file left there long before the station started)."""
        with self._lock:
            closed_at = self._closed.get(path, 0)
        unchanged = max(stable_for, time.time() - st[1] / 1e9)
        return closed_at >= st[1] or unchanged >= self.hold_seconds

    def due(self, path: Path, st: tuple[int, int], stable_for: float) -> bool:
        """Whether a settled file should be looked at now: not held, changed since it was held, or complete."""
        with self._lock:
            held = self._held.get(path)
        return held is None or (held.size, held.mtime_ns) != st or self.complete(path, st, stable_for)

    def hold(self, path: Path, st: tuple[int, int], reason: str) -> None:
        with self._lock:
            before = self._held.get(path)
            self._held[path] = _Held(st[0], st[1], reason)
        if before is not None:
            log.info("import folder: %s grew to %d bytes and is still incomplete; still held", path, st[0])
        else:
            log.warning("import folder: %s looks incomplete (%s); left in place until it is complete (closed by its "
                        "writer, or unchanged for %.0f s), quarantined only if it is still broken then", path,
                        reason, self.hold_seconds)

    def forget(self, path: Path) -> None:
        with self._lock:
            self._held.pop(path, None)
            self._closed.pop(path, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
