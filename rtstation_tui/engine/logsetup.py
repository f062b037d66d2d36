"""Logging: one tree of loggers under ``rtstation``; the console, the daily file and the TUI's log pane are all
handlers of it, so they show the same lines."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from .config.model import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
ROOT = "rtstation"
_installed: list[logging.Handler] = []


class SafeFormatter(logging.Formatter):
    """Escapes control characters in messages: values from the network (a PatientID holding ESC sequences, CR/LF,
    NUL) must not forge log lines or repaint the operator's terminal. Tracebacks keep their newlines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_CONTROL)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        """The traceback's own lines as they are; the exception's message escaped like any message. Why: pynetdicom
        logs tracebacks whose message quotes what the peer sent (an AE title ``X\\x1b[31m\\nFORGE``)."""
        etype, value, tb = ei
        if value is None:
            return super().formatException(ei)
        parts: list[str] = []
        for exc in _chain(value):
            frames = "".join(traceback.format_tb(exc.__traceback__))
            last = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n").translate(_CONTROL)
            parts.append(("Traceback (most recent call last):\n" + frames if frames else "") + last)
        return "\n\nDuring handling of the above exception, another exception occurred:\n\n".join(parts)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or during, oldest first (as ``traceback`` prints them)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)  # type: ignore[assignment]
    return seen[::-1]


def setup_logging(config: Config, *, stream: TextIO | None = sys.stdout, level: str | None = None,
                  file: bool = True) -> logging.Logger:
    """(Re)install the handlers: ``stream`` (None: none) and the daily file in ``[logging] dir``."""
    root = logging.getLogger(ROOT)
    for h in _installed:
        root.removeHandler(h)
        logging.getLogger("pynetdicom").removeHandler(h)
        h.close()
    _installed.clear()
    root.setLevel(level or config.logging.level)
    root.propagate = False
    fmt = SafeFormatter(FORMAT)
    if stream is not None:
        console = logging.StreamHandler(stream)
        console.setFormatter(fmt)
        _installed.append(console)
    if file:
        _installed.append(daily_file_handler(config.log_dir, config.logging.retention_days, fmt))
    for h in _installed:
        root.addHandler(h)
    # pynetdicom's own warnings and errors (e.g. a peer's protocol error) belong in the same places
    pnd = logging.getLogger("pynetdicom")
    pnd.setLevel(logging.WARNING)
    pnd.propagate = False
    for h in _installed:
        pnd.addHandler(h)
    return root


def daily_file_handler(log_dir: Path, retention_days: int, fmt: logging.Formatter) -> logging.Handler:
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    handler = logging.handlers.TimedRotatingFileHandler(log_dir / "rtstation.log", when="midnight",
                                                        backupCount=retention_days, encoding="utf-8")
    handler.setFormatter(fmt)
    return handler


def add_handler(handler: logging.Handler) -> None:
    """Attach another sink (the console's log pane) to the same loggers."""
    logging.getLogger(ROOT).addHandler(handler)
    logging.getLogger("pynetdicom").addHandler(handler)


def remove_handler(handler: logging.Handler) -> None:
    logging.getLogger(ROOT).removeHandler(handler)
    logging.getLogger("pynetdicom").removeHandler(handler)
