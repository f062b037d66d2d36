"""``rtstation cleanup [--dry-run] [--days N] [--max-gb G]``: storage retention by age and by size (see
engine/outbound/retention.py for what is kept)."""

from __future__ import annotations

import argparse
import sys

from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.logsetup import setup_logging
from ..engine.outbound.deletion import human_bytes
from ..engine.outbound.queue import JobQueue
from ..engine.outbound.retention import Kept, Removal, apply_cleanup, plan_cleanup, plan_size_cleanup, warn_over_limit
from ..engine.store.files import Store
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cleanup", parents=[common], help="remove old plan bundles whose sends are all done")
    p.add_argument("--days", type=float, help="age limit in days (default: [retention] days)")
    p.add_argument("--max-gb", type=float, help="size limit of the store in GB (default: [retention] max_store_gb)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    configure_audit(config.log_dir, config.logging.retention_days)
    days = args.days if args.days is not None else config.retention.days
    max_gb = args.max_gb if args.max_gb is not None else config.retention.max_store_gb
    if days < 0 or max_gb < 0:
        return fail("--days and --max-gb must be 0 (off) or more", 2)
    if days <= 0 and max_gb <= 0:
        return fail("retention is off: set [retention] days or max_store_gb in the config, or pass --days N or "
                    "--max-gb G", 2)
    index, store, queue = Index(config.data_dir), Store(config.data_dir, config.receiver.durability), \
        JobQueue(config.data_dir)
    committing = [n.name for n in config.nodes if n.commitment]
    removals, kept = plan_cleanup(index, queue, store, days, committing=committing) if days > 0 else ([], [])
    removed = 0 if args.dry_run else apply_cleanup(index, store, removals)
    by_size: list[Removal] = []
    over = 0
    if max_gb > 0:
        by_size, check = plan_size_cleanup(index, queue, store, int(max_gb * 1e9), committing)
        if args.dry_run:  # what the age pass would remove is not counted off: a dry run removes nothing
            by_size = [r for r in by_size if r.plan_uid not in {x.plan_uid for x in removals}]
        else:
            removed += apply_cleanup(index, store, by_size, reason="retention: the store is over max_store_gb, "
                                     "oldest delivered bundles first")
            warn_over_limit(check)
        over = check.over_after
    return _report(args, days, max_gb, removals + by_size, kept, removed, over)


def _report(args: argparse.Namespace, days: float, max_gb: float, removals: list[Removal], kept: list[Kept],
            removed: int, over: int) -> int:
    if args.json:
        print_json({"dry_run": args.dry_run, "days": days, "max_store_gb": max_gb, "files_removed": removed,
                    "over_limit_bytes": over,
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
    if over:
        print(f"the store stays {human_bytes(over)} over {max_gb:g} GB: what remains is unsent, queued, failed or "
              f"not committed, and is never removed")
    if not removals:
        print(f"nothing older than {days:g} days is ready to be removed" if days > 0 else
              "nothing needs removing to fit the size limit")
    return 0
