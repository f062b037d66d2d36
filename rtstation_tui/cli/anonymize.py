"""``rtstation anonymize --plan UID|LABEL --profile NAME --out DIR``: a de-identified copy of a plan bundle as files.

The store keeps the originals (they are only read). ``--lookup VALUE`` maps a replacement UID or patient ID back
to the original through ``data_dir/anonymize.sqlite`` (the table every anonymize run and anonymized send fills).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine.audit import audit
from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.config.rules import INCLUDE_PARTS
from ..engine.logsetup import setup_logging
from ..engine.outbound.sender import parts_for
from ..engine.store.files import Store
from ..engine.store.index import Index
from ..engine.transforms.anonymize import NewPatient, build
from ..engine.transforms.base import TransformError
from ..engine.transforms.files import read_objects, write_objects
from ..engine.transforms.mapping import MappingTable
from .output import fail, print_json
from .send import resolve_bundle


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("anonymize", parents=[common], help="write a de-identified copy of a plan bundle")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--plan", metavar="UID|LABEL", help="plan SOP Instance UID or RTPlanLabel")
    what.add_argument("--lookup", metavar="VALUE", help="map a replacement UID or patient ID back to the original")
    p.add_argument("--patient", metavar="ID", help="PatientID, when a label is used by several patients")
    p.add_argument("--profile", metavar="NAME", help="anonymize profile (default: [anonymize] default_profile)")
    p.add_argument("--new-id", metavar="ID", help="new PatientID (default: the [anonymize] patient_id rule)")
    p.add_argument("--new-name", metavar="NAME", help="new PatientName (default: the new ID)")
    p.add_argument("--include", metavar="PARTS", help=f"comma-separated subset of {','.join(INCLUDE_PARTS)}")
    p.add_argument("--out", metavar="DIR", help="folder for the de-identified files (created)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    configure_audit(config.log_dir, config.logging.retention_days)
    if args.lookup:
        return _lookup(config, args.lookup, args.json)
    if not args.out:
        return fail("--out DIR is required with --plan", 2)
    include = args.include.split(",") if args.include else None
    if include and (bad := [i for i in include if i not in INCLUDE_PARTS]):
        return fail(f"--include: unknown part {bad[0]!r}; choose from {', '.join(INCLUDE_PARTS)}", 2)
    index = Index(config.data_dir)
    store = Store(config.data_dir, config.receiver.durability)
    try:
        bundle = resolve_bundle(index, args.plan, args.patient)
    except ValueError as exc:
        return fail(str(exc), 2)
    plan_uid = bundle.plan_uid
    members = bundle.ordered(parts_for(include))
    profile = args.profile or config.anonymize.default_profile
    try:
        transform = build(config, profile, new=NewPatient(args.new_id, args.new_name))
        objects = transform.apply(read_objects(store.abspath(m.path) for m in members))
    except (TransformError, ValueError) as exc:
        return fail(f"anonymize: {exc}", 1)
    written = write_objects(objects, Path(args.out), fsync=config.receiver.durability == "fsync")
    new_ids = sorted({str(ds.PatientID) for ds in objects})
    # who took which patient out of the station, de-identified as whom: the audit trail's question
    audit("anonymize_export", plan_uid=plan_uid, label=bundle.label, patient_id=bundle.patient_id,
          new_patient_ids=new_ids, profile=profile, key_id=transform.key.key_id, files=len(written), out=args.out)
    result = {"plan_uid": plan_uid, "label": bundle.label, "profile": profile, "transform": transform.describe(),
              "files": [str(p) for p in written], "patient_ids": new_ids}
    if args.json:
        print_json(result)
    else:
        print(f"{len(written)} de-identified files of plan {bundle.label} ({plan_uid}) in {args.out}: "
              f"patient {', '.join(new_ids)}, {transform.describe()}")
    return 0


def _lookup(config: Config, value: str, as_json: bool) -> int:
    path = Path(config.data_dir) / "anonymize.sqlite"
    if not path.exists():
        return fail(f"no mapping table at {path}: nothing was anonymized with this data_dir", 1)
    rows = MappingTable(config.data_dir).reverse(value.strip())
    audit("anonymize_lookup", value=value.strip(), found=len(rows))  # re-identification is always on record
    if as_json:
        print_json([{"kind": k, "original": o, "key_id": key} for k, o, key in rows])
    for kind, original, key_id in rows if not as_json else []:
        print(f"{kind} {value} ← {original} (key {key_id})")
    return 0 if rows else fail(f"{value!r} is not a replacement recorded in {path}", 1)
