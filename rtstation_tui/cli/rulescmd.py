"""``rtstation rules check`` and ``rtstation rules test --plan UID|LABEL``.

``check`` validates the configuration's rules (the same load-time validation every command does: a bad rule exits 2
with file, rule and key before we get here) and lists them. ``test`` is a dry run on a stored plan: rule by rule,
would it match, and if not, which condition failed and why. Nothing is queued or audited by either.
"""

from __future__ import annotations

import argparse
import sys

from ..engine.plans.bundle import Bundle
from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.config.nodes import resolve_node
from ..engine.outbound.queue import JobQueue
from ..engine.config.transforms import decode_chain, describe_chain, encode_chain
from ..engine.outbound.dryrun import target_chain
from ..engine.outbound.export import export_fields, export_path
from ..engine.outbound.rules import Decision, PlanFacts, decide
from ..engine.transforms.registry import describe
from ..engine.config.rules import RuleConfig
from ..engine.outbound.sender import parts_for
from ..engine.store.files import Store
from .output import fail, print_json
from .send import resolve_bundle


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rules", parents=[common], help="check the routing rules, or test them on a stored plan")
    rsub = p.add_subparsers(dest="rules_command", metavar="check|test", required=True)
    c = rsub.add_parser("check", parents=[common], help="validate the [[rules]] of the configuration")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=check)
    t = rsub.add_parser("test", parents=[common], help="rule by rule: would this plan match, and if not why")
    t.add_argument("--plan", required=True, metavar="UID|LABEL", help="plan SOP Instance UID or RTPlanLabel")
    t.add_argument("--patient", metavar="ID", help="PatientID, when a label is used by several patients")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=test)


MATCH_FIELDS = ("source_ae", "plan_label", "machine", "patient_id", "modality")


def summary(rule: RuleConfig) -> str:
    fields = [f"{k} = {getattr(rule, k)!r}" for k in MATCH_FIELDS if getattr(rule, k) is not None]
    if rule.approval != "ANY":
        fields.append(f"approval = {rule.approval}")
    when = ", ".join(fields) or "every plan"
    opts = f"when incomplete: {rule.when_incomplete}" + (", stop" if rule.stop else "")
    if rule.transforms:
        opts += f", as {describe_chain(encode_chain(rule.transforms))}"
    if rule.export:
        opts += f", export to {rule.export}" + (" (zip)" if rule.export_format == "zip" else "")
    if rule.tag:
        opts += f", tag {rule.tag!r}"
    return f"{when} -> {', '.join(rule.targets) or 'no nodes'} ({opts})" + ("" if rule.enabled else " [disabled]")


def warnings(config: Config) -> list[str]:
    """Valid, but probably not what was meant: targets that are disabled, rules no plan can reach."""
    out: list[str] = []
    catch_all = ""
    for rule in config.rules:
        if not rule.enabled:
            continue
        if catch_all:
            out.append(f"rule {rule.name!r} is never evaluated: rule {catch_all!r} matches every plan and stops")
        for target in rule.targets:
            node = config.node(target)
            if node is not None and not node.enabled:
                out.append(f"rule {rule.name!r}: target {target!r} is disabled ([[nodes]] enabled = false)")
        unconditional = all(getattr(rule, k) is None for k in MATCH_FIELDS) and rule.approval == "ANY"
        if unconditional and rule.stop and not catch_all:
            catch_all = rule.name
    return out


def check(args: argparse.Namespace, config: Config) -> int:
    """Load-time validation already ran (errors exit 2 in cli.main); say what the rules are, and what looks odd."""
    where = str(config.path) if config.path else "built-in defaults"
    warned = warnings(config)
    if args.json:
        print_json({"file": where, "ok": True, "warnings": warned, "rules": [
            {"name": r.name, "enabled": r.enabled, "summary": summary(r)} for r in config.rules]})
        return 0
    print(f"{where}: {len(config.rules)} rules, all valid")
    for i, rule in enumerate(config.rules, 1):
        print(f"  {i}. {rule.name}: {summary(rule)}")
    for w in warned:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def would_get(config: Config, bundle: Bundle, d: Decision) -> list[dict]:
    """Per target: how many objects are new to it (as the copies its chain makes), how many it acknowledged before
    or has queued, and the transforms its copies would get."""
    queue = JobQueue(config.data_dir)
    store = Store(config.data_dir, config.receiver.durability)
    paths = [str(store.abspath(m.path)) for m in bundle.ordered(parts_for(d.include))]
    out = []
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


def test(args: argparse.Namespace, config: Config) -> int:
    index = Index(config.data_dir)
    try:
        bundle = resolve_bundle(index, args.plan, args.patient)
    except ValueError as exc:
        return fail(str(exc), 2)
    facts = PlanFacts.of(bundle)
    decisions = decide(config.rules, facts)
    would = {d.rule: would_get(config, bundle, d) for d in decisions if d.matched}
    exports = {d.rule: export_target(config, bundle, d) for d in decisions if d.matched and d.export}
    if args.json:
        print_json({"plan": facts.__dict__, "rules": [{**d.as_json(), "would_send": would.get(d.rule, []),
                                                       "would_export": exports.get(d.rule)}
                                                      for d in decisions]})
        return 0
    state = "complete" if facts.complete else f"incomplete, {bundle.missing_summary()}"
    print(f"plan {facts.label!r} ({facts.plan_uid}) of patient {facts.patient_id}: from "
          f"{', '.join(facts.sources) or '?'}, machine {', '.join(facts.machines) or '?'}, "
          f"{facts.approval or 'no approval status'}, {state}")
    if not decisions:
        print("  no rules configured", file=sys.stderr)
    for i, d in enumerate(decisions, 1):
        if d.outcome == "send":
            per = "; ".join(f"{w['node']}: {w['new']} new" + (f", {w['already']} already there or queued"
                                                              if w["already"] else "") for w in would[d.rule])
            verdict = f"would send ({d.reason}) to {per}" if d.targets else f"matches ({d.reason})"
            verdict += "".join(_actions(w) for w in would[d.rule])
        elif d.outcome == "hold":
            verdict = f"matches, would hold: {d.reason}"
        elif d.outcome == "no-match":
            verdict = f"no: {d.condition}: {d.reason}"
        else:
            verdict = f"{d.outcome}: {d.reason}"
        if d.outcome == "hold":
            verdict += "".join(_actions(w) for w in would[d.rule])
        if d.matched and d.export:
            verdict += f"\n       export: {exports[d.rule]}"
        if d.matched and d.tag:
            verdict += f"\n       tag: {d.tag!r}"
        print(f"  {i}. {d.rule}: {verdict}")
    return 0


def export_target(config: Config, bundle: Bundle, d: Decision) -> str:
    """Where the rule would export this plan (folder, or .zip), as the service would name it."""
    rule = next(r for r in config.rules if r.name == d.rule)
    assert rule.export is not None
    path = export_path(rule.export, export_fields(rule, bundle.plan_uid, bundle.patient_id, bundle.patient_name,
                                                  bundle.label, bundle.sources))
    return f"{path}.zip" if rule.export_format == "zip" else f"{path}/"


def _actions(w: dict) -> str:
    """The lines under a matching rule: what each target's copies go through (nothing: the stored files)."""
    if "transforms" not in w:
        return ""
    if not w["transforms"]:
        return f"\n       {w['node']}: the stored files, unchanged"
    return f"\n       {w['node']}: transforms" + "".join(f"\n         - {t}" for t in w["describe"])
