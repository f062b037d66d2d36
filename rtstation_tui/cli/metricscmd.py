"""``rtstation metrics [--where EXPR] [--columns ...] [--sort ...] [--csv|--json] [--dvh PLAN] [--update]``.

The plan metrics database: one row per ready plan (computed by the server when the bundle became ready, or here
with ``--update``). ``--json`` is a contract scripts rely on: a list of plans, each with ``plan_uid``, ``label``,
``patient_id``, ``machine``, ``approval``, ``fractions``, ``beams`` (``name``, ``radiation_type``, ``energy``,
``mu``, ...), ``total_mu``, ``prescription_gy`` and ``dose`` (``min_gy``, ``mean_gy``, ``max_gy``; null without a
dose), plus more. ``--dvh PLAN`` prints that plan's DVHs in the ``rtstation dvh`` format.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from typing import Any

from ..engine.config.model import Config
from ..engine.metrics import tables
from ..engine.metrics.dvh import Dvh
from ..engine.metrics.query import FIELDS, QueryError, parse_sort, parse_where
from ..engine.metrics.update import update_all
from ..engine.plans.bundle import find_plans
from ..engine.store.index import Index
from .dvhcmd import print_table
from .output import fail, print_json

DEFAULT_COLUMNS = ("label", "patient_id", "machine", "technique", "approval", "fractions", "beams", "total_mu",
                   "prescription", "max_dose", "received", "status")
COLUMN_SOURCES = {name: column for name, (column, _) in FIELDS.items()}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("metrics", parents=[common], help="plan metrics database: filter, sort, export; DVHs")
    p.add_argument("--where", action="append", default=[], metavar="EXPR",
                   help="filter, e.g. 'label~ADP', 'max_dose>60Gy', 'machine=TrueBeam*', 'received>2026-01-01', "
                        "and on ROIs 'roi:Lung*.mean>20Gy', 'roi:PTV*.D95<57Gy', 'roi:Lung*.V20Gy>30' (a [metrics] "
                        "dvh_points entry, %% of the ROI) (repeatable, or joined with ',' / 'and')")
    p.add_argument("--columns", metavar="A,B,...", help=f"columns of the table and CSV (default: "
                   f"{','.join(DEFAULT_COLUMNS)}); fields: {', '.join(sorted(FIELDS))}")
    p.add_argument("--sort", default="-received", metavar="FIELD,-FIELD", help="sort order (default -received)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N plans")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output (a stable contract)")
    fmt.add_argument("--csv", action="store_true", help="CSV of the chosen columns")
    p.add_argument("--dvh", metavar="PLAN", help="DVHs of one plan (UID or label)")
    p.add_argument("--patient", metavar="ID", help="with --dvh: the patient, when a label is ambiguous")
    p.add_argument("--step", type=float, default=0.1, metavar="GY", help="with --dvh --json: DVH curve step")
    p.add_argument("--update", action="store_true",
                   help="compute missing or outdated metrics now, in this process, then list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    index = Index(config.data_dir)
    if args.update:
        done = update_all(index, config)
        print(f"metrics: {done} plans computed", file=sys.stderr)
    if args.dvh:
        return show_dvh(index, args)
    columns = tuple(c.strip() for c in args.columns.split(",")) if args.columns else DEFAULT_COLUMNS
    bad = [c for c in columns if c not in COLUMN_SOURCES]
    if bad:
        return fail(f"--columns: unknown field {bad[0]!r}; fields: {', '.join(sorted(FIELDS))}", 2)
    try:
        where = parse_where(args.where, config.metrics.dvh_points)
        order = parse_sort(args.sort)
    except QueryError as exc:
        return fail(str(exc), 2)
    sql = (f"SELECT * FROM metric_plans{' WHERE ' + where.sql if where.sql else ''} ORDER BY {order}"
           + (f" LIMIT {int(args.limit)}" if args.limit else ""))
    rows = index.conn.execute(sql, where.params).fetchall()
    if args.json:
        print_json([tables.plan_json(r) for r in rows])
    elif args.csv:
        out = csv.writer(sys.stdout)
        out.writerow(columns)
        for r in rows:
            out.writerow([_cell(r, c, iso=True) for c in columns])
    else:
        print_rows(rows, columns)
    return 0


def _cell(row: Any, name: str, iso: bool = False) -> str:
    value = row[COLUMN_SOURCES[name]]
    if value is None:
        return ""
    if FIELDS[name][1] == "date":
        return time.strftime("%Y-%m-%dT%H:%M:%S" if iso else "%Y-%m-%d %H:%M", time.localtime(value))
    if isinstance(value, float):
        return f"{value:g}" if iso else f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def print_rows(rows: list[Any], columns: tuple[str, ...]) -> None:
    if not rows:
        print("no plan metrics match" if rows is not None else "")
        return
    cells = [[_cell(r, c) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def stored_dvhs(index: Index, plan_uid: str) -> list[tuple[Dvh, dict[str, Any]]]:
    """The stored DVHs of a plan as ``Dvh`` objects, with their configured extra points."""
    out = []
    for r in tables.roi_rows(index.conn, plan_uid):
        if r["dvh"] is None:
            continue
        dvh = Dvh(r["name"], r["roi_number"], r["volume_cc"] or 0.0, r["outside_grid_cc"] or 0.0, r["min_gy"],
                  r["mean_gy"], r["max_gy"], r["bin_gy"] or 0.01, tables.unpack_dvh(r["dvh"]))
        out.append((dvh, json.loads(r["points"] or "{}")))
    return out


def show_dvh(index: Index, args: argparse.Namespace) -> int:
    plans = sorted({r["sop_uid"] for r in find_plans(index.conn, args.dvh, args.patient)})
    if not plans:
        return fail(f"--dvh: no plan with UID or label {args.dvh!r}")
    if len(plans) > 1:
        return fail(f"--dvh: {args.dvh!r} matches {len(plans)} plans ({', '.join(plans)}); give the UID or --patient")
    row = index.conn.execute("SELECT status, detail FROM metric_plans WHERE plan_uid=?", (plans[0],)).fetchone()
    if row is None:
        return fail(f"--dvh: plan {args.dvh!r} has no metrics yet (the server computes them when the bundle is "
                    f"ready; or run with --update)")
    dvhs = stored_dvhs(index, plans[0])
    if not dvhs:
        return fail(f"--dvh: plan {args.dvh!r} has no DVH ({row['status']}: {row['detail'] or 'no detail'})")
    if args.json:
        print_json([{**d.as_json(step_gy=args.step), "points": pts} for d, pts in dvhs])
    else:
        print_table([d for d, _ in dvhs])
    return 0
