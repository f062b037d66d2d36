"""``rtstation queue repair`` / ``queue reset``: a damaged ``queue.sqlite`` replaced by a sound one.

Why not like the index: the queue is not derived from the files. Its delivery history (which node acknowledged
which instance) is what stops a plan from being sent twice, and its jobs are work not yet done. So ``repair``
copies every job and item row SQLite can still read into a fresh file, row by row where a whole read fails, and
``reset`` starts empty; both keep the damaged file beside the new one (``queue.sqlite.damaged-<time>``), never
delete it. The caller makes sure no server uses this data_dir.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .queue import JobQueue

log = logging.getLogger("rtstation.queue")
MISSES = 1000  # row ids tried past the last readable one, when the table can only be read row by row


@dataclass(frozen=True)
class Repaired:
    jobs: int  # job rows kept
    items: int  # instance rows kept
    unreadable_jobs: int  # jobs whose instance rows could not be read (kept, marked failed)
    damaged_copy: str  # where the damaged file now is


def set_aside(data_dir: Path) -> Path:
    """Move queue.sqlite (and its -wal/-shm) to queue.sqlite.damaged-<time>; returns the new main file's path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = data_dir / f"queue.sqlite.damaged-{stamp}"
    for suffix in ("", "-wal", "-shm"):
        src = data_dir / f"queue.sqlite{suffix}"
        if src.exists():
            os.replace(src, f"{target}{suffix}")
    return target


def reset(data_dir: Path) -> Repaired:
    """An empty queue; the old file is kept aside."""
    aside = set_aside(data_dir)
    JobQueue(data_dir).close()
    log.warning("queue reset: the old queue is kept as %s", aside)
    return Repaired(0, 0, 0, str(aside))


def repair(data_dir: Path) -> Repaired:
    """A fresh queue holding every job and item row that can still be read from the damaged one."""
    aside = set_aside(data_dir)
    jobs, items, broken = _salvage(aside)
    fresh = JobQueue(data_dir)
    try:
        with fresh.transaction() as conn:
            job_cols = _columns(conn, "jobs")
            item_cols = _columns(conn, "items")
            for row in jobs:
                if row["id"] in broken:
                    row = {**row, "state": "failed", "error": "its instance list was lost in a damaged queue "
                           "(queue repair): send the plan again"}
                _insert(conn, "jobs", job_cols, row)
            for row in items:
                _insert(conn, "items", item_cols, row)
    finally:
        fresh.close()
    log.warning("queue repair: kept %d jobs and %d instance records; the damaged queue is kept as %s", len(jobs),
                len(items), aside)
    return Repaired(len(jobs), len(items), len(broken), str(aside))


def _salvage(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[int]]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return [], [], set()
    conn.row_factory = sqlite3.Row
    try:
        jobs = _rows(conn, "SELECT * FROM jobs ORDER BY id", "SELECT * FROM jobs WHERE id=?")
        items: list[dict[str, Any]] = []
        broken: set[int] = set()
        for job in jobs:
            try:
                items += [dict(r) for r in conn.execute("SELECT * FROM items WHERE job_id=? ORDER BY seq",
                                                        (job["id"],))]
            except sqlite3.DatabaseError:
                broken.add(int(job["id"]))
        return jobs, items, broken
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, whole: str, one: str) -> list[dict[str, Any]]:
    """All rows in one read, else row id by row id until ``MISSES`` ids in a row are missing or unreadable."""
    try:
        return [dict(r) for r in conn.execute(whole)]
    except sqlite3.DatabaseError:
        pass
    out: list[dict[str, Any]] = []
    rowid, misses = 1, 0
    while misses < MISSES:
        try:
            row = conn.execute(one, (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None:
            misses += 1
        else:
            misses = 0
            out.append(dict(row))
        rowid += 1
    return out


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _insert(conn: sqlite3.Connection, table: str, columns: list[str], row: dict[str, Any]) -> None:
    cols = [c for c in columns if c in row]
    conn.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                 [row[c] for c in cols])
