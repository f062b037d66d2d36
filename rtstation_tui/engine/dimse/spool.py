"""The chunked-receive spool: pynetdicom's temp files, guarded against a disk that fills up mid-transfer.

Why: with ``STORE_RECV_CHUNKED_DATASET`` pynetdicom 3.0.4 writes each incoming P-DATA fragment to a
``NamedTemporaryFile`` inside its state machine. When that write fails (disk full, quota, file-size limit) the
exception kills its DUL thread: the association vanishes without EVT_ABORTED or EVT_CONN_CLOSE (so no closing log
line, no session end), the peer sees an abort rather than a status it can act on, and the half-written temp file
keeps its space until the next start. ``min_free_mb`` cannot prevent this: it is checked when the C-STORE handler
runs, after the whole dataset has been spooled.

``install()`` replaces the module attribute ``pynetdicom.dimse_messages.NamedTemporaryFile`` (never the library's
files) with a factory whose files, on such a failure, free what they hold at once, swallow the rest of that
dataset, and remember why in their ``failed`` attribute. The file travels with the C-STORE request (pynetdicom
copies it to ``request._dataset_file``; the fast path sets the same attribute), so the handler asks
``failure(event.request)`` and answers 0xA700 (out of resources): the association lives on, nothing is stored, and
the sender may retry later. No table keyed by path: the answer is on the request it belongs to. Tested by
``tests/net/test_diskfull.py``; the pynetdicom code this relies on is pinned in ``manifest.py``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from typing import IO, Any

from pynetdicom import dimse_messages

SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class _NoFlush:
    """Stands in for the buffered file after a failure: pynetdicom flushes after every fragment."""

    def flush(self) -> None:
        pass


class GuardedSpoolFile:
    """A NamedTemporaryFile whose out-of-space failure frees the file and is recorded instead of raised."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name: str = inner.name
        self.failed: OSError | None = None

    def write(self, data: bytes) -> int:
        if self.failed is None:
            try:
                return int(self._inner.write(data))
            except OSError as exc:
                self._fail(exc)
        return len(data)

    @property
    def file(self) -> Any:
        return _NoFlush() if self.failed is not None else _FlushGuard(self)

    def _fail(self, exc: OSError) -> None:
        if exc.errno not in SPACE_ERRNOS:
            raise exc
        self.failed = exc
        try:
            os.ftruncate(self._inner.fileno(), 0)  # give the space back now, not when the handler runs
        except OSError:
            pass

    def close(self) -> None:
        try:
            self._inner.close()
        except OSError:  # the final flush of a failed file may fail again; the descriptor is closed regardless
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FlushGuard:
    def __init__(self, owner: GuardedSpoolFile) -> None:
        self._owner = owner

    def flush(self) -> None:
        try:
            self._owner._inner.file.flush()
        except OSError as exc:
            self._owner._fail(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner._inner.file, name)


def _guarded_named_temporary_file(*args: Any, **kwargs: Any) -> IO[bytes]:
    return GuardedSpoolFile(tempfile.NamedTemporaryFile(*args, **kwargs))  # type: ignore[return-value]


def install() -> None:
    """Guard every chunked-receive temp file pynetdicom creates from now on (idempotent)."""
    dimse_messages.NamedTemporaryFile = _guarded_named_temporary_file  # type: ignore[attr-defined]


def uninstall() -> None:
    """Stock pynetdicom temp files again (``[network] fast_paths = false``); idempotent."""
    dimse_messages.NamedTemporaryFile = tempfile.NamedTemporaryFile  # type: ignore[attr-defined]


def failure(request: Any) -> OSError | None:
    """Why the dataset of this C-STORE request could not be written completely to its temp file (None: it was, or
    the file is pynetdicom's unguarded one). Set by the spool writer on the DUL thread before the handler runs."""
    return getattr(getattr(request, "_dataset_file", None), "failed", None)
