"""The rules editor's dry run: for the newest plans in the index, what each rule would do and why the others would not.

Why in the engine: the verdicts come from ``rules.decide``, the same pure function ``rtstation rules test`` and the
rules service run, so what the editor shows is what the service will do. Nothing is sent. Index reads block, so
callers run ``dry_run`` in a thread.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Any

from ..config.model import Config
from ..config.nodes import resolve_node
from ..config.rules import RuleConfig
from ..plans.bundle import Bundle, bundle_for
from ..plans.queries import MAX_DRY_RUN_PLANS, PlanVerdicts, Verdict, newest_bundles
from ..store.files import Store
from ..store.index import Index
from .queue import JobQueue
from .rules import PlanFacts, decide
from .sender import parts_for


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


def would_get(config: Config, queue: JobQueue, bundle: Bundle, targets: tuple[str, ...],
              include: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per target: how many objects are new to it, and how many it acknowledged before or has queued."""
    store = Store(config.data_dir, config.receiver.durability)
    paths = [str(store.abspath(m.path)) for m in bundle.ordered(parts_for(include))]
    out: list[dict[str, Any]] = []
    for target in targets:
        try:
            name = resolve_node(target, config.nodes).name
        except ValueError as exc:
            out.append({"node": target, "new": 0, "already": 0, "error": str(exc)})
            continue
        have = queue.delivered(name, paths) | queue.pending(name, paths)
        out.append({"node": name, "new": len(paths) - len(have), "already": len(have)})
    return out


def plan_test(config: Config, index: Index, queue: JobQueue, plan_uid: str) -> dict[str, Any] | None:
    """``rtstation rules test --json`` (and ``POST /api/v1/rules/test``): every configured rule's decision on one
    stored plan, with what a send would carry to each target. None when the plan is not in the index."""
    bundle = bundle_for(index.conn, plan_uid)
    if bundle is None:
        return None
    facts = PlanFacts.of(bundle)
    decisions = decide(config.rules, facts)
    return {"plan": asdict(facts), "missing": bundle.missing_summary(),
            "rules": [{**d.as_json(), "would_send": would_get(config, queue, bundle, d.targets, d.include)
                       if d.outcome == "send" else []} for d in decisions]}
