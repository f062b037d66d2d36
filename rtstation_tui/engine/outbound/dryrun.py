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
from ..config.nodes import NodeConfig, resolve_node
from ..config.rules import RuleConfig
from ..config.transforms import decode_chain, describe_chain, encode_chain, join_chains
from ..plans.bundle import Bundle, bundle_for
from ..plans.queries import MAX_DRY_RUN_PLANS, PlanVerdicts, Verdict, newest_bundles
from ..store.files import Store
from ..store.index import Index
from ..transforms.registry import describe
from .export import export_fields, export_path
from .queue import JobQueue
from .rules import Decision, PlanFacts, decide
from .sender import parts_for


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


def would_get(config: Config, queue: JobQueue, bundle: Bundle, d: Decision) -> list[dict[str, Any]]:
    """Per target: how many objects are new to it (as the copies its chain makes), how many it acknowledged before
    or has queued, and the transforms its copies would get."""
    store = Store(config.data_dir, config.receiver.durability)
    paths = [str(store.abspath(m.path)) for m in bundle.ordered(parts_for(d.include))]
    out: list[dict[str, Any]] = []
    for target in d.targets:
        try:
            name = resolve_node(target, config.nodes).name
        except ValueError as exc:
            out.append({"node": target, "new": 0, "already": 0, "error": str(exc)})
            continue
        chain = target_chain(d, target, config.nodes)
        have = queue.delivered(name, paths, chain) | queue.pending(name, paths, chain)
        out.append({"node": name, "new": len(paths) - len(have), "already": len(have),
                    "transforms": decode_chain(chain), "describe": describe(chain, config)})
    return out


def export_target(config: Config, bundle: Bundle, d: Decision) -> str:
    """Where the rule would export this plan (folder, or .zip), as the service would name it."""
    rule = next(r for r in config.rules if r.name == d.rule)
    assert rule.export is not None
    path = export_path(rule.export, export_fields(rule, bundle.plan_uid, bundle.patient_id, bundle.patient_name,
                                                  bundle.label, bundle.sources))
    return f"{path}.zip" if rule.export_format == "zip" else f"{path}/"


def plan_test(config: Config, index: Index, queue: JobQueue, plan_uid: str) -> dict[str, Any] | None:
    """``rtstation rules test --json`` (and ``POST /api/v1/rules/test``): every configured rule's decision on one
    stored plan, with what a send would carry to each target, where it would export and the tag it would set.
    None when the plan is not in the index."""
    bundle = bundle_for(index.conn, plan_uid)
    if bundle is None:
        return None
    facts = PlanFacts.of(bundle)
    decisions = decide(config.rules, facts)
    return {"plan": asdict(facts), "missing": bundle.missing_summary(),
            "rules": [{**d.as_json(), "would_send": would_get(config, queue, bundle, d) if d.matched else [],
                       "would_export": export_target(config, bundle, d) if d.matched and d.export else None}
                      for d in decisions]}
