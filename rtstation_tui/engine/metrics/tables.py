"""The metrics tables of ``index.sqlite`` and their reads and writes.

Why in the index: metrics are derived data like the rest of the index (``index --rebuild`` recomputes them from the
files) and filters join them with plans and bundles. One row per plan in ``metric_plans`` (the columns filters and
sorts use, plus the whole facts as JSON), one row per ROI in ``metric_rois`` (statistics, and the cumulative DVH as
zlib-compressed float32 volumes per 0.01 Gy bin: ~2 kB for a 70 Gy ROI).

The tables are created by migration 2 of the index schema (``store/schema/index.py``).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from typing import Any, Iterable

import numpy as np

PLAN_COLUMNS = ("plan_uid", "patient_id", "patient_name", "label", "name", "intent", "approval", "review_date",
                "reviewer", "machine", "technique", "radiation", "energies", "fractions", "num_beams", "total_mu",
                "prescription_gy", "dose_per_fraction_gy", "dose_uid", "struct_uid", "dose_units", "dose_summation",
                "dose_grid", "min_dose_gy", "mean_dose_gy", "max_dose_gy", "received", "computed", "seconds",
                "signature", "status", "detail", "facts")
ROI_COLUMNS = ("plan_uid", "roi_number", "name", "kind", "contours", "planes", "volume_cc", "outside_grid_cc",
               "min_gy", "mean_gy", "max_gy", "d_gy", "points", "bin_gy", "dvh")


def pack_dvh(cumulative: np.ndarray) -> bytes:
    return zlib.compress(np.asarray(cumulative, dtype="<f4").tobytes(), 6)


def unpack_dvh(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype="<f4").astype(np.float64) if blob else np.zeros(0)


def save(conn: sqlite3.Connection, plan: dict[str, Any], rois: Iterable[dict[str, Any]]) -> None:
    """Replace one plan's metrics (plan row and every ROI row) in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM metric_rois WHERE plan_uid=?", (plan["plan_uid"],))
        conn.execute(f"INSERT OR REPLACE INTO metric_plans ({', '.join(PLAN_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(PLAN_COLUMNS))})", [plan.get(c) for c in PLAN_COLUMNS])
        conn.executemany(f"INSERT INTO metric_rois ({', '.join(ROI_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(ROI_COLUMNS))})",
                         [[r.get(c) for c in ROI_COLUMNS] for r in rois])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def forget(conn: sqlite3.Connection, plan_uids: Iterable[str]) -> None:
    uids = [(u,) for u in plan_uids]
    conn.executemany("DELETE FROM metric_rois WHERE plan_uid=?", uids)
    conn.executemany("DELETE FROM metric_plans WHERE plan_uid=?", uids)


def signatures(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] or "" for r in conn.execute("SELECT plan_uid, signature FROM metric_plans")}


def roi_rows(conn: sqlite3.Connection, plan_uid: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM metric_rois WHERE plan_uid=? ORDER BY roi_number", (plan_uid,)).fetchall()


def plan_json(row: sqlite3.Row) -> dict[str, Any]:
    """The ``rtstation metrics --json`` entry of one plan (names scripts rely on: see the CLI's docstring)."""
    facts = json.loads(row["facts"] or "{}")
    beams = [{"name": b.get("name"), "number": b.get("number"), "radiation_type": b.get("radiation_type"),
              "energy": b.get("energy"), "energy_unit": b.get("energy_unit"), "fluence": b.get("fluence"),
              "mu": b.get("mu"), "technique": b.get("technique"), "delivery": b.get("delivery"),
              "control_points": b.get("control_points"), "gantry": [b.get("gantry_start"), b.get("gantry_stop")],
              "gantry_direction": b.get("gantry_direction"), "collimator": b.get("collimator"),
              "couch": b.get("couch"), "machine": b.get("machine")} for b in facts.get("beams", [])]
    has_dose = row["max_dose_gy"] is not None
    return {
        "plan_uid": row["plan_uid"], "label": row["label"], "name": row["name"], "patient_id": row["patient_id"],
        "patient_name": row["patient_name"], "machine": row["machine"], "machines": facts.get("machines", []),
        "approval": row["approval"], "review_date": row["review_date"], "reviewer": row["reviewer"],
        "intent": row["intent"], "technique": row["technique"], "fractions": row["fractions"], "beams": beams,
        "total_mu": row["total_mu"], "prescription_gy": row["prescription_gy"],
        "prescription_per_fraction_gy": facts.get("prescription_per_fraction_gy"),
        "prescription_target": facts.get("prescription_target"),
        "dose_per_fraction_gy": row["dose_per_fraction_gy"], "ranges": facts.get("ranges"),
        "dose": ({"min_gy": row["min_dose_gy"], "mean_gy": row["mean_dose_gy"], "max_gy": row["max_dose_gy"],
                  "units": row["dose_units"], "summation": row["dose_summation"], "grid": facts.get("grid"),
                  "dose_uid": row["dose_uid"]} if has_dose else None),
        "struct_uid": row["struct_uid"] or None, "structures": facts.get("structures", []),
        "received": row["received"], "computed": row["computed"], "status": row["status"],
        "detail": row["detail"] or "",
    }
