"""Monthly forwarding report (``rtstation report --month 2026-11``): per rule and per node, the plans forwarded,
instances delivered, failures and the median delay from queueing to delivery.

Why from the queue and not the audit log: the queue keeps every job with its origin (``rule:NAME`` or ``manual``),
node, times and per-instance outcomes for as long as the plan is kept, while the audit log is pruned after
``[logging] retention_days``. A job belongs to the month it was queued in (local time).
"""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class ReportRow:
    month: str
    rule: str  # rule name, or "(manual)" for sends by hand
    node: str
    jobs: int
    plans: int  # distinct plans with at least one job done
    instances: int  # delivered
    failed_jobs: int
    failed_instances: int
    median_delay_s: float | None  # queued → last instance delivered, over jobs done

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def month_bounds(month: str) -> tuple[float, float]:
    """'2026-11' → (start, end) as epoch seconds, local time; ValueError names the expected form."""
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"--month {month!r} is not a month: use YYYY-MM, e.g. 2026-11") from None
    end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return start.timestamp(), end.timestamp()


def monthly_report(conn: sqlite3.Connection, month: str) -> list[ReportRow]:
    start, end = month_bounds(month)
    jobs = conn.execute(
        "SELECT j.id, j.node, j.plan_uid, j.origin, j.state, j.created, j.done, j.failed, "
        "(SELECT max(sent_at) FROM items i WHERE i.job_id = j.id AND i.state = 'done') AS last_sent "
        "FROM jobs j WHERE j.created >= ? AND j.created < ? ORDER BY j.id", (start, end)).fetchall()
    groups: dict[tuple[str, str], list[sqlite3.Row]] = {}
    for j in jobs:
        origin = j["origin"] or "manual"
        rule = origin[5:] if origin.startswith("rule:") else f"({origin})"
        groups.setdefault((rule, j["node"]), []).append(j)
    rows = []
    for (rule, node), js in sorted(groups.items()):
        done = [j for j in js if j["state"] == DONE]
        delays = [j["last_sent"] - j["created"] for j in done if j["last_sent"] is not None and j["created"]]
        rows.append(ReportRow(month, rule, node, len(js), len({j["plan_uid"] for j in done}),
                              sum(j["done"] or 0 for j in js), sum(1 for j in js if j["state"] == FAILED),
                              sum(j["failed"] or 0 for j in js),
                              round(statistics.median(delays), 3) if delays else None))
    return rows
