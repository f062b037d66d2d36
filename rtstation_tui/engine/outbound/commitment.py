"""Storage Commitment (push model) as the delivery proof: after a node with ``commitment = true`` acknowledged
every C-STORE of a job, it is asked (N-ACTION) to commit each instance sent; its N-EVENT-REPORT, on a new
association to our listener as Orthanc sends it, or on the same one, settles the request.

Why persisted: the report may come minutes later, after a restart. The Transaction UID and the instances asked
about are written before the N-ACTION goes out; a report for a known transaction is accepted whenever it comes,
and a request without one by its deadline (``commitment_timeout_s``) is marked ``commit timed out``. States:
``waiting`` → ``committed`` | ``commit failed: N instances (reasons)`` | ``commit timed out`` |
``request failed: …`` (the node refused or could not be asked). The job itself stays ``done``: its instances were
stored; the commitment says whether the node vouches for keeping them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from pynetdicom import build_context, evt

from ..config.model import Config
from ..config.nodes import NodeConfig
from ..transforms.base import TransformError
from ..transforms.registry import build_chain
from .queue import ItemRow, JobQueue, JobRow
from .scu import AssociationFailed, associate

log = logging.getLogger("rtstation.commitment")
PUSH_MODEL = "1.2.840.10008.1.20.1"
PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"
# PS3.4 Table J.3.3-2 Failure Reason
FAILURE_REASONS = {0x0110: "processing failure", 0x0112: "no such object instance",
                   0x0213: "resource limitation", 0x0122: "referenced SOP class not supported",
                   0x0119: "class / instance conflict", 0x0131: "duplicate transaction UID"}


@dataclass(frozen=True)
class CommitmentRow:
    transaction_uid: str
    job_id: int
    node: str
    state: str
    instances: int
    failed: int
    detail: str

    def describe(self) -> str:
        return self.state + (f": {self.detail}" if self.detail and self.state != "committed" else "")


def _rows(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[CommitmentRow]:
    q = ("SELECT transaction_uid, job_id, node, state, instances, failed, detail FROM commitments " + where)
    return [CommitmentRow(*r) for r in conn.execute(q, args)]


def of_job(queue: JobQueue, job_id: int) -> CommitmentRow | None:
    rows = _rows(queue.conn, "WHERE job_id=? ORDER BY requested DESC LIMIT 1", (job_id,))
    return rows[0] if rows else None


def state_of(queue: JobQueue, job_id: int | None) -> str:
    """For listings: '' (not asked), waiting, committed, commit failed: N instances (reasons), ..."""
    row = of_job(queue, job_id) if job_id is not None else None
    return row.describe() if row else ""


def request(queue: JobQueue, node: NodeConfig, station_ae: str, job_id: int, items: Sequence[ItemRow],
            ssl_context: Any = None, fast_paths: bool = True) -> CommitmentRow:
    """Record the request, then ask the node; returns what the request did: ``waiting`` when the node took it,
    ``request failed`` when not. Not re-read afterwards: a node may report before this returns (Orthanc
    does, on a new association to a running station), and the report is a later answer, not this one."""
    uid = generate_uid()
    now = time.time()
    with queue.transaction() as conn:
        conn.execute("INSERT INTO commitments VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (uid, job_id, node.name, "waiting", now, now, now + node.commitment_timeout_s, len(items), 0, ""))
        conn.executemany("INSERT OR IGNORE INTO commitment_items VALUES (?,?,?,?,?)",
                         [(uid, *i.sent_uids, "waiting", "") for i in items])
    ds = Dataset()
    ds.TransactionUID = uid
    refs = []
    for i in items:  # the UIDs the node holds: a transformed copy's, not the stored original's
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = i.sent_uids
        refs.append(ref)
    ds.ReferencedSOPSequence = DicomSequence(refs)
    problem = _send_action(node, station_ae, ds, ssl_context, fast_paths)
    if problem:
        _settle(queue, uid, "request failed", problem)
        log.warning("job %d: storage commitment request to %s failed: %s", job_id, node.name, problem)
    else:
        log.info("job %d: storage commitment of %d instances requested from %s (transaction %s)", job_id,
                 len(items), node.name, uid)
    return CommitmentRow(uid, job_id, node.name, "request failed" if problem else "waiting", len(items), 0, problem)


def _send_action(node: NodeConfig, station_ae: str, ds: Dataset, ssl_context: Any, fast_paths: bool) -> str:
    """'' when the node accepted the request; else why not."""
    try:
        assoc = associate(node, station_ae, [build_context(PUSH_MODEL)], ssl_context, fast_paths)
    except AssociationFailed as exc:
        return str(exc)
    try:
        status, _ = assoc.send_n_action(ds, 1, PUSH_MODEL, PUSH_MODEL_INSTANCE)
        code = getattr(status, "Status", None)
        if code is None:
            return "no N-ACTION response (timeout or abort)"
        if code != 0x0000:
            return f"N-ACTION refused with status 0x{code:04X}"
        return ""
    finally:
        if assoc.is_established:
            assoc.release()


def _settle(queue: JobQueue, uid: str, state: str, detail: str, failed: int = 0) -> None:
    with queue.transaction() as conn:
        conn.execute("UPDATE commitments SET state=?, detail=?, failed=?, updated=? WHERE transaction_uid=?",
                     (state, detail, failed, time.time(), uid))


def report(queue: JobQueue, ds: Dataset) -> bool:
    """An N-EVENT-REPORT's dataset (event type 1 or 2); False when the transaction is not ours."""
    uid = str(ds.get("TransactionUID", "") or "")
    if not _rows(queue.conn, "WHERE transaction_uid=?", (uid,)):
        return False
    ok = [str(r.ReferencedSOPInstanceUID) for r in ds.get("ReferencedSOPSequence") or []]
    failed = [(str(r.ReferencedSOPInstanceUID), int(r.get("FailureReason", 0x0110)))
              for r in ds.get("FailedSOPSequence") or []]
    with queue.transaction() as conn:
        conn.executemany("UPDATE commitment_items SET state='committed' WHERE transaction_uid=? AND sop_uid=?",
                         [(uid, s) for s in ok])
        conn.executemany("UPDATE commitment_items SET state='failed', reason=? WHERE transaction_uid=? AND sop_uid=?",
                         [(_reason(code), uid, s) for s, code in failed])
    if failed:
        reasons = sorted({_reason(code) for _, code in failed})
        _settle(queue, uid, "commit failed", f"{len(failed)} instances ({', '.join(reasons)})", len(failed))
    else:
        _settle(queue, uid, "committed", "")
    log.info("storage commitment %s: %d committed, %d failed", uid, len(ok), len(failed))
    return True


def _reason(code: int) -> str:
    return f"0x{code:04X} {FAILURE_REASONS.get(code, 'failure')}"


def expire(queue: JobQueue, now: float | None = None, announce: Callable[[int], None] | None = None) -> int:
    """Requests still waiting past their deadline become ``commit timed out``; how many. ``announce`` hears of
    each job whose state so changed (the console's tree stops saying ``sent``)."""
    now = time.time() if now is None else now
    with queue.transaction() as conn:
        jobs = [r[0] for r in conn.execute("SELECT job_id FROM commitments WHERE state='waiting' AND deadline < ?",
                                           (now,))]
        cur = conn.execute("UPDATE commitments SET state='commit timed out', detail='no N-EVENT-REPORT by the "
                           "deadline (commitment_timeout_s)', updated=? WHERE state='waiting' AND deadline < ?",
                           (now, now))
        count = cur.rowcount
    for job_id in jobs if announce is not None else ():
        announce(job_id)
    return count


class CommitmentReports:
    """The receiver's extra service: accepts Storage Commitment N-EVENT-REPORTs on our listener."""

    def __init__(self, queue: Callable[[], JobQueue], settled: Callable[[int], None] | None = None) -> None:
        self.queue = queue
        self.settled = settled  # job id → the station announces the job's new commitment state

    def abstract_syntaxes(self) -> list[str]:
        return [PUSH_MODEL]

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [(evt.EVT_N_EVENT_REPORT, self.on_report)]

    def on_report(self, event: Any) -> tuple[int, Dataset | None]:
        try:
            known = report(self.queue(), event.event_information)
        except Exception:
            log.exception("storage commitment report from %s could not be recorded", event.assoc.requestor.ae_title)
            return 0x0110, None
        if not known:
            log.warning("storage commitment report for an unknown transaction from %s",
                        event.assoc.requestor.ae_title)
        elif self.settled is not None:
            uid = str(event.event_information.get("TransactionUID", "") or "")
            for row in _rows(self.queue().conn, "WHERE transaction_uid=?", (uid,)):
                try:
                    self.settled(row.job_id)
                except Exception:  # the report is recorded; a console that hears of it later reads the queue
                    log.exception("job %d: the commitment's new state could not be announced", row.job_id)
        return 0x0000, None


def after_delivery(queue: JobQueue, node: NodeConfig, config: Config, job: JobRow, ssl_context: Any = None) -> None:
    """The sender's call once a job is done: ask a ``commitment = true`` node about every instance sent.
    Never raises: the job was delivered; a commitment problem is the commitment's state, logged."""
    if not node.commitment:
        return
    items = queue.items(job.id, ["done"])
    if unknown := unasked(job.transform, config, items):
        log.warning("job %d: no storage commitment asked of %s: %s", job.id, node.name, unknown)
        return
    try:
        request(queue, node, config.station.ae_title, job.id, items, ssl_context, config.network.fast_paths)
    except Exception:
        log.exception("job %d: storage commitment request to %s failed", job.id, node.name)


def unasked(chain: str, config: Config, items: Sequence[ItemRow]) -> str:
    """'' when the UIDs the node holds are known for every item; else why not: a job whose chain changes
    identity, delivered before the queue remembered the UIDs it sent (asking about the stored ones would be wrong)."""
    try:
        changes = any(t.changes_identity for t in build_chain(chain, config))
    except TransformError:  # a chain the configuration no longer builds: only recorded UIDs are trusted
        changes = True
    missing = [i for i in items if changes and not i.sent_sop_uid and not i.derived]  # a derived row: its own UID
    return (f"{len(missing)} of its copies were sent with new UIDs the queue did not record (delivered by an older "
            "release)") if missing else ""
