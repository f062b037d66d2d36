"""``rtstation cleanup [--dry-run] [--days N]``: storage retention (see engine/retention.py for what is kept)."""

from __future__ import annotations

import argparse
import sys

from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.logsetup import setup_logging
from ..engine.outbound.queue import JobQueue
from ..engine.outbound.retention import apply_cleanup, plan_cleanup
from ..engine.store.files import Store
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cleanup", parents=[common], help="remove old plan bundles whose sends are all done")
    p.add_argument("--days", type=float, help="age limit in days (default: [retention] days)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    configure_audit(config.log_dir, config.logging.retention_days)
    days = args.days if args.days is not None else config.retention.days
    if days <= 0:
        return fail("retention is off: set [retention] days in the config or pass --days N", 2)
    index, store = Index(config.data_dir), Store(config.data_dir, config.receiver.durability)
    removals, kept = plan_cleanup(index, JobQueue(config.data_dir), store, days)
    removed = 0 if args.dry_run else apply_cleanup(index, store, removals)
    if args.json:
        print_json({"dry_run": args.dry_run, "days": days, "files_removed": removed,
                    "remove": [{"patient_id": r.patient_id, "plan_uid": r.plan_uid, "label": r.label,
                                "files": len(r.files), "bytes": r.nbytes} for r in removals],
                    "kept": [{"patient_id": k.patient_id, "plan_uid": k.plan_uid, "label": k.label, "why": k.why}
                             for k in kept]})
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for r in removals:
        print(f"{verb} plan {r.label} ({r.plan_uid}) of {r.patient_id}: {len(r.files)} files, {r.nbytes / 1e6:.1f} MB")
    for k in kept:
        print(f"kept plan {k.label} ({k.plan_uid}) of {k.patient_id}: {k.why}")
    if not removals:
        print(f"nothing older than {days:g} days is ready to be removed")
    return 0
