"""pynetdicom's own ERROR lines for an outgoing connection that fails, folded into the one line our caller logs.

Why: a send or C-ECHO to a node that is down gave three lines per attempt: pynetdicom's ``Association request
failed: unable to connect to remote`` and ``TCP Initialisation Error: [Errno 111] Connection refused`` (ERROR, no
node named), then ours (``job 4 to ARCHIVE (...): connection refused: nothing listening on ...``). The operator
reads red lines that say less than ours, in the log pane, the daily file and the API's log records alike.

A filter on pynetdicom's ``transport`` logger (so every handler sees the same records) drops those lines and keeps
their reason, keyed by the thread that logged it: the association's DUL thread, which made the connection attempt.
``connect_error(assoc)`` hands the reason to ``describe_failure`` (outbound/scu.py), which needs it when a plain
TCP probe connects (a TLS handshake that failed says why only there).

The same for a peer that rejects or aborts the request, or never answers it: pynetdicom's ``acse`` logger says
``Association Rejected`` / ``Result: …`` / ``Reason: …`` (or ``Association Aborted``, ``ACSE timeout reached…``)
at ERROR, and our line says which node and why. Only for associations we request through ``outbound/scu.py``:
its ``EVT_REQUESTED`` handler (``ours``, run in the association's thread, where those lines are logged) marks the
thread; the sub-associations pynetdicom's own C-MOVE SCP makes keep their lines. Anything else passes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

TRANSPORT_LOGGER = "pynetdicom.transport"  # where AssociationSocket.connect logs (manifest.py pins it)
FAILED = "Association request failed: unable to connect to remote"
REASON = "TCP Initialisation Error: "
KEEP = 64  # reasons not yet collected (a caller that never asks): the oldest are forgotten
ACSE_LOGGER = "pynetdicom.acse"
ACSE_LINES = frozenset({"Association Rejected", "Association Aborted", "No accepted presentation contexts",
                        "ACSE timeout reached while waiting for response to association request"})
ACSE_DETAILS = ("Result: ", "Reason: ")  # the two lines after "Association Rejected"


class ConnectFailureFilter(logging.Filter):
    """Drops pynetdicom's connect-failure lines (and the TLS traceback that may follow them); remembers why."""

    def __init__(self) -> None:
        super().__init__("")
        self._reasons: dict[int, str] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        if message == FAILED:
            return False
        if message.startswith(REASON):
            with self._lock:
                self._reasons[record.thread or 0] = message[len(REASON):]
                while len(self._reasons) > KEEP:
                    self._reasons.pop(next(iter(self._reasons)))
            return False
        with self._lock:  # LOGGER.exception(exc) right after a TLS failure, in the same thread: the reason has it
            return not (record.exc_info and (record.thread or 0) in self._reasons)

    def take(self, thread_id: int | None) -> str | None:
        with self._lock:
            return self._reasons.pop(thread_id or 0, None)


class AcseFailureFilter(logging.Filter):
    """Drops pynetdicom's negotiation-failure lines of the association threads we marked as ours."""

    def __init__(self) -> None:
        super().__init__("")
        self.threads: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or (record.thread or 0) not in self.threads:
            return True
        message = record.getMessage()
        return not (message in ACSE_LINES or message.startswith(ACSE_DETAILS))


_FILTER = ConnectFailureFilter()
_ACSE = AcseFailureFilter()


def fold_connect_errors() -> None:
    """Install the filters once (idempotent; every outgoing association calls it before connecting)."""
    for name, flt in ((TRANSPORT_LOGGER, _FILTER), (ACSE_LOGGER, _ACSE)):
        logger = logging.getLogger(name)
        if flt not in logger.filters:
            logger.addFilter(flt)


def ours(event: Any) -> None:
    """``EVT_REQUESTED`` handler of our outgoing associations: their negotiation lines are folded into ours."""
    _ACSE.threads.add(threading.get_ident())


def done_with(assoc: Any) -> None:
    """The association's negotiation is over (``ae.associate`` returned): forget its thread."""
    _ACSE.threads.discard(getattr(assoc, "ident", None) or 0)


def connect_error(assoc: Any) -> str | None:
    """Why this association's TCP (or TLS) connection failed, as pynetdicom logged it; None if it did not say."""
    dul = getattr(assoc, "dul", None)
    return _FILTER.take(getattr(dul, "ident", None))
