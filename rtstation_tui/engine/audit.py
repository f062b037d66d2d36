"""The audit log: one JSON object per line in ``<log dir>/audit-YYYY-MM-DD.jsonl``, kept ``retention_days``.

Why separate from the daily log: the daily log is for people (wording changes, levels filter it); the audit log is
for questions asked months later ("who sent this plan, from where, and what did we do with it?") and for scripts,
so its lines are stable JSON records. Written at the point of decision (not from the event bus), flushed to the OS,
never fsynced (the files are the truth, this is the trail).

One exception, for the receive path's sake: the ``stored``/``conflict`` record of an object that is new in the store
(``audit_object``) is *deferred*: kept in memory as data and written, with everything deferred before it, by the next
``flush_deferred()``. The index calls that before it commits any instance rows (``store/index.py: Index.add``), every
other ``audit()`` call and ``close()`` do too, and so does process exit. So every indexed object has its record, and a
crash (kill -9) can only lose the records of objects not yet indexed, which are exactly the files the start-up
reconcile finds in the store without an index row: it indexes them and writes their ``stored`` record then, marked
``"recovered": true`` (``intake/rebuild.py``). A record may so appear twice (written just before the crash, then
recovered), never not at all. Duplicates, refusals, quarantines and association records are written at once.

Kinds written now: ``association_opened``, ``association_closed``, ``association_rejected``, ``connection_refused``
(TLS), ``stored``, ``duplicate``, ``conflict``, ``quarantined``, ``config_reloaded``. The sender and rules add
``rule_decision`` and ``send_result`` with the same ``audit(kind, **fields)`` call.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("rtstation.audit")
_NAME = re.compile(r"^audit-(\d{4}-\d{2}-\d{2})\.jsonl$")
_ENCODER = json.JSONEncoder(ensure_ascii=True, default=str)  # control characters arrive escaped
DEFERRED_MAX = 1024  # deferred records written inline once this many wait (nobody indexing: a bounded memory)


class AuditLog:
    """Thread-safe appender with a file per local day and retention."""

    def __init__(self, directory: Path, retention_days: int = 30) -> None:
        self.directory = Path(directory)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._day: date | None = None
        self._fh: IO[str] | None = None
        self._broken = False
        self._deferred: list[tuple[float, str, dict[str, Any]]] = []

    def path_for(self, day: date) -> Path:
        return self.directory / f"audit-{day.isoformat()}.jsonl"

    def write(self, kind: str, fields: dict[str, Any]) -> None:
        """Write one record now (after any deferred ones, so the file keeps the order of decisions)."""
        with self._lock:
            self._write_locked(self._deferred + [(time.time(), kind, fields)])
            self._deferred = []

    def defer(self, kind: str, fields: dict[str, Any]) -> None:
        """Keep one record for the next ``flush_deferred`` (see the module docstring for why this is safe)."""
        item = (time.time(), kind, fields)
        with self._lock:
            self._deferred.append(item)
            if len(self._deferred) < DEFERRED_MAX:
                return
            batch, self._deferred = self._deferred, []
            self._write_locked(batch)

    def flush_deferred(self) -> None:
        with self._lock:
            if self._deferred:
                batch, self._deferred = self._deferred, []
                self._write_locked(batch)

    def _write_locked(self, records: list[tuple[float, str, dict[str, Any]]]) -> None:
        days: dict[date, list[str]] = {}  # a batch across midnight goes to both days' files
        for now, kind, fields in records:
            record = {"time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
                      "kind": kind, **fields}
            days.setdefault(date.fromtimestamp(now), []).append(_ENCODER.encode(record))
        try:
            for day, lines in days.items():
                fh = self._file(day)
                fh.write("\n".join(lines) + "\n")
                fh.flush()
            self._broken = False
        except OSError as exc:
            if not self._broken:  # once per outage, not once per instance
                log.error("cannot write the audit log in %s: %s", self.directory, exc)
            self._broken = True

    def _file(self, today: date) -> IO[str]:
        if self._fh is None or today != self._day:
            if self._fh is not None:
                self._fh.close()
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(self.path_for(today), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
            self._day = today
            self.prune(today)
        return self._fh

    def prune(self, today: date) -> int:
        """Remove audit files older than ``retention_days`` (as the daily log handler does with its files)."""
        oldest = today - timedelta(days=self.retention_days)
        removed = 0
        for p in self.directory.iterdir():
            m = _NAME.match(p.name)
            if m and date.fromisoformat(m.group(1)) < oldest:
                try:
                    p.unlink()
                    removed += 1
                except OSError as exc:
                    log.warning("cannot remove old audit file %s: %s", p, exc)
        return removed

    def close(self) -> None:
        with self._lock:
            if self._deferred:
                batch, self._deferred = self._deferred, []
                self._write_locked(batch)
            if self._fh is not None:
                self._fh.close()
                self._fh = None


_current: AuditLog | None = None
_current_lock = threading.Lock()


def configure(directory: Path | None, retention_days: int = 30) -> AuditLog | None:
    """Send ``audit()`` records to ``directory`` (None: nowhere). The process has one audit log."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = AuditLog(directory, retention_days) if directory is not None else None
        return _current


def audit(kind: str, **fields: Any) -> None:
    """Record one auditable fact. Cheap, thread-safe, never raises (a full disk is logged once)."""
    sink = _current
    if sink is not None:
        sink.write(kind, fields)


def flush_deferred() -> None:
    """Write the deferred ``stored``/``conflict`` records now: the index calls this before it commits rows."""
    sink = _current
    if sink is not None:
        sink.flush_deferred()


atexit.register(flush_deferred)


def audit_object(info: Any, placed: Any, **fields: Any) -> None:
    """``stored`` / ``duplicate`` / ``conflict`` for one object: its identity, where it is, and who brought it.

    A file new in the store (``stored``, ``conflict``) is recorded deferred (the module docstring says why nothing is
    lost); a duplicate adds nothing to the store that a restart could find, so its record is written at once."""
    sink = _current
    if sink is None:
        return
    record = {"sop_uid": info.sop_uid, "sop_class": info.sop_class, "modality": info.modality,
              "patient_id": info.patient_id, "study_uid": info.study_uid, "transfer_syntax": info.transfer_syntax,
              "path": placed.relpath, "size": placed.size, **fields}
    if placed.status == "duplicate":
        sink.write(placed.status, record)
    else:
        sink.defer(placed.status, record)
