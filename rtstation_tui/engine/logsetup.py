"""Logging: one tree of loggers under ``rtstation``; the console, the daily file and the TUI's log pane are all
handlers of it, so they show the same lines."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import TextIO

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
