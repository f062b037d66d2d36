"""What the console (and, later, the service API) reads about patients and plans, as plain frozen data.

Why here and not in the UI: listings are engine knowledge (which table holds what, how a conflict shows, what a
send would carry). Every function takes the index connection and returns frozen dataclasses of strings, numbers
and tuples — JSON-able, so the same answers can cross a socket ([ATTACH]) without live objects (no Bundle, no
sqlite rows). All of them block (SQLite): callers run them in a thread.

The tree reads the ``bundles`` summary table (what the readiness tracker last announced) plus the small ``plans``
table, never the instances: with 100,000 instances the tree opens as fast as with ten. Full reference chains
(``bundle_for``) are computed only for the one plan whose details are shown.

Send jobs live in the queue database (outbound), above this layer: the station fills ``PlanRow.sends`` and
``PlanDetails.history`` with ``JobInfo`` rows; ``latest_sends`` is the one rule for what the tree shows of them.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from ..store.tags import tags_by_plan, tags_of
from .bundle import Bundle, bundle_for, patient_view

MAX_SQL_PARAMS = 900  # below SQLite's historic limit of 999 host parameters per statement
MAX_DRY_RUN_PLANS = 50


@dataclass(frozen=True)
class PatientRow:
    patient_id: str
    patient_name: str
    plans: int = 0
    waiting: int = 0
    incomplete: int = 0
    received: float = 0.0  # the newest object's arrival (epoch seconds): the tree's default order, newest first
    sources: tuple[str, ...] = ()  # AE titles (or import sources) its plans came from, sorted
    modalities: tuple[str, ...] = ()  # of its series, sorted
    failed: int = 0  # plans whose newest send to some node failed (``send_attention``)
    unsent: int = 0  # plans never queued to any node


@dataclass(frozen=True)
class PlanRow:
    plan_uid: str
    patient_id: str
    label: str
    name: str = ""
    machines: tuple[str, ...] = ()
    approval: str = ""
    state: str = "receiving"  # no bundles row yet: the association that brings it has not ended
    complete: bool = False
    missing: str = ""
    conflicts: int = 0
    sends: tuple[tuple[str, str, int, int], ...] = ()  # latest (node, state, done, total) per node
    held_by: tuple[str, ...] = ()  # rules that hold the plan until it is complete
    received: float = 0.0  # when the RTPLAN arrived
    source: str = ""  # the AE title (or import source) it came from
    modalities: tuple[str, ...] = ()  # of its bundle's objects, as the readiness tracker last counted them
    tags: tuple[str, ...] = ()  # ``tag = "…"`` of the rules that matched it ([ACTIONS])
    commitments: tuple[tuple[str, str], ...] = ()  # latest (node, storage commitment state) where one was asked


@dataclass(frozen=True)
class JobInfo:
    """One send job as the console shows it (the queue's row minus the node's stored configuration)."""

    id: int
    node: str
    plan_uid: str
    label: str
    state: str
    done: int
    total: int
    failed: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    error: str = ""
    created: float = 0.0  # when it was queued (epoch seconds)
    origin: str = ""  # who asked: manual (the console's operator), cli, rule:NAME
    derived: int = 0  # of ``total``: objects the job's chain made (a SEG, classic frames)
    commitment: str = ""  # storage commitment: '' (not asked), waiting, committed, commit failed: N instances (…)


@dataclass(frozen=True)
class Beam:
    number: str
    name: str
    radiation: str
    energy: str
    mu: float | None


@dataclass(frozen=True)
class ChainGroup:
    """Objects of one part and series of a plan's reference chain, in send order."""

    part: str
    modality: str
    series_uid: str
    count: int
    sources: tuple[str, ...]  # calling AE titles (or import sources), sorted
    received_at: float  # the newest arrival
    conflict: bool


@dataclass(frozen=True)
class MissingGroup:
    """Referenced objects not received, one row per kind: 97 missing CT slices are one fact, not 97."""

    what: str
    count: int
    example_uid: str


@dataclass(frozen=True)
class PlanDetails:
    plan_uid: str
    patient_id: str
    patient_name: str
    label: str
    name: str
    ion: bool
    machines: tuple[str, ...]
    approval: str
    fractions: int | None
    state: str
    complete: bool
    missing: str  # '3 CT missing', empty when complete
    conflicts: int  # objects received twice with different content
    beams: tuple[Beam, ...] = ()
    chain: tuple[ChainGroup, ...] = ()
    missing_groups: tuple[MissingGroup, ...] = ()
    history: tuple[JobInfo, ...] = ()
    held_by: tuple[str, ...] = ()
    nbytes: int = 0  # the bundle's stored size (objects shared with other plans included)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendPreview:
    """What a send of one plan carries, by modality in send order (images → RTSTRUCT → plan → doses → rest)."""

    plan_uid: str
    patient_id: str
    label: str
    counts: tuple[tuple[str, int], ...]
    instances: int
    nbytes: int
    missing: str = ""
    patient_name: str = ""


@dataclass(frozen=True)
class LooseObject:
    """An object of a patient that no plan references (the tree's *unconnected* bin)."""

    sop_uid: str
    modality: str
    series_uid: str
    source: str


@dataclass(frozen=True)
class Verdict:
    rule: str
    outcome: str  # send, nothing-new (matches; its targets have it all), hold, no-match, disabled, not-evaluated
    reason: str


@dataclass(frozen=True)
class PlanVerdicts:
    """A dry run's answer for one plan: every rule's verdict, in rule order (nothing is sent)."""

    plan_uid: str
    patient_id: str
    label: str
    complete: bool
    verdicts: tuple[Verdict, ...]


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (IDs such as ``AB_12`` or ``50%`` are common)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- the tree ---------------------------------------------------------------------------------------------------
def patients(conn: sqlite3.Connection, only: Iterable[str] | None = None) -> list[PatientRow]:
    """Patients (all, or those in ``only``) with their plan counts, from the patients/plans/bundles tables only."""
    ids = list(only) if only is not None else None
    where, args = "", ()  # type: tuple[str, tuple[str, ...]]
    if ids is not None and len(ids) > MAX_SQL_PARAMS:  # a broad filter: read all, keep the matches
        wanted = set(ids)
        return [p for p in patients(conn, None) if p.patient_id in wanted]
    if ids is not None:
        if not ids:
            return []
        where, args = f" WHERE patient_id IN ({','.join('?' * len(ids))})", tuple(ids)
    plans = Counter({r[0]: r[1] for r in conn.execute(
        f"SELECT patient_id, count(DISTINCT sop_uid) FROM plans{where} GROUP BY patient_id", args)})
    states: dict[str, Counter[str]] = defaultdict(Counter)
    for r in conn.execute(f"SELECT patient_id, state FROM bundles{where}", args):
        states[r[0]][r[1]] += 1
    sources, modalities = _patient_facts(conn, where, args)
    rows = conn.execute(f"SELECT patient_id, patient_name, updated FROM patients{where} ORDER BY patient_id", args)
    return [PatientRow(r[0], r[1] or "", plans[r[0]], states[r[0]]["waiting"], states[r[0]]["ready-incomplete"],
                       r[2] or 0.0, sources.get(r[0], ()), modalities.get(r[0], ())) for r in rows]


def _patient_facts(conn: sqlite3.Connection, where: str, args: tuple[str, ...]
                   ) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Per patient: where its plans came from (one instance row per plan, by primary key) and the modalities of
    its series (one row per series): the sort and filter keys, without reading the instances table."""
    sources: dict[str, set[str]] = defaultdict(set)
    joined = where.replace("patient_id", "p.patient_id")
    for r in conn.execute(f"SELECT p.patient_id, coalesce(nullif(i.calling_ae, ''), i.source) FROM plans p "
                          f"JOIN instances i ON i.id = p.instance_id{joined}", args):
        if r[1]:
            sources[r[0]].add(r[1])
    modalities: dict[str, set[str]] = defaultdict(set)
    for r in conn.execute(f"SELECT DISTINCT patient_id, modality FROM series{where}", args):
        if r[1]:
            modalities[r[0]].add(r[1])
    return ({k: tuple(sorted(v)) for k, v in sources.items()}, {k: tuple(sorted(v)) for k, v in modalities.items()})


def send_attention(conn: sqlite3.Connection, rows: list[PatientRow],
                   latest: dict[str, dict[str, str]]) -> list[PatientRow]:
    """``rows`` with ``failed`` and ``unsent`` counted from ``latest`` (plan UID → node → state of its newest job,
    from the queue the station holds): the tree's "attention first" order."""
    if not rows:
        return rows
    wanted = {r.patient_id for r in rows}
    failed: Counter[str] = Counter()
    unsent: Counter[str] = Counter()
    for uid, pid in conn.execute("SELECT DISTINCT sop_uid, patient_id FROM plans"):
        if pid in wanted:
            states = latest.get(uid, {})
            failed[pid] += "failed" in states.values()
            unsent[pid] += not states
    return [replace(r, failed=failed[r.patient_id], unsent=unsent[r.patient_id]) for r in rows]


def search(conn: sqlite3.Connection, text: str) -> list[str]:
    """Patient IDs whose ID, name or one of whose plan labels contains ``text`` (case-insensitive, literally)."""
    rows = conn.execute("SELECT patient_id FROM patients WHERE patient_id LIKE ?1 ESCAPE '\\' OR patient_name"
                        " LIKE ?1 ESCAPE '\\' UNION SELECT patient_id FROM plans WHERE label LIKE ?1 ESCAPE '\\'"
                        " ORDER BY 1", (_like(text),))
    return [r[0] for r in rows]


def filter_shows(text: str, patient_id: str, patient_name: str, label: str) -> bool:
    """Whether the console's filter ``text`` shows a plan: the patient matches (ID or name: all its plans), or the
    plan's label does (that plan only). Case-insensitive and literal, as ``search``; one rule for every view."""
    needle = text.casefold()
    return not needle or any(needle in v.casefold() for v in (patient_id, patient_name, label))


def label_matches(conn: sqlite3.Connection, text: str, limit: int = 20) -> list[str]:
    """Patients with a plan label containing ``text``: the filter opens them to show the plan."""
    rows = conn.execute("SELECT DISTINCT patient_id FROM plans WHERE label LIKE ? ESCAPE '\\' ORDER BY 1 LIMIT ?",
                        (_like(text), limit))
    return [r[0] for r in rows]


def held_plans(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Plans some rule holds until they are complete (plan UID → rule names), as of their last evaluation.

    For the console after a restart; live changes come as ``RulesEvaluated`` events."""
    rows = conn.execute("SELECT plan_uid, held FROM rule_marks WHERE held != ''").fetchall()
    return {r[0]: tuple(r[1].split("\n")) for r in rows}


def _bundle_states(conn: sqlite3.Connection, patient_id: str) -> dict[str, sqlite3.Row]:
    """The readiness tracker's last word per plan (the index opens its connection with ``sqlite3.Row``)."""
    return {r["plan_uid"]: r for r in conn.execute("SELECT * FROM bundles WHERE patient_id=?", (patient_id,))}


def plans_of(conn: sqlite3.Connection, patient_id: str) -> list[PlanRow]:
    """One patient's plans for the tree (``sends`` left empty: the caller knows the send queue)."""
    facts: dict[str, Any] = {}
    for r in conn.execute("SELECT p.sop_uid, p.label, p.name, p.approval, p.machines, i.received_at, "
                          "coalesce(nullif(i.calling_ae, ''), i.source) AS came_from FROM plans p "
                          "JOIN instances i ON i.id = p.instance_id WHERE p.patient_id=? ORDER BY p.instance_id",
                          (patient_id,)):
        facts[r[0]] = r  # later versions (conflicts) overwrite, as bundle.py does
    states = _bundle_states(conn, patient_id)
    held = held_plans(conn)
    tags = tags_by_plan(conn, list(facts))
    out = []
    for uid, r in facts.items():
        b = states.get(uid)
        summary = json.loads(b["summary"] or "{}") if b is not None else {}
        machines = tuple(filter(None, (r["machines"] or "").split("\\")))
        out.append(PlanRow(uid, patient_id, r["label"] or "", r["name"] or "", machines, r["approval"] or "",
                           b["state"] if b is not None else "receiving",
                           bool(b["complete"]) if b is not None else False,
                           summary.get("missing", ""), int(summary.get("conflicts", 0) or 0),
                           (), held.get(uid, ()), r["received_at"] or 0.0, r["came_from"] or "",
                           tuple(sorted({*summary.get("counts", {}), "RTPLAN"})),
                           tuple(tags.get(uid, ()))))
    return sorted(out, key=lambda p: (p.label, p.plan_uid))


def latest_sends(jobs: Iterable[JobInfo]) -> tuple[tuple[str, str, int, int], ...]:
    """The newest job per node of one plan (the tree shows it after a restart, before any event)."""
    latest: dict[str, JobInfo] = {}
    for job in sorted(jobs, key=lambda j: j.id):
        latest[job.node] = job
    return tuple((j.node, j.state, j.done, j.total) for j in latest.values())


def latest_commitments(jobs: Iterable[JobInfo]) -> tuple[tuple[str, str], ...]:
    """The storage commitment state of the newest job per node, where that job asked for one."""
    latest: dict[str, JobInfo] = {}
    for job in sorted(jobs, key=lambda j: j.id):
        latest[job.node] = job
    return tuple((j.node, j.commitment) for j in latest.values() if j.commitment)


def unconnected(conn: sqlite3.Connection, patient_id: str) -> list[LooseObject]:
    """What joins no plan: needs the patient's whole chain, so only on demand."""
    return [LooseObject(m.sop_uid, m.modality, m.series_uid, m.calling_ae or m.source)
            for m in patient_view(conn, patient_id).unconnected]


# -- one plan ---------------------------------------------------------------------------------------------------
def _beams(b: Bundle) -> tuple[Beam, ...]:
    out = []
    for beam in b.beams:
        mu = beam.get("mu")
        out.append(Beam(str(beam.get("number") or ""), beam.get("name") or "", beam.get("radiation") or "",
                        str(beam.get("energy") or ""), float(mu) if isinstance(mu, (int, float)) else None))
    return tuple(out)


def _chain(b: Bundle) -> tuple[ChainGroup, ...]:
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for m in b.ordered():
        groups[(m.part, m.modality, m.series_uid)].append(m)
    return tuple(ChainGroup(part, modality, series, len(ms), tuple(sorted({m.calling_ae or m.source for m in ms})),
                            max(m.received_at for m in ms), any(m.conflict for m in ms))
                 for (part, modality, series), ms in groups.items())


def _missing(b: Bundle) -> tuple[MissingGroup, ...]:
    by: dict[str, list[str]] = defaultdict(list)
    for miss in b.missing:
        by[miss.modality or miss.kind].append(miss.uid)
    return tuple(MissingGroup(what, len(uids), uids[0]) for what, uids in by.items())


def plan_details(conn: sqlite3.Connection, plan_uid: str) -> PlanDetails | None:
    """Facts, beams, the reference chain and what is missing (``history`` left empty: the caller adds jobs)."""
    b = bundle_for(conn, plan_uid)
    if b is None:
        return None
    row = _bundle_states(conn, b.patient_id).get(plan_uid)
    return PlanDetails(b.plan_uid, b.patient_id, b.patient_name, b.label, b.name, b.ion, tuple(b.machines),
                       b.approval, b.fractions, row["state"] if row is not None else "receiving", b.complete,
                       b.missing_summary(), len(b.conflicts), _beams(b), _chain(b), _missing(b), (),
                       held_plans(conn).get(plan_uid, ()), sum({m.path: m.size for m in b.members}.values()),
                       tuple(tags_of(conn, plan_uid)))


def send_preview(conn: sqlite3.Connection, plan_uids: Sequence[str]) -> list[SendPreview]:
    out = []
    for uid in plan_uids:
        b = bundle_for(conn, uid)
        if b is None:
            continue
        counts: dict[str, int] = {}
        ordered = b.ordered()
        for m in ordered:
            counts[m.modality or "?"] = counts.get(m.modality or "?", 0) + 1
        out.append(SendPreview(uid, b.patient_id, b.label, tuple(counts.items()), len(ordered),
                               sum(m.size for m in ordered), b.missing_summary(), b.patient_name))
    return out


# -- status and dry run -----------------------------------------------------------------------------------------
def received_since(conn: sqlite3.Connection, since: float) -> int:
    return int(conn.execute("SELECT count(*) FROM instances WHERE received_at >= ?", (since,)).fetchone()[0])


def newest_bundles(conn: sqlite3.Connection, limit: int = MAX_DRY_RUN_PLANS) -> list[Bundle]:
    """The newest ``limit`` plans of the index, newest first, with their chains (what a dry run evaluates)."""
    rows = conn.execute("SELECT sop_uid FROM plans GROUP BY sop_uid ORDER BY max(instance_id) DESC LIMIT ?",
                        (limit,)).fetchall()
    return [b for (uid,) in rows if (b := bundle_for(conn, uid)) is not None]


def store_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Patients, plans and instances in the index (the API's status)."""
    sql = {"patients": "SELECT count(*) FROM patients", "plans": "SELECT count(DISTINCT sop_uid) FROM plans",
           "instances": "SELECT count(*) FROM instances"}
    return {name: int(conn.execute(q).fetchone()[0]) for name, q in sql.items()}
