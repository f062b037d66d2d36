"""SQLite in WAL mode with one connection per thread, shared by the index and the send queue.

Why per thread: a sqlite3 connection must not be used from two threads at once, and the engine reads from the
asyncio loop's workers, the indexer, pynetdicom's association threads and the sender's node threads.
Opening brings the file to its schema's version (``store/schema``): tables are created nowhere else.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .schema import Schema, SchemaError


def connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


# What to do about a damaged file, per database (``Schema.name``): the index is derived data, the queue is not.
REMEDY = {
    "index": "stop the station and run `rtstation index --rebuild`: the index is recreated from the stored files, "
             "nothing is lost",
    "queue": "run `rtstation queue repair`: it keeps every job and delivery record it can still read and sets the "
             "damaged file aside (`rtstation queue reset` starts an empty queue instead, also keeping the old file)",
}


class DatabaseUnusable(SchemaError):
    """A database file that cannot be opened or used (damaged, not a database, disk full): the message names the
    file, what is wrong and what to do, for the operator instead of a traceback."""


def unusable(path: Path, name: str, exc: BaseException) -> DatabaseUnusable:
    """The operator's message for ``exc`` raised while opening or checking ``path``: a full disk, an I/O failure
    (the file may be sound: nothing to repair yet) or a damaged file (with its repair)."""
    text = str(exc)
    free = _free_mb(path.parent)
    if "full" in text or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return DatabaseUnusable(f"{path}: cannot write the {name} database: the disk is full ({text}; {free}). Free "
                                f"space on {path.parent} (or move data_dir), then start again; nothing was changed")
    if isinstance(exc, OSError) or any(w in text for w in ("disk I/O error", "unable to open", "readonly")):
        return DatabaseUnusable(f"{path}: cannot read or write the {name} database ({text}; {free}): the disk may be "
                                f"full, read-only or failing. Fix that, then start again; the file is left as it is. "
                                f"Should it fail the same way on a sound disk, {REMEDY.get(name, 'restore it')}")
    return DatabaseUnusable(f"{path}: the {name} database is damaged ({text}). To go on, "
                            f"{REMEDY.get(name, 'restore it from a backup')}")


def _free_mb(folder: Path) -> str:
    try:
        st = os.statvfs(folder)
    except OSError:
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize / 1e6:.0f} MB free there"


class Database:
    def __init__(self, path: Path, schema: Schema) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.schema = schema
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            schema.upgrade(self.conn, self.path)
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            self.close()
            raise unusable(self.path, schema.name, exc) from exc

    def check_integrity(self) -> None:
        """``PRAGMA quick_check`` (every page read once; fractions of a second for a large index): a damaged file
        is named at start, not found by a traceback in the middle of a receive or a send."""
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as exc:
            raise unusable(self.path, self.schema.name, exc) from exc
        if rows != ["ok"]:
            raise unusable(self.path, self.schema.name, sqlite3.DatabaseError("; ".join(rows)))

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = connect(self.path)
        return c

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error (writers never interleave half-done changes)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
