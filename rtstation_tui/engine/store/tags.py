"""Plan tags: labels a rule (``tag = "…"``) stores with a plan in the index, shown by ``rtstation show`` and
filterable (``--tag``). A table of their own (index migration 3): a tag belongs to the plan, not to an instance,
and survives the plan's objects being re-indexed; a plan may carry several tags, each once."""

from __future__ import annotations

import sqlite3
import time


def add_tag(conn: sqlite3.Connection, plan_uid: str, tag: str, by: str) -> bool:
    """True when the plan did not have the tag yet."""
    cur = conn.execute("INSERT OR IGNORE INTO plan_tags (plan_uid, tag, added_by, added) VALUES (?,?,?,?)",
                       (plan_uid, tag, by, time.time()))
    return cur.rowcount > 0


def tags_by_plan(conn: sqlite3.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for uid, tag in conn.execute("SELECT plan_uid, tag FROM plan_tags ORDER BY added, tag"):
        out.setdefault(uid, []).append(tag)
    return out
