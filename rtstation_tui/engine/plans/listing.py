"""The patient → plan listing as plain data: the ``show --json`` contract other scripts rely on.

``[{"patient_id", "patient_name", "plans": [{"plan_uid", "label", "machine", "approval", "complete",
"missing": [{"uid", "kind", "modality"}], "counts": {"CT": n}, "instances": [sop uids], ...}],
"unconnected": [sop uids], "conflicts": [sop uids]}]`` — deterministic, so a rebuilt index gives the same text.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .bundle import Bundle, PatientView, all_views, patient_view
from ..store.tags import tags_by_plan


def plan_json(b: Bundle) -> dict[str, Any]:
    return {
        "plan_uid": b.plan_uid,
        "label": b.label,
        "name": b.name,
        "machine": ", ".join(b.machines),
        "approval": b.approval,
        "ion": b.ion,
        "beams": len(b.beams),
        "fractions": b.fractions,
        "complete": b.complete,
        "missing": [m.as_json() for m in b.missing],
        "counts": b.counts(),
        "instances": sorted({m.sop_uid for m in b.members}),
        "conflicts": b.conflicts,
    }


def patient_json(view: PatientView) -> dict[str, Any]:
    conflicts = {m.sop_uid for b in view.bundles for m in b.members if m.conflict}
    conflicts |= {m.sop_uid for m in view.unconnected if m.conflict}
    return {
        "patient_id": view.patient_id,
        "patient_name": view.patient_name,
        "plans": [plan_json(b) for b in view.bundles],
        "unconnected": sorted({m.sop_uid for m in view.unconnected}),
        "conflicts": sorted(conflicts),
    }


def patients_json(conn: sqlite3.Connection, patient_id: str | None = None) -> list[dict[str, Any]]:
    """The ``show --json`` contract (also ``GET /api/v1/tree``): patients, their plans with the rules' tags."""
    views = [patient_view(conn, patient_id)] if patient_id is not None else all_views(conn)
    data = [patient_json(v) for v in views if v.bundles or v.unconnected]
    tags = tags_by_plan(conn)
    for patient in data:
        for plan in patient["plans"]:
            plan["tags"] = tags.get(plan["plan_uid"], [])
    return data
