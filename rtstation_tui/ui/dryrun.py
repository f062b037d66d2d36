"""The rules screen's dry run: for the plans in the index, what each rule would do and why the others would not.

Why a separate module with one function: the evaluation belongs to the engine (``engine/rules.py: decide``, the
same code ``rtstation rules test`` and the rules service run). ``evaluate`` points at it; nothing is sent here.
Index reads block, so ``dry_run`` is called from a thread worker.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ..engine.plans.bundle import Bundle, bundle_for
from ..engine.config.rules import RuleConfig

try:  # the rules engine (issue 5)
    from ..engine.outbound.rules import PlanFacts, decide
except ImportError:  # pragma: no cover - only before the rules branch is merged
    PlanFacts = decide = None  # type: ignore[assignment,misc]

MAX_PLANS = 50


@dataclass(frozen=True)
class Verdict:
    rule: str
    outcome: str  # send, hold, no-match, disabled, not-evaluated
    reason: str


@dataclass(frozen=True)
class PlanVerdicts:
    plan_uid: str
    patient_id: str
    label: str
    complete: bool
    verdicts: tuple[Verdict, ...]


def evaluate(rules: tuple[RuleConfig, ...], bundle: Bundle) -> list[Verdict]:
    """What ``rules`` would do with ``bundle``, rule by rule, in order."""
    if decide is None:
        return [Verdict(r.name, "not-evaluated", "rule evaluation is not available in this build") for r in rules]
    out = []
    for d in decide(rules, PlanFacts.of(bundle)):
        reason = d.describe() if d.outcome in ("send", "hold") else (
            f"{d.condition}: {d.reason}" if d.condition else d.reason)
        out.append(Verdict(d.rule, d.outcome, reason))
    return out


def dry_run(conn: sqlite3.Connection, rules: tuple[RuleConfig, ...], limit: int = MAX_PLANS) -> list[PlanVerdicts]:
    """The newest ``limit`` plans of the index (newest first) with every rule's verdict."""
    rows: list[Any] = conn.execute(
        "SELECT sop_uid FROM plans GROUP BY sop_uid ORDER BY max(instance_id) DESC LIMIT ?", (limit,)).fetchall()
    out = []
    for (uid,) in rows:
        b = bundle_for(conn, uid)
        if b is not None:
            out.append(PlanVerdicts(uid, b.patient_id, b.label, b.complete, tuple(evaluate(rules, b))))
    return out
