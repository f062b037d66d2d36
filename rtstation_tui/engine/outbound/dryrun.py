"""The rules editor's dry run: for the newest plans in the index, what each rule would do and why the others would not.

Why in the engine: the verdicts come from ``rules.decide``, the same pure function ``rtstation rules test`` and the
rules service run, so what the editor shows is what the service will do. Nothing is sent. Index reads block, so
callers run ``dry_run`` in a thread.
"""

from __future__ import annotations

import sqlite3

from ..config.rules import RuleConfig
from ..plans.bundle import Bundle
from ..plans.queries import MAX_DRY_RUN_PLANS, PlanVerdicts, Verdict, newest_bundles
from .rules import PlanFacts, decide


def evaluate(rules: tuple[RuleConfig, ...], bundle: Bundle) -> list[Verdict]:
    """What ``rules`` would do with ``bundle``, rule by rule, in order."""
    out = []
    for d in decide(rules, PlanFacts.of(bundle)):
        reason = d.describe() if d.outcome in ("send", "hold") else (
            f"{d.condition}: {d.reason}" if d.condition else d.reason)
        out.append(Verdict(d.rule, d.outcome, reason))
    return out


def dry_run(conn: sqlite3.Connection, rules: tuple[RuleConfig, ...],
            limit: int = MAX_DRY_RUN_PLANS) -> list[PlanVerdicts]:
    """The newest ``limit`` plans of the index (newest first) with every rule's verdict."""
    return [PlanVerdicts(b.plan_uid, b.patient_id, b.label, b.complete, tuple(evaluate(rules, b)))
            for b in newest_bundles(conn, limit)]
