"""Deleting a patient or plan bundles from the store, by hand (console ``D``, ``rtstation delete``, the API) and by
``delete_after_send``.

What goes: a patient delete takes every object of the patient (plans, images, unconnected objects). A plan delete
takes the plan's bundle (plan, doses, structure set, images, registrations) except what another plan of the patient
still references, or what no plan references (a CT shared by two plans stays with the other plan; deleting both
removes it). Refused while an active job (queued, sending, waiting to retry) still has one of those objects to
send, or belongs to one of the plans, naming the jobs: cancel them first or let them finish.

Why here (outbound) and not in the store: whether objects may go depends on the send queue. The removal itself,
crash-safe and journaled, is ``store/removal.py``. Every delete is audited (who, what, every SOP Instance UID).
A job queued in the instant between the check and the removal fails its missing files with their reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Sequence

from ..audit import audit
from ..events import BundleChanged, EventBus, ObjectsDeleted
from ..plans.bundle import patient_view
from ..store.files import Store
from ..store.index import Index
from ..store.removal import remove_objects
from .queue import ACTIVE, JobQueue, JobRow

log = logging.getLogger("rtstation.delete")


class DeleteRefused(RuntimeError):
    """Active jobs still hold objects of what was to be deleted (the API answers 409)."""


class NothingToDelete(LookupError):
    """No such patient, or the plan is not one of the patient's (the API answers 404; the CLI exits 2)."""


@dataclass(frozen=True)
class DeletePreview:
    """What a delete removes (the confirmation names it), or removed (``deleted``)."""

    what: str  # "patient" or "plan"
    patient_id: str
    patient_name: str
    plans: tuple[tuple[str, str], ...]  # (plan UID, label) of the plans that go
    counts: tuple[tuple[str, int], ...]  # modality -> objects that go
    instances: int
    nbytes: int
    kept_shared: int = 0  # objects of these plans kept: another plan of the patient (or none) references them
    blocked_by: tuple[str, ...] = ()  # active jobs holding the objects: "job 12 to PACS (sending)"
    deleted: bool = False
    patient_gone: bool = False  # nothing of the patient is left in the store

    def subject(self) -> str:
        if self.what == "patient":
            return f"patient {self.patient_id}"
        labels = ", ".join(label or uid for uid, label in self.plans)
        return f"plan {labels} of patient {self.patient_id}"

    def describe(self) -> str:
        counts = ", ".join(f"{n} {m}" for m, n in self.counts) or "nothing"
        kept = f"; {self.kept_shared} shared objects stay" if self.kept_shared else ""
        return f"{self.subject()}: {self.instances} objects ({counts}), {human_bytes(self.nbytes)}{kept}"


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class _Going:
    path: str
    sop_uid: str
    modality: str
    size: int


def select(index: Index, queue: JobQueue, store: Store, patient_id: str,
           plan_uids: Sequence[str] = ()) -> tuple[DeletePreview, list[_Going]]:
    """What deleting the patient (no ``plan_uids``) or these plans of it would remove. Changes nothing."""
    view = patient_view(index.conn, patient_id)
    if not view.bundles and not view.unconnected:
        raise NothingToDelete(f"no patient {patient_id!r} in the store")
    wanted = set(plan_uids)
    unknown = wanted - {b.plan_uid for b in view.bundles}
    if unknown:
        raise NothingToDelete(f"patient {patient_id!r} has no plan {', '.join(sorted(unknown))}")
    chosen = [b for b in view.bundles if not wanted or b.plan_uid in wanted]
    members = {m.path: m for b in chosen for m in b.members}
    if wanted:
        keep = {m.path for b in view.bundles if b.plan_uid not in wanted for m in b.members}
        keep |= {m.path for m in view.unconnected}
    else:
        keep = set()
        members.update({m.path: m for m in view.unconnected})
    going = [_Going(p, m.sop_uid, m.modality or "?", m.size) for p, m in sorted(members.items()) if p not in keep]
    if not wanted:  # every file of the patient, whatever the chains make of it (other versions, too)
        seen = {g.path for g in going}
        going += [_Going(r[0], r[1], r[2] or "?", r[3] or 0) for r in index.conn.execute(
            "SELECT path, sop_uid, modality, size FROM instances WHERE patient_id=? ORDER BY path", (patient_id,))
            if r[0] not in seen]
    counts = Counter(g.modality for g in going)
    preview = DeletePreview("plan" if wanted else "patient", patient_id, view.patient_name,
                            tuple((b.plan_uid, b.label) for b in chosen), tuple(sorted(counts.items())),
                            len(going), sum(g.size for g in going), len(members) - len(going),
                            _blockers(queue, store, patient_id, wanted, going))
    return preview, going


def _blockers(queue: JobQueue, store: Store, patient_id: str, plans: set[str], going: list[_Going]) -> tuple[str, ...]:
    jobs: dict[int, JobRow] = {j.id: j for j in queue.active_with(str(store.abspath(g.path)) for g in going)}
    for j in queue.jobs(active_only=True):
        if j.plan_uid in plans or (not plans and j.patient_id == patient_id):
            jobs[j.id] = j
    return tuple(f"job {j.id} to {j.node} ({j.state}, {j.label or j.plan_uid or 'objects'})"
                 for _, j in sorted(jobs.items()) if j.state in ACTIVE)


def delete(index: Index, queue: JobQueue, store: Store, patient_id: str, plan_uids: Sequence[str] = (), *,
           who: str, reason: str = "deleted by hand") -> DeletePreview:
    """Remove what ``select`` names (DeleteRefused while jobs hold it); audited and logged."""
    preview, going = select(index, queue, store, patient_id, plan_uids)
    if preview.blocked_by:
        raise DeleteRefused(f"{preview.subject()} is not deleted: active jobs still send its objects: "
                            f"{'; '.join(preview.blocked_by)}. Cancel them or let them finish first")
    plans = [uid for uid, _ in preview.plans]
    removed = remove_objects(index, store, [g.path for g in going], plans, [patient_id])
    audit("deleted", who=who, what=preview.what, patient_id=patient_id, plans=plans,
          labels=[label for _, label in preview.plans], files=len(going), bytes=preview.nbytes,
          kept_shared=preview.kept_shared, sop_uids=sorted({g.sop_uid for g in going}), reason=reason)
    log.info("deleted %s (%s, by %s)", preview.describe(), reason, who)
    return replace(preview, deleted=True, patient_gone=patient_id in removed.gone_patients)


def announce(bus: EventBus | None, patient_id: str, plans: Sequence[tuple[str, str]], instances: int, nbytes: int,
             patient_gone: bool, who: str) -> None:
    """Tell every view (consoles, attached ones through the stream, the metrics service) what left the store."""
    if bus is None:
        return
    for uid, label in plans:
        bus.post(BundleChanged(uid, patient_id, label, "removed", False, 0))
    bus.post(ObjectsDeleted(patient_id, tuple(uid for uid, _ in plans), instances, nbytes, patient_gone, who))
