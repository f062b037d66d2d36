"""The audit log: one JSON object per line in ``<log dir>/audit.jsonl``.

Minimal stand-in so rules can record their decisions; a fuller module (daily files, retention, more kinds) is being
written on another branch with the same ``audit(kind, **fields)`` and ``configure(directory, retention_days)``
calls, and replaces this one. Why JSON lines: questions asked months later ("why did this plan go to QA?") are
answered by scripts, so records must be stable, one per line, and flushed when written.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("rtstation.audit")


class AuditLog:
    """Thread-safe appender; a write error is logged once per outage and never raised."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "audit.jsonl"
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self._broken = False

    def write(self, kind: str, fields: dict[str, Any]) -> None:
        record = {"time": datetime.fromtimestamp(time.time(), timezone.utc).isoformat(timespec="milliseconds"),
                  "kind": kind, **fields}
        line = json.dumps(record, ensure_ascii=True, default=str) + "\n"
        with self._lock:
            try:
                if self._fh is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                    self._fh = os.fdopen(fd, "a", encoding="utf-8")
                self._fh.write(line)
                self._fh.flush()
                self._broken = False
            except OSError as exc:
                if not self._broken:
                    log.error("cannot write the audit log %s: %s", self.path, exc)
                self._broken = True

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


_current: AuditLog | None = None
_current_lock = threading.Lock()


def configure(directory: Path | None, retention_days: int = 30) -> AuditLog | None:
    """Send ``audit()`` records to ``directory`` (None: nowhere). The process has one audit log."""
    global _current
    del retention_days  # kept by the fuller module; accepted here so callers need not change
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = AuditLog(directory) if directory is not None else None
        return _current


def audit(kind: str, **fields: Any) -> None:
    """Record one auditable fact. Cheap, thread-safe, never raises."""
    sink = _current
    if sink is not None:
        sink.write(kind, fields)
