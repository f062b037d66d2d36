"""``rtstation show``: patients → plan bundles (complete or what is missing) and the unconnected bin."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.plans.listing import patients_json
from .output import print_json
from .remote import ApiCallError, api_fail, connect


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("show", parents=[common], help="list patients, plan bundles and unconnected objects")
    p.add_argument("--json", action="store_true", help="machine-readable output (a stable contract)")
    p.add_argument("--patient", metavar="ID", help="only this PatientID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    remote = connect(config)
    if remote is not None:  # the station's own view (its index connection sees what it wrote a moment ago)
        try:
            query = f"?patient={quote(args.patient, safe='')}" if args.patient is not None else ""
            data = remote.call_sync("GET", f"/api/v1/tree{query}")
        except ApiCallError as exc:
            return api_fail(exc)
    else:
        data = patients_json(Index(config.data_dir).conn, args.patient)
    if args.json:
        print_json(data)
        return 0
    if not data:
        print(f"no objects in {config.data_dir}")
    for patient in data:
        print_patient(patient)
    return 0


def print_patient(p: dict[str, Any]) -> None:
    print(f"{p['patient_id'] or '(no PatientID)'}  {p['patient_name']}")
    for plan in p["plans"]:
        counts = ", ".join(f"{k} {v}" for k, v in plan["counts"].items())
        state = "complete" if plan["complete"] else f"missing {_missing(plan['missing'])}"
        conflict = f"  CONFLICT ({len(plan['conflicts'])})" if plan["conflicts"] else ""
        print(f"  plan {plan['label'] or '(no label)'}  {plan['machine'] or '-'}  {plan['approval'] or '-'}  "
              f"{plan['beams']} beams  {plan['fractions'] if plan['fractions'] is not None else '-'} fx  "
              f"[{counts}]  {state}{conflict}")
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
