"""Plan metrics and DVH curves as plain frozen data, for the console (``StationAPI.plan_metrics``,
``StationAPI.dvh_curves``): never a sqlite row or a NumPy array, so a remote station can send them as JSON."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import tables
from .query import parse_sort, parse_where


@dataclass(frozen=True)
class BeamMetrics:
    name: str
    radiation_type: str
    energy: float | None
    energy_unit: str
    mu: float | None
    technique: str
    gantry: str  # "181→179 CW", "0"


@dataclass(frozen=True)
class PlanMetrics:
    plan_uid: str
    label: str
    patient_id: str
    machine: str
    technique: str
    approval: str
    fractions: int | None
    total_mu: float | None
    prescription_gy: float | None
    max_dose_gy: float | None
    received: float | None
    status: str
    detail: str
    beams: tuple[BeamMetrics, ...]


@dataclass(frozen=True)
class DvhCurve:
    """One ROI's cumulative DVH: ``doses`` in Gy and ``volumes`` in % of the ROI (same length)."""

    roi: str
    kind: str
    volume_cc: float
    min_gy: float | None
    mean_gy: float | None
    max_gy: float | None
    d95_gy: float | None
    d2_gy: float | None
    doses: tuple[float, ...]
    volumes: tuple[float, ...]


def _gantry(b: dict[str, object]) -> str:
    start, stop, direction = b.get("gantry_start"), b.get("gantry_stop"), b.get("gantry_direction") or "NONE"
    if start is None:
        return ""
    if direction in ("CW", "CC") and stop is not None:
        return f"{start:g}→{stop:g} {direction}"
    return f"{start:g}"


def plan_metrics(conn: sqlite3.Connection, where: Sequence[str] = (), sort: str = "-received",
                 limit: int = 1000, points: tuple[str, ...] | None = None) -> list[PlanMetrics]:
    """Plans matching the filters (``query.py``; QueryError names a bad one), sorted, at most ``limit``.
    ``points``: the configured ``[metrics] dvh_points`` that ROI filters may use."""
    w = parse_where(list(where), points)
    sql = (f"SELECT * FROM metric_plans{' WHERE ' + w.sql if w.sql else ''} ORDER BY {parse_sort(sort)} "
           f"LIMIT {int(limit)}")
    out = []
    for r in conn.execute(sql, w.params):
        facts = json.loads(r["facts"] or "{}")
        beams = tuple(BeamMetrics(b.get("name") or "", b.get("radiation_type") or "", b.get("energy"),
                                  b.get("energy_unit") or "", b.get("mu"), b.get("technique") or "", _gantry(b))
                      for b in facts.get("beams", []))
        out.append(PlanMetrics(r["plan_uid"], r["label"] or "", r["patient_id"] or "", r["machine"] or "",
                               r["technique"] or "", r["approval"] or "", r["fractions"], r["total_mu"],
                               r["prescription_gy"], r["max_dose_gy"], r["received"], r["status"] or "",
                               r["detail"] or "", beams))
    return out


def dvh_curves(conn: sqlite3.Connection, plan_uid: str, points: int = 200) -> list[DvhCurve]:
    """The stored DVHs of a plan, each resampled to at most ``points`` doses (enough for a terminal plot)."""
    out = []
    for r in tables.roi_rows(conn, plan_uid):
        cum = tables.unpack_dvh(r["dvh"])
        if not len(cum) or cum[0] <= 0:
            continue
        edges = np.arange(len(cum)) * (r["bin_gy"] or 0.01)
        doses = np.linspace(0.0, float(edges[-1]), min(points, len(cum)))
        volumes = np.interp(doses, edges, cum) * 100.0 / cum[0]
        d = json.loads(r["d_gy"] or "{}")
        out.append(DvhCurve(r["name"] or "", r["kind"] or "", r["volume_cc"] or 0.0, r["min_gy"], r["mean_gy"],
                            r["max_gy"], d.get("95"), d.get("2"), tuple(round(float(x), 4) for x in doses),
                            tuple(round(float(v), 3) for v in volumes)))
    return out
