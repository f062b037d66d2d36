"""What a send of a tree node that is not a plan takes ([HARDEN2] 19): a patient, a study or a series by UID, or
exactly the objects a tree row counts (the unconnected bin, one unconnected series), and what the send dialog says
of it before anything leaves. Frozen data, like every listing of ``queries``: it crosses the console's interface
(and a socket, for an attached console)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .bundle import members_by_sop
from .queries import MAX_SQL_PARAMS

SELECTION_LEVELS = ("patient", "study", "series", "objects")


@dataclass(frozen=True)
class Selection:
    """A tree node that is not a plan, as a send takes it ([HARDEN2] 19): everything stored under one patient, study
    or series (``uid``: its PatientID / Study / Series Instance UID, plan objects and unconnected ones alike), or
    exactly the ``objects`` listed (the unconnected bin, one unconnected series), named by ``what``."""

    level: str  # one of SELECTION_LEVELS
    uid: str = ""
    sop_uids: tuple[str, ...] = ()
    what: str = ""  # how the console names it: "unconnected objects", "unconnected CT series …1234"


@dataclass(frozen=True)
class SelectionPreview:
    """What a send of a ``Selection`` carries: whose it is, what it is, and every count, before anything leaves."""

    selection: Selection
    patient_id: str  # several patients (a hand-picked set): joined by ", "
    patient_name: str
    description: str  # "2 studies, 5 series" (a patient), "1 series: Thorax 3mm", a series' description
    counts: tuple[tuple[str, int], ...]  # by modality, in send order
    instances: int
    nbytes: int
    plans: int = 0  # plans among the objects (a patient's, a study's)


def selection_sops(conn: sqlite3.Connection, selection: Selection) -> list[str]:
    """The SOP Instance UIDs a send of ``selection`` takes (ValueError naming an unknown level)."""
    if selection.level not in SELECTION_LEVELS:
        raise ValueError(f"level: unknown {selection.level!r}; choose from {', '.join(SELECTION_LEVELS)}")
    if selection.level == "objects":
        return list(dict.fromkeys(selection.sop_uids))
    column = {"series": "series_uid", "study": "study_uid", "patient": "patient_id"}[selection.level]
    rows = conn.execute(f"SELECT DISTINCT sop_uid FROM instances WHERE {column}=? ORDER BY sop_uid", (selection.uid,))
    return [r[0] for r in rows]


def selection_preview(conn: sqlite3.Connection, selection: Selection) -> SelectionPreview | None:
    """Whose, what and how much a send of ``selection`` is; None when nothing of it is stored (any more)."""
    members = members_by_sop(conn, selection_sops(conn, selection))
    if not members:
        return None
    ids = [m.id for m in members]
    rows: list[sqlite3.Row] = []
    for i in range(0, len(ids), MAX_SQL_PARAMS):
        chunk = ids[i:i + MAX_SQL_PARAMS]
        rows += conn.execute(f"SELECT i.patient_id, p.patient_name, i.study_uid, i.series_uid, s.description, "
                             f"i.sop_uid IN (SELECT sop_uid FROM plans) FROM instances i LEFT JOIN patients p "
                             f"ON p.patient_id=i.patient_id LEFT JOIN series s ON s.series_uid=i.series_uid "
                             f"WHERE i.id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    patients = dict(sorted((r[0] or "", r[1] or "") for r in rows))
    counts: dict[str, int] = {}
    for m in members:
        counts[m.modality or "?"] = counts.get(m.modality or "?", 0) + 1
    return SelectionPreview(selection, ", ".join(patients), ", ".join(filter(None, patients.values())),
                            _description(selection, rows), tuple(counts.items()), len(members),
                            sum(m.size for m in members), sum(1 for r in rows if r[5]))


def _description(selection: Selection, rows: list[sqlite3.Row]) -> str:
    """'2 studies, 3 series' for a patient; the series' descriptions for a series; '2 series: A, B' otherwise."""
    studies, series = {r[2] for r in rows}, {r[3] for r in rows}
    descriptions = sorted({r[4] for r in rows if r[4]})
    spread = f"{len(studies)} stud{'ies' if len(studies) != 1 else 'y'}, {len(series)} series"
    named = ", ".join(descriptions[:3]) + (f" (+{len(descriptions) - 3})" if len(descriptions) > 3 else "")
    if selection.level == "patient":
        return spread
    if selection.level == "series":
        return named
    return f"{len(series)} series" + (f": {named}" if named else "")  # a study, or objects picked in the tree
