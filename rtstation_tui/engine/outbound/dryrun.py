"""The rules editor's dry run: for the newest plans in the index, what each rule would do and why the others would not.

Why in the engine: the verdicts come from ``rules.decide``, the same pure function ``rtstation rules test`` and the
rules service run, so what the editor shows is what the service will do. Nothing is sent. Index reads block, so
callers run ``dry_run`` in a thread.
"""

from __future__ import annotations

import sqlite3

from ..config.nodes import NodeConfig, resolve_node
from ..config.rules import RuleConfig
from ..config.transforms import describe_chain, encode_chain, join_chains
from ..plans.bundle import Bundle
from ..plans.queries import MAX_DRY_RUN_PLANS, PlanVerdicts, Verdict, newest_bundles
from .rules import Decision, PlanFacts, decide


def target_chain(d: Decision, target: str, nodes: tuple[NodeConfig, ...]) -> str:
    """The chain a job of this rule to ``target`` would store: the rule's, then the node's own."""
    try:
        node_chain = resolve_node(target, nodes).chain()
    except ValueError:
        node_chain = ""
    return join_chains(encode_chain(d.transforms), node_chain)


def actions(d: Decision, nodes: tuple[NodeConfig, ...]) -> list[str]:
    """What a matching rule does besides matching: per target the transforms its copies get, its export, its tag."""
    out = []
    for target in d.targets:
        chain = target_chain(d, target, nodes)
        out.append(f"{target}: {'as ' + describe_chain(chain) if chain else 'the stored files'}")
    if d.export:
        out.append(f"export to {d.export}" + (f" as {describe_chain(encode_chain(d.transforms))}"
                                               if d.transforms else ""))
    if d.tag:
        out.append(f"tag {d.tag!r}")
    return out


def has_actions(d: Decision, nodes: tuple[NodeConfig, ...]) -> bool:
    return bool(d.export or d.tag or any(target_chain(d, t, nodes) for t in d.targets))


def evaluate(rules: tuple[RuleConfig, ...], bundle: Bundle, nodes: tuple[NodeConfig, ...] = ()) -> list[Verdict]:
    """What ``rules`` would do with ``bundle``, rule by rule, in order (with the transforms of each target)."""
    out = []
    for d in decide(rules, PlanFacts.of(bundle)):
        reason = d.describe() if d.outcome in ("send", "hold") else (
            f"{d.condition}: {d.reason}" if d.condition else d.reason)
        if d.matched and has_actions(d, nodes):  # plain sends read as before
            reason += "; " + "; ".join(actions(d, nodes))
        out.append(Verdict(d.rule, d.outcome, reason))
    return out


def dry_run(conn: sqlite3.Connection, rules: tuple[RuleConfig, ...], limit: int = MAX_DRY_RUN_PLANS,
            nodes: tuple[NodeConfig, ...] = ()) -> list[PlanVerdicts]:
    """The newest ``limit`` plans of the index (newest first) with every rule's verdict."""
    return [PlanVerdicts(b.plan_uid, b.patient_id, b.label, b.complete, tuple(evaluate(rules, b, nodes)))
            for b in newest_bundles(conn, limit)]
