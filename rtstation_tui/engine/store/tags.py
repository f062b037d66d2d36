"""Plan tags: labels a rule (``tag = "…"``) stores with a plan in the index, shown by ``rtstation show`` and
filterable (``--tag``). A table of their own (index migration 3): a tag belongs to the plan, not to an instance,
and survives the plan's objects being re-indexed; a plan may carry several tags, each once."""

from __future__ import annotations

import sqlite3
import time
from typing import Sequence


def add_tag(conn: sqlite3.Connection, plan_uid: str, tag: str, by: str) -> bool:
    """True when the plan did not have the tag yet."""
    cur = conn.execute("INSERT OR IGNORE INTO plan_tags (plan_uid, tag, added_by, added) VALUES (?,?,?,?)",
                       (plan_uid, tag, by, time.time()))
    return cur.rowcount > 0


def tags_by_plan(conn: sqlite3.Connection, plan_uids: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Every plan's tags (or those of ``plan_uids``: the console asks per patient), oldest first."""
    where, args = "", ()  # type: tuple[str, tuple[str, ...]]
    if plan_uids is not None:
        if not plan_uids:
            return {}
        if len(plan_uids) <= 900:  # SQLite's host parameters; a bigger set reads all and keeps its own
            where, args = f" WHERE plan_uid IN ({','.join('?' * len(plan_uids))})", tuple(plan_uids)
    out: dict[str, list[str]] = {}
    for uid, tag in conn.execute(f"SELECT plan_uid, tag FROM plan_tags{where} ORDER BY added, tag", args):
        out.setdefault(uid, []).append(tag)
    if plan_uids is not None and not where:
        wanted = set(plan_uids)
        out = {uid: tags for uid, tags in out.items() if uid in wanted}
    return out


def tags_of(conn: sqlite3.Connection, plan_uid: str) -> list[str]:
    return tags_by_plan(conn, [plan_uid]).get(plan_uid, [])
