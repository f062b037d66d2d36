"""The rules editor's dry run: for the newest plans in the index, what each rule would do and why the others would not.

Why in the engine: the verdicts come from ``rules.decide``, the same pure function ``rtstation rules test`` and the
rules service run, so what the editor shows is what the service will do. Nothing is sent. Index reads block, so
callers run ``dry_run`` in a thread.

Why it asks the queue too: a rule that matches a plan its targets already have (delivered or queued) queues
nothing; saying "send" there misled operators. ``would_queue`` is the queue's own test (the one ``_enqueue`` makes),
shared with ``rtstation rules test``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..config.model import Config
from ..config.nodes import NodeConfig, resolve_node
from ..config.rules import RuleConfig
from ..plans.bundle import Bundle, bundle_for
from ..plans.queries import MAX_DRY_RUN_PLANS, PlanVerdicts, Verdict, newest_bundles
from ..store.files import Store
from ..store.index import Index
from .queue import JobQueue
from .rules import Decision, PlanFacts, decide
from .sender import parts_for

NOTHING_NEW = "nothing-new"  # a matching rule whose every target already has (or is about to get) every object


@dataclass(frozen=True)
class WouldQueue:
    """For one target node: objects a send would queue now, and those it already acknowledged or has queued."""

    node: str
    new: int
    already: int
    error: str = ""


def would_queue(queue: JobQueue, store: Store, nodes: Sequence[NodeConfig], bundle: Bundle,
                targets: Sequence[str], include: Sequence[str] | None) -> list[WouldQueue]:
    """Per target: what ``Sender._enqueue`` would leave out (delivered or pending), without queueing anything."""
    paths = [str(store.abspath(m.path)) for m in bundle.ordered(parts_for(include))]
    out = []
    for target in targets:
        try:
            name = resolve_node(target, tuple(nodes)).name
        except ValueError as exc:
            out.append(WouldQueue(target, 0, 0, str(exc)))
            continue
        have = queue.delivered(name, paths) | queue.pending(name, paths)
        out.append(WouldQueue(name, len(paths) - len(have), len(have)))
    return out


def _send_verdict(d: Decision, would: list[WouldQueue]) -> Verdict:
    per = "; ".join(f"{w.node}: {w.error}" if w.error else f"{w.node}: {w.new} new" + (
        f", {w.already} already there or queued" if w.already else "") for w in would)
    if would and all(w.new == 0 and not w.error for w in would):
        return Verdict(d.rule, NOTHING_NEW, f"matched, nothing to queue: {per}")
    return Verdict(d.rule, "send", f"matched: send to {per}" if would else d.describe())


def evaluate(rules: tuple[RuleConfig, ...], bundle: Bundle, queue: JobQueue | None = None,
             store: Store | None = None, nodes: Sequence[NodeConfig] = ()) -> list[Verdict]:
    """What ``rules`` would do with ``bundle``, rule by rule, in order (with a queue: what would really be queued)."""
    out = []
    for d in decide(rules, PlanFacts.of(bundle)):
        if d.outcome == "send" and queue is not None and store is not None:
            out.append(_send_verdict(d, would_queue(queue, store, nodes, bundle, d.targets, d.include)))
            continue
        reason = d.describe() if d.outcome in ("send", "hold") else (
            f"{d.condition}: {d.reason}" if d.condition else d.reason)
        out.append(Verdict(d.rule, d.outcome, reason))
    return out


def dry_run(conn: sqlite3.Connection, rules: tuple[RuleConfig, ...], limit: int = MAX_DRY_RUN_PLANS,
            queue: JobQueue | None = None, store: Store | None = None,
            nodes: Sequence[NodeConfig] = ()) -> list[PlanVerdicts]:
    """The newest ``limit`` plans of the index (newest first) with every rule's verdict."""
    return [PlanVerdicts(b.plan_uid, b.patient_id, b.label, b.complete,
                         tuple(evaluate(rules, b, queue, store, nodes)))
            for b in newest_bundles(conn, limit)]


def would_get(config: Config, queue: JobQueue, bundle: Bundle, targets: tuple[str, ...],
              include: tuple[str, ...]) -> list[dict[str, Any]]:
    """``would_queue`` as JSON (``rules test``): per target, objects new to it and those it has or will have."""
    store = Store(config.data_dir, config.receiver.durability)
    return [{"node": w.node, "new": w.new, "already": w.already, **({"error": w.error} if w.error else {})}
            for w in would_queue(queue, store, config.nodes, bundle, targets, include)]


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
