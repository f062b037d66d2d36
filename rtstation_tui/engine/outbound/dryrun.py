"""The rules editor's dry run: for the newest plans in the index, what each rule would do and why the others would not.

Why in the engine: the verdicts come from ``rules.decide``, the same pure function ``rtstation rules test`` and the
rules service run, so what the editor shows is what the service will do. Nothing is sent. Index reads block, so
callers run ``dry_run`` in a thread.

Why it asks the queue too: a rule that matches a plan its targets already have (delivered or queued) queues
nothing; saying "send" there misled operators. ``would_queue`` is the queue's own test (the one ``_enqueue`` makes,
with the chain the job would store), shared by the editor's dry run and ``rtstation rules test``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from ..config.groups import GroupConfig, left_out
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


NOTHING_NEW = "nothing-new"  # a matching rule whose every target already has (or is about to get) every object


@dataclass(frozen=True)
class WouldQueue:
    """For one target node: objects a send would queue now, and those it already acknowledged or has queued."""

    node: str
    new: int
    already: int
    chain: str = ""
    error: str = ""


def would_queue(queue: JobQueue, store: Store, nodes: tuple[NodeConfig, ...], bundle: Bundle,
                d: Decision) -> list[WouldQueue]:
    """Per target: what ``Sender._enqueue`` would leave out (delivered or pending), without queueing anything."""
    paths = [str(store.abspath(m.path)) for m in bundle.ordered(parts_for(d.include))]
    out = []
    for target in d.targets:
        if left_out(target, d.named, nodes):
            out.append(WouldQueue(target, 0, 0, error="disabled, left out of the group's send"))
            continue
        try:
            name = resolve_node(target, nodes).name
        except ValueError as exc:
            out.append(WouldQueue(target, 0, 0, error=str(exc)))
            continue
        chain = target_chain(d, target, nodes)
        have = queue.delivered(name, paths, chain) | queue.pending(name, paths, chain)
        out.append(WouldQueue(name, len(paths) - len(have), len(have), chain))
    return out


def _send_reason(d: Decision, would: list[WouldQueue]) -> tuple[str, str]:
    per = "; ".join(f"{w.node}: {w.error}" if w.error else f"{w.node}: {w.new} new" + (
        f", {w.already} already there or queued" if w.already else "") for w in would)
    if would and all(w.new == 0 and not w.error for w in would):
        return NOTHING_NEW, f"matched, nothing to queue: {per}"
    return "send", f"matched: send to {per}" if would else d.describe()


def evaluate(rules: tuple[RuleConfig, ...], bundle: Bundle, nodes: tuple[NodeConfig, ...] = (),
             queue: JobQueue | None = None, store: Store | None = None,
             groups: tuple[GroupConfig, ...] = ()) -> list[Verdict]:
    """What ``rules`` would do with ``bundle``, rule by rule, in order (with the transforms of each target; with a
    queue: what would really be queued). A target naming a group is shown as its nodes."""
    out = []
    for d in decide(rules, PlanFacts.of(bundle), groups):
        outcome = d.outcome
        reason = d.describe() if d.outcome in ("send", "hold") else (
            f"{d.condition}: {d.reason}" if d.condition else d.reason)
        if d.outcome == "send" and queue is not None and store is not None and d.targets:
            outcome, reason = _send_reason(d, would_queue(queue, store, nodes, bundle, d))
            if d.named != d.targets:  # a group: say what it stands for
                reason += f" (targets {d.where()})"
        if d.matched and has_actions(d, nodes):  # plain sends read as before
            reason += "; " + "; ".join(actions(d, nodes))
        out.append(Verdict(d.rule, outcome, reason))
    return out


def dry_run(conn: sqlite3.Connection, rules: tuple[RuleConfig, ...], limit: int = MAX_DRY_RUN_PLANS,
            nodes: tuple[NodeConfig, ...] = (), queue: JobQueue | None = None,
            store: Store | None = None, groups: tuple[GroupConfig, ...] = ()) -> list[PlanVerdicts]:
    """The newest ``limit`` plans of the index (newest first) with every rule's verdict."""
    return [PlanVerdicts(b.plan_uid, b.patient_id, b.label, b.complete,
                         tuple(evaluate(rules, b, nodes, queue, store, groups)))
            for b in newest_bundles(conn, limit)]


def would_get(config: Config, queue: JobQueue, bundle: Bundle, d: Decision) -> list[dict[str, Any]]:
    """``would_queue`` as JSON: per target, objects new to it (as the copies its chain makes), those it acknowledged
    before or has queued, and the transforms its copies would get."""
    store = Store(config.data_dir, config.receiver.durability)
    return [{"node": w.node, "new": w.new, "already": w.already, "error": w.error} if w.error else
            {"node": w.node, "new": w.new, "already": w.already, "transforms": decode_chain(w.chain),
             "describe": describe(w.chain, config)}
            for w in would_queue(queue, store, config.nodes, bundle, d)]


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
    decisions = decide(config.rules, facts, config.groups)
    return {"plan": asdict(facts), "missing": bundle.missing_summary(),
            "rules": [{**d.as_json(), "would_send": would_get(config, queue, bundle, d) if d.matched else [],
                       "would_export": export_target(config, bundle, d) if d.matched and d.export else None}
                      for d in decisions]}
