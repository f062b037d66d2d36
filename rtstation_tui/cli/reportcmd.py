"""``rtstation report [--month YYYY-MM] [--json|--csv]``: per rule and per node, plans forwarded, instances,
failures and median delay (queued → delivered) in one month (default: the current one)."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import fields

from ..engine.config.model import Config
from ..engine.outbound.report import ReportRow, monthly_report
from ..engine.outbound.queue import JobQueue
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="monthly forwarding report per rule and node")
    p.add_argument("--month", default=time.strftime("%Y-%m"), metavar="YYYY-MM", help="default: this month")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output (a stable contract)")
    fmt.add_argument("--csv", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    queue = JobQueue(config.data_dir)
    try:
        rows = monthly_report(queue.conn, args.month)
    except ValueError as exc:
        return fail(str(exc), 2)
    names = [f.name for f in fields(ReportRow)]
    if args.json:
        print_json([r.as_json() for r in rows])
    elif args.csv:
        out = csv.writer(sys.stdout)
        out.writerow(names)
        out.writerows([[getattr(r, n) if getattr(r, n) is not None else "" for n in names] for r in rows])
    elif not rows:
        print(f"no sends queued in {args.month}")
    else:
        print(f"{'rule':20s} {'node':16s} {'jobs':>5s} {'plans':>5s} {'instances':>9s} {'failed':>6s} "
              f"{'median delay':>12s}   ({args.month})")
        for r in rows:
            delay = f"{r.median_delay_s:.1f} s" if r.median_delay_s is not None else "-"
            print(f"{r.rule[:20]:20s} {r.node[:16]:16s} {r.jobs:5d} {r.plans:5d} {r.instances:9d} "
                  f"{r.failed_jobs:6d} {delay:>12s}")
    return 0
