"""``rtstation rules check`` and ``rtstation rules test --plan UID|LABEL``.

``check`` validates the configuration's rules (the same load-time validation every command does: a bad rule exits 2
with file, rule and key before we get here) and lists them. ``test`` is a dry run on a stored plan: rule by rule,
would it match, and if not, which condition failed and why. Nothing is queued or audited by either.
"""

from __future__ import annotations

import argparse
import sys

from typing import Any

from ..engine.config.groups import GroupConfig, describe_targets, expand
from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.config.transforms import describe_chain, encode_chain
from ..engine.outbound.dryrun import plan_test
from ..engine.outbound.queue import JobQueue
from ..engine.config.rules import RuleConfig
from .output import fail, print_json
from .remote import ApiCallError, api_fail, connect
from .send import resolve_plan


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


def summary(rule: RuleConfig, groups: tuple[GroupConfig, ...] = ()) -> str:
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
    if rule.delete_after_send:
        opts += ", deleted from the store once every target committed it"
    targets = describe_targets(rule.targets, groups) or "no nodes"
    return f"{when} -> {targets} ({opts})" + ("" if rule.enabled else " [disabled]")


def warnings(config: Config) -> list[str]:
    """Valid, but probably not what was meant: targets that are disabled, rules no plan can reach."""
    out: list[str] = []
    catch_all = ""
    for rule in config.rules:
        if not rule.enabled:
            continue
        if catch_all:
            out.append(f"rule {rule.name!r} is never evaluated: rule {catch_all!r} matches every plan and stops")
        for target in expand(rule.targets, config.groups):
            node = config.node(target)
            if node is not None and not node.enabled:
                via = "" if target in rule.targets else " (in a group: the group's other nodes still get it)"
                out.append(f"rule {rule.name!r}: target {target!r} is disabled ([[nodes]] enabled = false){via}")
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
            {"name": r.name, "enabled": r.enabled, "summary": summary(r, config.groups)} for r in config.rules]})
        return 0
    print(f"{where}: {len(config.rules)} rules, all valid")
    for i, rule in enumerate(config.rules, 1):
        print(f"  {i}. {rule.name}: {summary(rule, config.groups)}")
    for w in warned:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def test(args: argparse.Namespace, config: Config) -> int:
    remote = connect(config)
    if remote is not None:  # the rules in force in the running station, on its queue
        try:
            return print_test(remote.call_sync("POST", "/api/v1/rules/test",
                                               {"plan": args.plan, "patient": args.patient}), args.json)
        except ApiCallError as exc:
            return api_fail(exc)
    index = Index(config.data_dir)
    try:
        plan_uid = resolve_plan(index, args.plan, args.patient)
    except ValueError as exc:
        return fail(str(exc), 2)
    result = plan_test(config, index, JobQueue(config.data_dir), plan_uid)
    if result is None:
        return fail(f"plan {plan_uid} is not in the index", 2)
    return print_test(result, args.json)


def print_test(result: dict[str, Any], as_json: bool) -> int:
    """Print a dry run's answer (``plan_test``'s JSON: computed here or by the running station)."""
    if as_json:
        print_json(result)
        return 0
    facts = result["plan"]
    state = "complete" if facts["complete"] else f"incomplete, {result['missing']}"
    print(f"plan {facts['label']!r} ({facts['plan_uid']}) of patient {facts['patient_id']}: from "
          f"{', '.join(facts['sources']) or '?'}, machine {', '.join(facts['machines']) or '?'}, "
          f"{facts['approval'] or 'no approval status'}, {state}")
    if not result["rules"]:
        print("  no rules configured", file=sys.stderr)
    for i, d in enumerate(result["rules"], 1):
        if d["outcome"] == "send":
            per = "; ".join(f"{w['node']}: {w['error']}" if w.get("error") else f"{w['node']}: {w['new']} new" + (
                f", {w['already']} already there or queued" if w["already"] else "") for w in d["would_send"])
            verdict = f"would send ({d['reason']}) to {per}" if d["targets"] else f"matches ({d['reason']})"
        elif d["outcome"] == "hold":
            verdict = f"matches, would hold: {d['reason']}"
        elif d["outcome"] == "no-match":
            verdict = f"no: {d['condition']}: {d['reason']}"
        else:
            verdict = f"{d['outcome']}: {d['reason']}"
        if d["outcome"] in ("send", "hold") and d.get("named") and d["named"] != d["targets"]:  # a group
            verdict += f"\n       targets: {', '.join(d['named'])} = {', '.join(d['targets'])}"
        if d["outcome"] in ("send", "hold"):
            verdict += "".join(_actions(w) for w in d["would_send"])
        if d.get("would_export"):
            verdict += f"\n       export: {d['would_export']}"
        if d["outcome"] in ("send", "hold") and d.get("tag"):
            verdict += f"\n       tag: {d['tag']!r}"
        print(f"  {i}. {d['rule']}: {verdict}")
    return 0


def _actions(w: dict[str, Any]) -> str:
    """The lines under a matching rule: what each target's copies go through (nothing: the stored files)."""
    if "transforms" not in w:
        return ""
    if not w["transforms"]:
        return f"\n       {w['node']}: the stored files, unchanged"
    return f"\n       {w['node']}: transforms" + "".join(f"\n         - {t}" for t in w["describe"])
