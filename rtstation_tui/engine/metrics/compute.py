"""One plan's metrics, from its files: plan facts, dose statistics, structures and a DVH per ROI.

Pure (paths in, plain rows out) so that it can run in a separate worker process: the DVH is seconds of NumPy and
Python per plan, and the receiver's threads must never wait for the GIL behind it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from .dosegrid import DoseGrid, read_dose
from .dvh import D_LEVELS, Dvh, compute_dvh
from .plan import read_plan
from .structures import StructureSet, read_structures, roi_volume_cc
from .tables import pack_dvh

log = logging.getLogger("rtstation.metrics")
SUMMATION_RANK = {"PLAN": 0, "MULTI_PLAN": 1, "FRACTION": 2, "BRACHY": 3, "BEAM": 4}
POINT = re.compile(r"^(?P<kind>[DV])(?P<value>\d+(?:\.\d+)?)(?P<unit>%|cc|Gy|cGy)?$")


class PointError(ValueError):
    """A DVH point of the configuration is not understood."""


@dataclass(frozen=True)
class MetricsJob:
    plan_uid: str
    patient_id: str
    patient_name: str
    signature: str
    received: float
    plan_path: str
    dose_paths: tuple[str, ...] = ()
    struct_paths: tuple[str, ...] = ()
    points: tuple[str, ...] = ()  # extra DVH points, e.g. "V20Gy", "D2cc", "D95%"


def parse_point(text: str) -> tuple[str, float, str]:
    """'V20Gy' → ('V', 20.0, 'Gy'); 'D2cc' → ('D', 2.0, 'cc'); 'D95' → ('D', 95.0, '%')."""
    m = POINT.match(text.strip())
    if m is None:
        raise PointError(f"DVH point {text!r} is not understood: use Dx% (D95), Dxcc (D2cc), VxGy (V20Gy), "
                         f"VxcGy (V2000cGy)")
    kind, value, unit = m["kind"], float(m["value"]), m["unit"] or ("%" if m["kind"] == "D" else "Gy")
    if kind == "V" and unit not in ("Gy", "cGy") or kind == "D" and unit not in ("%", "cc"):
        raise PointError(f"DVH point {text!r}: D takes % or cc, V takes Gy or cGy")
    return kind, (value / 100 if unit == "cGy" else value), ("Gy" if unit == "cGy" else unit)


def point_value(dvh: Dvh, text: str) -> Any:
    kind, value, unit = parse_point(text)
    if kind == "V":
        cc = dvh.volume_at(value)
        return {"cc": round(cc, 4), "percent": round(100 * cc / dvh.dosed_cc, 3) if dvh.dosed_cc else None}
    if unit == "cc":
        if value > dvh.dosed_cc:  # the ROI is smaller than the volume asked for
            return None
        return _r(dvh.dose_at(100 * value / dvh.dosed_cc))
    return _r(dvh.dose_at(value))


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(float(v), digits)


def plan_dose(paths: tuple[str, ...]) -> tuple[DoseGrid | None, list[str]]:
    """The plan's dose among its RTDOSEs, and notes: a PLAN sum first, then the other summation types; when there
    are only per-beam doses on one grid (Eclipse can export those), their sum."""
    found = []
    notes: list[str] = []
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        except Exception as exc:  # an unreadable file is reported, the others still count
            notes.append(f"cannot read RTDOSE {Path(p).name}: {exc}")
            continue
        found.append((SUMMATION_RANK.get(str(ds.get("DoseSummationType", "")), 9), p))
    if not found:
        return None, notes + ["no dose"]
    found.sort()
    try:
        if found[0][0] == SUMMATION_RANK["BEAM"] and len(found) > 1:
            return _beam_sum([p for _, p in found]), notes + [f"sum of {len(found)} beam doses"]
        if len(found) > 1:
            notes.append(f"{len(found)} doses: the {'PLAN sum' if found[0][0] == 0 else 'first'} used")
        return read_dose(found[0][1]), notes
    except (ValueError, OSError) as exc:
        return None, notes + [f"dose: {exc}"]


def _beam_sum(paths: list[str]) -> DoseGrid:
    grids = [read_dose(p) for p in paths]
    first = grids[0]
    for g in grids[1:]:
        if g.shape != first.shape or not (np.allclose(g.origin, first.origin) and np.allclose(g.z, first.z)
                                          and g.spacing == first.spacing):
            raise ValueError("the beam doses are on different grids; they cannot be summed")
    return replace(first, dose=np.sum([g.dose for g in grids], axis=0), summation="BEAM (summed)")


def compute(job: MetricsJob) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(plan row, ROI rows) for ``tables.save``. Problems with the dose or structures leave a partial row."""
    started = time.monotonic()
    facts = read_plan(job.plan_path)
    ss: StructureSet | None = None
    grid, notes = plan_dose(job.dose_paths)
    if job.struct_paths:
        try:
            ss = read_structures(job.struct_paths[0])
        except (ValueError, OSError) as exc:
            notes.append(f"structures: {exc}")
    else:
        notes.append("no structure set")
    rois = roi_rows(job, ss, grid) if ss is not None else []
    notes += [r.problem for r in ss.rois if r.problem] if ss is not None else []
    plan = plan_row(job, facts.as_json(), grid, ss, rois)
    plan.update(computed=time.time(), seconds=round(time.monotonic() - started, 3),
                status="ok" if grid is not None and ss is not None else "partial", detail="; ".join(notes))
    return plan, rois


def roi_rows(job: MetricsJob, ss: StructureSet, grid: DoseGrid | None) -> list[dict[str, Any]]:
    rows = []
    for roi in ss.rois:
        row: dict[str, Any] = {"plan_uid": job.plan_uid, "roi_number": roi.number, "name": roi.name,
                               "kind": roi.kind, "contours": roi.contours, "planes": len(roi.planes)}
        if grid is not None and roi.planes:
            dvh = compute_dvh(roi, None, grid)
            row.update(volume_cc=_r(dvh.volume_cc), outside_grid_cc=_r(dvh.outside_grid_cc),
                       min_gy=_r(dvh.min_gy), mean_gy=_r(dvh.mean_gy), max_gy=_r(dvh.max_gy),
                       d_gy=json.dumps({str(x): _r(dvh.dose_at(x)) for x in D_LEVELS}),
                       points=json.dumps({p: point_value(dvh, p) for p in job.points}),
                       bin_gy=dvh.bin_gy, dvh=pack_dvh(_trim(dvh.cumulative)))
        else:
            row["volume_cc"] = _r(roi_volume_cc(roi)) if roi.planes else 0.0
        rows.append(row)
    return rows


def _trim(cumulative: np.ndarray) -> np.ndarray:
    nz = np.nonzero(cumulative)[0]
    return cumulative[: nz[-1] + 2] if len(nz) else cumulative[:1]


def plan_row(job: MetricsJob, facts: dict[str, Any], grid: DoseGrid | None, ss: StructureSet | None,
             rois: list[dict[str, Any]]) -> dict[str, Any]:
    beams = facts["beams"]
    energies = sorted({f"{b['energy']:g}" for b in beams if b.get("energy") is not None}, key=float)
    row: dict[str, Any] = {
        "plan_uid": job.plan_uid, "patient_id": job.patient_id, "patient_name": job.patient_name,
        "label": facts["label"], "name": facts["name"], "intent": facts["intent"], "approval": facts["approval"],
        "review_date": facts["review_date"], "reviewer": facts["reviewer"], "machine": ", ".join(facts["machines"]),
        "technique": facts["technique"], "radiation": ", ".join(sorted({b["radiation_type"] for b in beams})),
        "energies": ",".join(energies), "fractions": facts["fractions"], "num_beams": len(beams),
        "total_mu": facts["total_mu"], "prescription_gy": facts["prescription_gy"],
        "dose_per_fraction_gy": facts["dose_per_fraction_gy"], "received": job.received,
        "signature": job.signature, "struct_uid": ss.sop_uid if ss else facts["struct_uid"],
    }
    if grid is not None:
        frames, rows_, cols = grid.shape
        facts["grid"] = {"columns": cols, "rows": rows_, "frames": frames,
                         "spacing_mm": [grid.spacing[1], grid.spacing[0], round(grid.frame_spacing, 4)]}
        row.update(dose_uid=grid.sop_uid, dose_units=grid.units, dose_summation=grid.summation,
                   dose_grid=f"{cols}x{rows_}x{frames} @ {grid.spacing[1]:g}x{grid.spacing[0]:g}x"
                             f"{grid.frame_spacing:g} mm",
                   min_dose_gy=_r(float(grid.dose.min())), mean_dose_gy=_r(float(grid.dose.mean())),
                   max_dose_gy=_r(float(grid.dose.max())))
    facts["structures"] = [{"roi_number": r["roi_number"], "name": r["name"], "kind": r["kind"],
                            "contours": r["contours"], "planes": r["planes"], "volume_cc": r.get("volume_cc")}
                           for r in rois]
    if ss is not None:
        facts["structure_set"] = {"uid": ss.sop_uid, "label": ss.label, "slice_thickness_mm": ss.thickness}
    row["facts"] = json.dumps(facts)
    return row


def job_paths(root: Path, rels: list[str]) -> tuple[str, ...]:
    return tuple(str(root / r) for r in rels)
