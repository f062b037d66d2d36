"""``rtstation dvh DOSE STRUCTURES [--roi NAME] [--json]``: DVHs of any RTDOSE over any RTSTRUCT.

DOSE and STRUCTURES are files, or SOP Instance UIDs of objects in the store; no plan needs to link them. The
``--json`` form is a contract scripts rely on: a list, one entry per ROI, ``roi``, ``volume_cc``, ``min_gy``,
``mean_gy``, ``max_gy``, ``d_gy`` (keys "99", "98", "95", "50", "5", "2", "1") and ``dvh`` ([dose_gy, volume_cc]
pairs of the cumulative DVH), plus ``roi_number`` and ``outside_grid_cc``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine.config.model import Config
from ..engine.metrics.dosegrid import DoseError, read_dose
from ..engine.metrics.dvh import Dvh, structure_set_dvhs
from ..engine.metrics.structures import StructureError, read_structures
from ..engine.store.index import Index
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dvh", parents=[common], help="DVHs of an RTDOSE over an RTSTRUCT (files or stored UIDs)")
    p.add_argument("dose", metavar="DOSE", help="RTDOSE file, or SOP Instance UID of a stored RTDOSE")
    p.add_argument("structures", metavar="STRUCTURES", help="RTSTRUCT file, or SOP Instance UID of a stored one")
    p.add_argument("--roi", action="append", metavar="NAME", help="only this ROI (repeatable; exact name)")
    p.add_argument("--step", type=float, default=0.1, metavar="GY", help="dose step of the DVH curve (0.1 Gy)")
    p.add_argument("--json", action="store_true", help="machine-readable output (a stable contract)")
    p.set_defaults(func=run)


def locate(value: str, modality: str, config: Config) -> Path:
    """A file as given, else the stored object with that SOP Instance UID (refused when several versions)."""
    path = Path(value)
    if path.is_file():
        return path
    if not (config.data_dir / "index.sqlite").exists():
        raise ValueError(f"{value!r} is not a file, and there is no index in {config.data_dir} to look it up")
    rows = Index(config.data_dir).conn.execute(
        "SELECT path, modality FROM instances WHERE sop_uid=? ORDER BY version", (value,)).fetchall()
    if not rows:
        raise ValueError(f"{value!r} is neither a file nor the SOP Instance UID of a stored object")
    if any(r["modality"] != modality for r in rows):
        raise ValueError(f"{value!r} is a stored {rows[0]['modality']}, not an {modality}")
    if len(rows) > 1:
        paths = ", ".join(str(config.data_dir / "store" / r["path"]) for r in rows)
        raise ValueError(f"{value!r} is stored in {len(rows)} different versions ({paths}); give the file instead")
    return config.data_dir / "store" / rows[0]["path"]


def run(args: argparse.Namespace, config: Config) -> int:
    if args.step <= 0:
        return fail(f"--step must be a positive dose in Gy, not {args.step}", 2)
    try:
        grid = read_dose(locate(args.dose, "RTDOSE", config))
        ss = read_structures(locate(args.structures, "RTSTRUCT", config))
        dvhs = structure_set_dvhs(ss, grid, args.roi)
    except (ValueError, OSError) as exc:  # DoseError and StructureError are ValueErrors
        kind = "dose" if isinstance(exc, DoseError) else "structures" if isinstance(exc, StructureError) else ""
        return fail(f"{kind + ': ' if kind else ''}{exc}")
    for roi in ss.rois:
        if roi.problem and (not args.roi or roi.name in args.roi):
            print(f"rtstation: warning: no DVH for {roi.problem}", file=sys.stderr)
    if grid.units.upper() != "GY":
        print(f"rtstation: warning: DoseUnits is {grid.units!r}: values labelled Gy are in that unit",
              file=sys.stderr)
    if grid.frame_of_ref and ss.frame_of_ref and grid.frame_of_ref != ss.frame_of_ref:
        print(f"rtstation: warning: the dose ({grid.frame_of_ref}) and the structures ({ss.frame_of_ref}) are in "
              f"different frames of reference", file=sys.stderr)
    if args.json:
        print_json([d.as_json(step_gy=args.step) for d in dvhs])
    else:
        print_table(dvhs)
    return 0


def print_table(dvhs: list[Dvh]) -> None:
    cols = ("volume cc", "min", "mean", "max", "D98", "D95", "D50", "D2")
    width = max([len(d.roi) for d in dvhs] + [3])
    print(f"{'ROI':{width}}  " + "  ".join(f"{c:>9}" for c in cols) + "   (Gy)")
    for d in dvhs:
        values = (d.volume_cc, d.min_gy, d.mean_gy, d.max_gy, d.dose_at(98), d.dose_at(95), d.dose_at(50),
                  d.dose_at(2))
        cells = "  ".join(f"{v:9.2f}" if v is not None else f"{'-':>9}" for v in values)
        note = f"   {d.outside_grid_cc:.2f} cc outside the dose grid" if d.outside_grid_cc > 0 else ""
        print(f"{d.roi:{width}}  {cells}{note}")
