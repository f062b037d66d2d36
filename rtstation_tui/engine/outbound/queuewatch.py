"""Notices send-job changes this process did not make, so every view hears of them.

Why: ``rtstation queue cancel N``, ``queue retry`` or ``send`` in another shell write ``queue.sqlite`` directly;
the serving process only announced its own changes, so the console kept showing a cancelled job as
``waiting-retry`` indefinitely. SQLite's ``PRAGMA data_version`` on a connection of its own tells, for the price of
one pragma, whether anyone committed since the last look; only then are the recently updated jobs read and
compared with the last state this process knows (announced by the sender, or seen here before).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..store.db import connect
from .queue import JobRow

SLACK_SECONDS = 5.0  # other processes' clocks and commit order: look a little behind the newest update seen


def _key(job: JobRow) -> tuple[str, int, str]:
    return job.state, job.failed, job.error or ""


class QueueWatch:
    def __init__(self, path: Path) -> None:
        self._conn = connect(path)
        self._version: int | None = None
        self._since = time.time()
        self._known: dict[int, tuple[str, int, str]] = {}
        self._lock = threading.Lock()

    def note(self, job: JobRow) -> None:
        """The sender announced ``job`` as it is now (from any thread): not news when seen here."""
        with self._lock:
            self._known[job.id] = _key(job)

    def changed(self) -> list[JobRow]:
        """Jobs whose state, failures or error changed since last known, by whoever (one caller at a time)."""
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return []
        self._version = version
        rows = [JobRow(**dict(r)) for r in self._conn.execute(
            "SELECT * FROM jobs WHERE updated >= ? ORDER BY id", (self._since - SLACK_SECONDS,))]
        out = []
        with self._lock:
            for job in rows:
                self._since = max(self._since, job.updated)
                if self._known.get(job.id) != _key(job):
                    self._known[job.id] = _key(job)
                    out.append(job)
        return out

    def close(self) -> None:
        self._conn.close()
