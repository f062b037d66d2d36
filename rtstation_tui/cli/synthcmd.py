"""``rtstation synth OUTDIR``: write synthetic complete RT patients (demo, tests, benchmarks)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.config.model import Config
from ..synthetic import make_ct_bulk, make_patient


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("synth", parents=[common], help="generate synthetic CT+RTSTRUCT+RTPLAN+RTDOSE patients")
    p.add_argument("outdir", type=Path)
    p.add_argument("--patients", type=int, default=1)
    p.add_argument("--slices", type=int, default=20)
    p.add_argument("--size", type=int, default=128, help="CT rows and columns (512: 0.53 MB per slice)")
    p.add_argument("--label", default="SYN", help="plan label prefix")
    p.add_argument("--ion", action="store_true", help="RT Ion Plan instead of RT Plan")
    p.add_argument("--bulk-ct", type=int, metavar="N", help="only N CT slices of one series (benchmarks)")
    p.add_argument("--seed", help="reproducible UIDs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.bulk_ct:
        files = make_ct_bulk(args.outdir, args.bulk_ct, args.size, args.size, seed=args.seed)
        print(f"wrote {len(files)} CT files to {args.outdir}")
        return 0
    for n in range(1, args.patients + 1):
        pid = f"SYN{n:03d}"
        p = make_patient(args.outdir / pid, pid, name=f"SYNTHETIC^{n:03d}", slices=args.slices, rows=args.size,
                         cols=args.size, label=f"{args.label}{n}", ion=args.ion,
                         seed=f"{args.seed}-{n}" if args.seed else None)
        print(f"{pid}: plan {args.label}{n} ({p.plan_uid}), {len(p.files)} files in {args.outdir / pid}")
    return 0
