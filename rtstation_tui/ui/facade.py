"""The one door between the console and the engine.

Why: widgets must never know SQL, pynetdicom or the sender's internals, and every call here may block (SQLite,
network, disk), so the UI calls these methods only from thread workers (``asyncio.to_thread``). Everything returned
is plain frozen data, safe to hand to the event loop.

The tree reads the ``bundles`` summary table (what the readiness tracker last announced) plus the small ``plans``
table, never the instances: with 100,000 instances the tree opens as fast as with ten. Full reference chains
(``bundle_for``) are computed only for the one plan whose details are shown.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from ..engine.plans.bundle import Bundle, Member, bundle_for, patient_view
from ..engine.outbound.rules import held_plans
from ..engine.station import Station


MAX_SQL_PARAMS = 900  # below SQLite's historic limit of 999 host parameters per statement


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (IDs such as ``AB_12`` or ``50%`` are common)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class PatientRow:
    patient_id: str
    patient_name: str
    plans: int = 0
    waiting: int = 0
    incomplete: int = 0


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


@dataclass(frozen=True)
class PlanDetails:
    bundle: Bundle
    state: str
    history: tuple[Any, ...] = ()
    held_by: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class EchoOutcome:
    node: str
    ok: bool
    rtt_ms: float | None
    message: str


@dataclass
class Facade:
    station: Station

    # -- sender (another module lands it on Station as ``station.sender``) -------------------------------------
    @property
    def sender(self) -> Any:
        return getattr(self.station, "sender", None)

    @property
    def can_send(self) -> bool:
        return self.sender is not None

    # -- tree ---------------------------------------------------------------------------------------------------
    def patients(self, only: Iterable[str] | None = None) -> list[PatientRow]:
        """Patients with their plan counts, from the patients/plans/bundles tables only (no instance scan)."""
        conn = self.station.index.conn
        ids = list(only) if only is not None else None
        where, args = "", ()  # type: tuple[str, tuple[str, ...]]
        if ids is not None and len(ids) > MAX_SQL_PARAMS:  # a broad filter: read all, keep the matches
            wanted = set(ids)
            return [p for p in self.patients(None) if p.patient_id in wanted]
        if ids is not None:
            if not ids:
                return []
            where, args = f" WHERE patient_id IN ({','.join('?' * len(ids))})", tuple(ids)
        plans = Counter({r[0]: r[1] for r in conn.execute(
            f"SELECT patient_id, count(DISTINCT sop_uid) FROM plans{where} GROUP BY patient_id", args)})
        states: dict[str, Counter[str]] = defaultdict(Counter)
        for r in conn.execute(f"SELECT patient_id, state FROM bundles{where}", args):
            states[r[0]][r[1]] += 1
        rows = conn.execute(f"SELECT patient_id, patient_name FROM patients{where} ORDER BY patient_id", args)
        return [PatientRow(r[0], r[1] or "", plans[r[0]], states[r[0]]["waiting"],
                           states[r[0]]["ready-incomplete"]) for r in rows]

    def plans(self, patient_id: str) -> list[PlanRow]:
        conn = self.station.index.conn
        facts: dict[str, Any] = {}
        for r in conn.execute("SELECT sop_uid, label, name, approval, machines FROM plans WHERE patient_id=?"
                              " ORDER BY instance_id", (patient_id,)):
            facts[r[0]] = r  # later versions (conflicts) overwrite, as bundle.py does
        states = self.station.index.bundle_states(patient_id)
        held = held_plans(self.station.index.conn)
        out = []
        for uid, r in facts.items():
            b = states.get(uid)
            summary = json.loads(b["summary"] or "{}") if b is not None else {}
            machines = tuple(filter(None, (r["machines"] or "").split("\\")))
            out.append(PlanRow(uid, patient_id, r["label"] or "", r["name"] or "", machines, r["approval"] or "",
                               b["state"] if b is not None else "receiving",
                               bool(b["complete"]) if b is not None else False,
                               summary.get("missing", ""), int(summary.get("conflicts", 0) or 0),
                               self.latest_sends(uid), held.get(uid, ())))
        return sorted(out, key=lambda p: (p.label, p.plan_uid))

    def latest_sends(self, plan_uid: str) -> tuple[tuple[str, str, int, int], ...]:
        """The newest job per node for one plan (the tree shows it after a restart, before any event)."""
        latest: dict[str, Any] = {}
        for row in sorted(self.history(plan_uid), key=lambda r: r.id):
            latest[row.node] = row
        return tuple((r.node, r.state, r.done, r.total) for r in latest.values())

    def unconnected(self, patient_id: str) -> list[Member]:
        """What joins no plan: needs the patient's whole chain, so only on demand."""
        return patient_view(self.station.index.conn, patient_id).unconnected

    def search(self, text: str) -> list[str]:
        """Patient IDs whose ID, name or one of whose plan labels contains ``text`` (case-insensitive)."""
        like = _like(text)
        conn = self.station.index.conn
        rows = conn.execute("SELECT patient_id FROM patients WHERE patient_id LIKE ?1 ESCAPE '\\' OR patient_name"
                            " LIKE ?1 ESCAPE '\\' UNION SELECT patient_id FROM plans WHERE label LIKE ?1 ESCAPE '\\'"
                            " ORDER BY 1", (like,))
        return [r[0] for r in rows]

    def label_matches(self, text: str, limit: int = 20) -> list[str]:
        """Patients with a plan label containing ``text``: the filter opens them to show the plan."""
        rows = self.station.index.conn.execute("SELECT DISTINCT patient_id FROM plans WHERE label LIKE ? ESCAPE '\\'"
                                               " ORDER BY 1 LIMIT ?", (_like(text), limit))
        return [r[0] for r in rows]

    def details(self, plan_uid: str) -> PlanDetails | None:
        bundle = bundle_for(self.station.index.conn, plan_uid)
        if bundle is None:
            return None
        row = self.station.index.bundle_states(bundle.patient_id).get(plan_uid)
        state = row["state"] if row is not None else "receiving"
        held = held_plans(self.station.index.conn).get(plan_uid, ())
        return PlanDetails(bundle, state, tuple(self.history(plan_uid)), held)

    # -- status line ----------------------------------------------------------------------------------------
    def received_since(self, since: float) -> int:
        row = self.station.index.conn.execute("SELECT count(*) FROM instances WHERE received_at >= ?", (since,))
        return int(row.fetchone()[0])

    def free_disk_mb(self) -> float:
        return shutil.disk_usage(self.station.config.data_dir).free / 1e6

    # -- sending ------------------------------------------------------------------------------------------------
    def send_preview(self, plan_uids: Iterable[str]) -> list[SendPreview]:
        out = []
        for uid in plan_uids:
            b = bundle_for(self.station.index.conn, uid)
            if b is None:
                continue
            counts: dict[str, int] = {}
            ordered = b.ordered()
            for m in ordered:
                counts[m.modality or "?"] = counts.get(m.modality or "?", 0) + 1
            out.append(SendPreview(uid, b.patient_id, b.label, tuple(counts.items()), len(ordered),
                                   sum(m.size for m in ordered), b.missing_summary()))
        return out

    def send(self, plan_uids: Iterable[str], nodes: list[str], transforms: dict[str, str] | None = None) -> list[int]:
        """``transforms``: node → e.g. ``anonymize:rt-research`` for the nodes that get transformed copies."""
        sender = self._need_sender()
        transforms = transforms or {}
        plain = [n for n in nodes if n not in transforms]
        jobs: list[int] = []
        for uid in plan_uids:
            if plain:
                jobs += sender.send_plan(uid, plain, origin="manual")
            for node in (n for n in nodes if n in transforms):
                jobs += sender.send_plan(uid, [node], origin="manual", transform=transforms[node])
        return jobs

    def echo(self, node: str) -> EchoOutcome:
        started = time.monotonic()
        try:
            r = self._need_sender().echo(node)
        except Exception as exc:  # a node that cannot be reached must not kill the worker
            return EchoOutcome(node, False, (time.monotonic() - started) * 1000, str(exc))
        return EchoOutcome(r.node, bool(r.ok), r.rtt_ms, r.message)

    def jobs(self, active_only: bool = True) -> list[Any]:
        sender = self.sender
        return list(sender.queue.jobs(active_only=active_only)) if sender is not None else []

    def retry_failed(self, plan_uids: Iterable[str]) -> list[int]:
        """Queue the failed jobs of these plans again (their acknowledged instances are not resent)."""
        sender = self._need_sender()
        return [j.id for uid in plan_uids for j in sender.queue.history(uid)
                if j.state == "failed" and sender.retry(j.id)]

    def cancel_active(self, plan_uids: Iterable[str]) -> list[int]:
        sender = self._need_sender()
        return [j.id for uid in plan_uids for j in sender.queue.history(uid)
                if j.state in ("queued", "sending", "waiting-retry") and sender.cancel(j.id)]

    def job_counts(self) -> tuple[int, int] | None:
        """(jobs waiting or running, jobs failed) in the persistent queue; None without a sender."""
        sender = self.sender
        if sender is None:
            return None
        counts = sender.queue.counts()
        return sum(counts.get(s, 0) for s in ("queued", "sending", "waiting-retry")), counts.get("failed", 0)

    def history(self, plan_uid: str) -> list[Any]:
        sender = self.sender
        return list(sender.queue.history(plan_uid)) if sender is not None else []

    def _need_sender(self) -> Any:
        if self.sender is None:
            raise RuntimeError("the sender is not available in this build")
        return self.sender
