"""``rtstation show``: patients → plan bundles (complete or what is missing) and the unconnected bin."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..engine.config.model import DEFAULT_CONFIG_PATHS, Config
from ..engine.store.index import Index
from ..engine.plans.folder import folder_json
from ..engine.plans.listing import patients_json
from .output import fail, print_json
from .remote import ApiCallError, api_fail, connect


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
    remote = connect(config)
    if remote is not None:  # the station's own view (its index connection sees what it wrote a moment ago)
        try:
            query = f"?patient={quote(args.patient, safe='')}" if args.patient is not None else ""
            data = only_tagged(remote.call_sync("GET", f"/api/v1/tree{query}"), args.tag)
        except ApiCallError as exc:
            return api_fail(exc)
    elif config.path is None and not (config.data_dir / "index.sqlite").exists():
        # nothing to show, and a read must not create ./var: say where a configuration was looked for
        looked = ["--config (not given)", "$RTSTATION_CONFIG (not set)", *DEFAULT_CONFIG_PATHS]
        return fail(f"no configuration found (looked at {', '.join(looked)}) and no index in {config.data_dir}; "
                    "pass --config PATH", 1)
    else:
        data = only_tagged(patients_json(Index(config.data_dir).conn, args.patient), args.tag)
    if args.patient and not data:
        return fail(f"no patient with PatientID {args.patient!r} in {config.data_dir}", 1)
    if args.json:
        print_json(data)
        return 0
    if not data:
        print(f"no objects in {config.data_dir}")
    for patient in data:
        print_patient(patient)
    return 0


def only_tagged(data: list[dict[str, Any]], only: str | None) -> list[dict[str, Any]]:
    """With ``only``, the plans carrying that rule tag (and the patients that have one); else everything."""
    if only is None:
        return data
    out = []
    for patient in data:
        plans = [p for p in patient["plans"] if only in p.get("tags", [])]
        if plans:
            out.append({**patient, "plans": plans, "unconnected": []})
    return out


def show_folder(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.is_dir():
        return fail(f"--path {args.path}: no such folder", 2)
    data, skipped = folder_json(root, args.pattern)
    for patient in data:  # the shape of `show --json`: a folder's plans carry no rule tags
        for plan in patient["plans"]:
            plan["tags"] = []
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
