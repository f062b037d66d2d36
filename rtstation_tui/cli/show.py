"""``rtstation show``: patients → plan bundles (complete or what is missing) and the unconnected bin."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.store.tags import tags_by_plan
from ..engine.plans.folder import folder_json
from ..engine.plans.listing import patients_json
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("show", parents=[common], help="list patients, plan bundles and unconnected objects")
    p.add_argument("--json", action="store_true", help="machine-readable output (a stable contract)")
    p.add_argument("--patient", metavar="ID", help="only this PatientID")
    p.add_argument("--tag", metavar="TAG", help="only plans a rule tagged so (tag = \"...\" on a [[rules]] entry)")
    p.add_argument("--path", metavar="DIR", help="the tree of any folder, without importing it (same JSON shape)")
    p.add_argument("--pattern", default="*", metavar="GLOB", help="with --path: only files whose name matches")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.path is not None:
        return show_folder(args)
    index = Index(config.data_dir)
    data = with_tags(patients_json(index.conn, args.patient), tags_by_plan(index.conn), args.tag)
    if args.json:
        print_json(data)
        return 0
    if not data:
        print(f"no objects in {config.data_dir}")
    for patient in data:
        print_patient(patient)
    return 0


def with_tags(data: list[dict[str, Any]], tags: dict[str, list[str]], only: str | None) -> list[dict[str, Any]]:
    """Each plan with its ``tags``; with ``only``, the plans carrying that tag (and patients that have one)."""
    for patient in data:
        for plan in patient["plans"]:
            plan["tags"] = tags.get(plan["plan_uid"], [])
    if only is None:
        return data
    out = []
    for patient in data:
        plans = [p for p in patient["plans"] if only in p["tags"]]
        if plans:
            out.append({**patient, "plans": plans, "unconnected": []})
    return out


def show_folder(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.is_dir():
        return fail(f"--path {args.path}: no such folder", 2)
    data, skipped = folder_json(root, args.pattern)
    data = with_tags(data, {}, None)  # the shape of `show --json`: a folder's plans carry no rule tags
    if args.patient is not None:
        data = [p for p in data if p["patient_id"] == args.patient]
    if args.json:
        print_json(data)
        return 0
    for patient in data:
        print_patient(patient)
    print(f"{sum(len(p['plans']) for p in data)} plans in {root}" + (f"; {len(skipped)} files are not DICOM"
                                                                      if skipped else ""))
    return 0


def print_patient(p: dict[str, Any]) -> None:
    print(f"{p['patient_id'] or '(no PatientID)'}  {p['patient_name']}")
    for plan in p["plans"]:
        counts = ", ".join(f"{k} {v}" for k, v in plan["counts"].items())
        state = "complete" if plan["complete"] else f"missing {_missing(plan['missing'])}"
        conflict = f"  CONFLICT ({len(plan['conflicts'])})" if plan["conflicts"] else ""
        print(f"  plan {plan['label'] or '(no label)'}  {plan['machine'] or '-'}  {plan['approval'] or '-'}  "
              f"{plan['beams']} beams  {plan['fractions'] if plan['fractions'] is not None else '-'} fx  "
              f"[{counts}]  {state}{conflict}" + "".join(f"  #{t}" for t in plan.get("tags", [])))
        print(f"       {plan['plan_uid']}")
    if p["unconnected"]:
        print(f"  unconnected: {len(p['unconnected'])} objects")
    if p["conflicts"]:
        print(f"  conflicts: {', '.join(p['conflicts'])}")


def _missing(missing: list[dict[str, str]]) -> str:
    by: dict[str, int] = {}
    for m in missing:
        by[m["modality"] or m["kind"]] = by.get(m["modality"] or m["kind"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(by.items()))
