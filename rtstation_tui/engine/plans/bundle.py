"""Plan bundles by reference chain, computed from the index.

RTPLAN → RTSTRUCT (ReferencedStructureSetSequence) → images (ContourImageSequence, referenced series);
RTDOSE → RTPLAN (ReferencedRTPlanSequence); RTIMAGE / records → RTPLAN; registrations → the images or series they
reference. Whatever joins no plan sits in the patient's *unconnected* bin. Never grouped by FrameOfReferenceUID:
two plans on one CT share the CT, a dose for an unknown plan stays unconnected, and that is the truth to show.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..dicom.sopclass import modality_for_sop_class, send_rank

PARTS = ("image", "structure", "plan", "dose", "other")  # send order
INCLUDE_TO_PART = {"images": "image", "structures": "structure", "plan": "plan", "doses": "dose",
                   "registrations": "other"}


@dataclass(frozen=True)
class Member:
    id: int
    sop_uid: str
    version: int
    modality: str
    sop_class: str
    series_uid: str
    transfer_syntax: str
    path: str
    size: int
    conflict: bool
    source: str
    calling_ae: str
    received_at: float
    instance_number: int | None
    part: str = ""


@dataclass(frozen=True)
class Missing:
    uid: str
    kind: str  # "structure set", "image" or "series"
    modality: str  # what the reference says it is (CT, MR, RTSTRUCT, ...) when known

    def as_json(self) -> dict[str, str]:
        return {"uid": self.uid, "kind": self.kind, "modality": self.modality}


@dataclass
class Bundle:
    plan_uid: str
    patient_id: str
    patient_name: str
    label: str = ""
    name: str = ""
    approval: str = ""
    machines: tuple[str, ...] = ()
    beams: list[dict[str, Any]] = field(default_factory=list)
    fractions: int | None = None
    ion: bool = False
    intent: str = ""
    members: list[Member] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def plan_members(self) -> list[Member]:
        return [m for m in self.members if m.part == "plan"]

    @property
    def conflicts(self) -> list[str]:
        return sorted({m.sop_uid for m in self.members if m.conflict})

    @property
    def sources(self) -> list[str]:
        """Calling AE titles (or the import source) the plan itself came from, newest first."""
        plans = sorted(self.plan_members, key=lambda m: -m.received_at)
        return list(dict.fromkeys(m.calling_ae or m.source for m in plans))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for m in self.members:
            out[m.modality] += 1
        return dict(sorted(out.items()))

    def missing_summary(self) -> str:
        """'3 CT missing', for one-line displays."""
        by: dict[str, int] = defaultdict(int)
        for m in self.missing:
            by[m.modality or m.kind] += 1
        return ", ".join(f"{n} {what} missing" for what, n in sorted(by.items()))

    def signature(self) -> str:
        text = json.dumps([sorted(m.id for m in self.members), sorted(x.uid for x in self.missing)])
        return hashlib.sha1(text.encode()).hexdigest()

    def ordered(self, parts: tuple[str, ...] = PARTS) -> list[Member]:
        """Members in send order: images → RTSTRUCT → plan → doses → the rest; images by series and number."""
        chosen = [m for m in self.members if m.part in parts]
        return sorted(chosen, key=lambda m: (PARTS.index(m.part), send_rank(m.modality), m.series_uid,
                                             m.instance_number if m.instance_number is not None else 0,
                                             m.sop_uid, m.version))


@dataclass
class PatientView:
    patient_id: str
    patient_name: str
    bundles: list[Bundle]
    unconnected: list[Member]


_MEMBER_SQL = ("SELECT id, sop_uid, version, modality, sop_class, series_uid, transfer_syntax, path, size,"
               " conflict, source, calling_ae, received_at, instance_number FROM instances WHERE patient_id=?")


def _member(row: sqlite3.Row, part: str = "") -> Member:
    return Member(row["id"], row["sop_uid"], row["version"], row["modality"] or "", row["sop_class"] or "",
                  row["series_uid"] or "", row["transfer_syntax"] or "", row["path"], row["size"] or 0,
                  bool(row["conflict"]), row["source"] or "", row["calling_ae"] or "", row["received_at"] or 0.0,
                  row["instance_number"], part)


def patient_view(conn: sqlite3.Connection, patient_id: str) -> PatientView:
    rows = conn.execute(_MEMBER_SQL, (patient_id,)).fetchall()
    name_row = conn.execute("SELECT patient_name FROM patients WHERE patient_id=?", (patient_id,)).fetchone()
    refs: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for r in conn.execute("SELECT r.instance_id, r.kind, r.uid, r.sop_class FROM refs r JOIN instances i"
                          " ON i.id = r.instance_id WHERE i.patient_id=?", (patient_id,)):
        refs[r[0]].append((r[1], r[2], r[3] or ""))
    plans = conn.execute("SELECT * FROM plans WHERE patient_id=? ORDER BY instance_id", (patient_id,)).fetchall()
    chain = _Chain(rows, refs)
    bundles: dict[str, Bundle] = {}
    for plan in plans:  # later versions of a plan (conflicts) overwrite the facts, members accumulate
        b = bundles.get(plan["sop_uid"])
        if b is None:
            b = bundles[plan["sop_uid"]] = Bundle(plan["sop_uid"], patient_id, name_row[0] if name_row else "")
        b.label, b.name, b.approval = plan["label"] or "", plan["name"] or "", plan["approval"] or ""
        b.machines = tuple(filter(None, (plan["machines"] or "").split("\\")))
        b.beams, b.fractions, b.ion, b.intent = json.loads(plan["beams"] or "[]"), plan["fractions"], bool(plan["ion"]), plan["intent"] or ""
    used: set[int] = set()
    for b in bundles.values():
        chain.fill(b)
        used.update(m.id for m in b.members)
    unconnected = [_member(r) for r in rows if r["id"] not in used]
    ordered = sorted(bundles.values(), key=lambda b: (b.label, b.plan_uid))
    return PatientView(patient_id, name_row[0] if name_row else "", ordered, unconnected)


class _Chain:
    """Lookups over one patient's instances and references."""

    def __init__(self, rows: list[sqlite3.Row], refs: dict[int, list[tuple[str, str, str]]]) -> None:
        self.rows = rows
        self.refs = refs
        self.by_sop: dict[str, list[sqlite3.Row]] = defaultdict(list)
        self.by_series: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for r in rows:
            self.by_sop[r["sop_uid"]].append(r)
            self.by_series[r["series_uid"] or ""].append(r)
        self.pointing: dict[str, list[sqlite3.Row]] = defaultdict(list)  # referenced uid -> rows referencing it
        for r in rows:
            for kind, uid, _ in refs.get(r["id"], ()):
                self.pointing[uid].append(r)

    def fill(self, b: Bundle) -> None:
        members: dict[int, Member] = {}
        missing: dict[tuple[str, str], Missing] = {}

        def add(row: sqlite3.Row, part: str) -> None:
            members.setdefault(row["id"], _member(row, part))

        plan_rows = self.by_sop.get(b.plan_uid, [])
        for r in plan_rows:
            add(r, "plan")
        struct_uids = {uid for r in plan_rows for kind, uid, _ in self.refs.get(r["id"], ()) if kind == "struct"}
        for s_uid in sorted(struct_uids):
            s_rows = self.by_sop.get(s_uid)
            if not s_rows:
                missing[("structure set", s_uid)] = Missing(s_uid, "structure set", "RTSTRUCT")
                continue
            for s in s_rows:
                add(s, "structure")
                self._images(s, add, missing)
        for r in self.pointing.get(b.plan_uid, []):
            if r["id"] in members:
                continue
            if any(k == "plan" and u == b.plan_uid for k, u, _ in self.refs.get(r["id"], ())):
                add(r, "dose" if r["modality"] == "RTDOSE" else "other")
        self._registrations(members, add)
        b.members = list(members.values())
        b.missing = sorted(missing.values(), key=lambda m: (m.kind, m.uid))

    def _images(self, struct: sqlite3.Row, add: Any, missing: dict[tuple[str, str], Missing]) -> None:
        own = self.refs.get(struct["id"], ())
        listed = [(uid, cls) for kind, uid, cls in own if kind == "image"]
        for uid, cls in listed:
            rows = self.by_sop.get(uid)
            if rows:
                for r in rows:
                    add(r, "image")
            else:
                missing[("image", uid)] = Missing(uid, "image", modality_for_sop_class(cls) if cls else "image")
        for kind, uid, _ in own:
            if kind != "series":
                continue
            rows = self.by_series.get(uid, [])
            for r in rows:
                if r["id"] != struct["id"] and r["modality"] not in ("RTSTRUCT", "RTPLAN", "RTDOSE"):
                    add(r, "image")
            if not rows and not listed:
                missing[("series", uid)] = Missing(uid, "series", "series")

    def _registrations(self, members: dict[int, Member], add: Any) -> None:
        """Registrations (and anything else) referencing an image or series of the bundle join it."""
        images = [m for m in members.values() if m.part == "image"]
        targets = {m.sop_uid for m in images} | {m.series_uid for m in images}
        for uid in targets:
            for r in self.pointing.get(uid, []):
                if r["id"] not in members and r["modality"] not in ("RTSTRUCT", "RTPLAN", "RTDOSE"):
                    add(r, "other")


def members_by_sop(conn: sqlite3.Connection, sop_uids: list[str]) -> list[Member]:
    """Stored instances (every version) of these SOP Instance UIDs, in send order; unknown UIDs are left out."""
    rows: list[sqlite3.Row] = []
    for i in range(0, len(sop_uids), 500):
        chunk = sop_uids[i:i + 500]
        sql = _MEMBER_SQL.replace("WHERE patient_id=?", f"WHERE sop_uid IN ({','.join('?' * len(chunk))})")
        rows += conn.execute(sql, chunk).fetchall()
    members = [_member(r, "other") for r in rows]
    return sorted(members, key=lambda m: (send_rank(m.modality), m.series_uid, m.instance_number or 0, m.sop_uid,
                                          m.version))


def all_views(conn: sqlite3.Connection) -> list[PatientView]:
    ids = [r[0] for r in conn.execute("SELECT DISTINCT patient_id FROM instances ORDER BY patient_id")]
    return [patient_view(conn, pid) for pid in ids]


def find_plans(conn: sqlite3.Connection, plan: str, patient_id: str | None = None) -> list[sqlite3.Row]:
    """Plans whose SOP Instance UID or label is ``plan`` (label: case-insensitive), optionally of one patient."""
    sql = ("SELECT DISTINCT sop_uid, patient_id, label FROM plans WHERE (sop_uid=? OR lower(label)=lower(?))"
           + (" AND patient_id=?" if patient_id is not None else "") + " ORDER BY patient_id, label")
    args: tuple[str, ...] = (plan, plan) if patient_id is None else (plan, plan, patient_id)
    return conn.execute(sql, args).fetchall()


class PlanNotFound(ValueError):
    """No plan has this UID or label (the API answers 404; ``rtstation send`` exits 2)."""


def resolve_plan(conn: sqlite3.Connection, plan: str, patient_id: str | None = None) -> str:
    """The one plan UID meant by ``plan`` (a UID or a label); ValueError naming the candidates when ambiguous."""
    rows = find_plans(conn, plan, patient_id)
    uids = sorted({r["sop_uid"] for r in rows})
    if not uids:
        raise PlanNotFound(f"no plan with UID or label {plan!r}" + (f" for patient {patient_id!r}" if patient_id
                                                                     else ""))
    if len(uids) > 1:
        listing = "; ".join(f"{r['label']} of patient {r['patient_id']} ({r['sop_uid']})" for r in rows)
        raise ValueError(f"label {plan!r} is ambiguous, it matches: {listing}. Use the UID or --patient")
    return uids[0]


def bundle_for(conn: sqlite3.Connection, plan_uid: str) -> Bundle | None:
    row = conn.execute("SELECT patient_id FROM plans WHERE sop_uid=? LIMIT 1", (plan_uid,)).fetchone()
    if row is None:
        return None
    view = patient_view(conn, row[0])
    return next((b for b in view.bundles if b.plan_uid == plan_uid), None)
