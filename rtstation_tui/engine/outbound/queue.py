"""The persistent send queue (``data_dir/queue.sqlite``): one job per (bundle or instance set, node), one row per
instance with its state. Nothing lives only in memory.

Why per-instance rows committed one by one: after a crash the queue resumes where it stopped, and an instance the
peer has acknowledged is never sent again (the commit follows the C-STORE response). Any process may add jobs
(``rtstation send`` from another shell); the serving process claims them atomically, so no job runs twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..store.db import Database
from ..store.schema import QUEUE
from ..config.nodes import NodeConfig
from .priority import for_origin

QUEUED, SENDING, WAITING, DONE, FAILED, CANCELLED = "queued", "sending", "waiting-retry", "done", "failed", "cancelled"
# an item state: a stored instance the job's chain reads but does not send itself (replaced by derived objects, or
# already delivered and read only because the chain needs the whole bundle); not counted in the job's total
INPUT = "input"
ACTIVE = (QUEUED, SENDING, WAITING)


@dataclass(frozen=True)
class JobRow:
    id: int
    node: str
    node_json: str
    plan_uid: str
    patient_id: str
    label: str
    origin: str
    state: str
    attempts: int
    next_try: float
    created: float
    updated: float
    error: str
    total: int
    done: int
    failed: int
    bytes_total: int
    bytes_done: int
    owner_pid: int | None
    transform: str = ""  # e.g. "anonymize:rt-research": the peer gets transformed copies, the store keeps originals
    derived: int = 0  # of ``total``: objects the chain made (a SEG, classic frames), counted once the copies exist
    priority: int = 0  # 1: asked for by hand, 0: a rule's (outbound/priority.py); due jobs run highest first

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def objects(self) -> str:
        """``303 objects + 1 derived``: what goes to the peer, stored instances and objects the chain made."""
        stored = self.total - self.derived
        text = f"{stored} object{'' if stored == 1 else 's'}"
        if not self.derived:
            return text
        return f"{text} + {self.derived} derived" if stored else f"{self.derived} derived"

    def node_config(self) -> NodeConfig:
        return NodeConfig(**json.loads(self.node_json))

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("node_json")
        if self.derived:  # "303 objects + 1 derived" for listings (a job without derived objects reads as before)
            d["objects"] = self.objects
        return d


@dataclass(frozen=True)
class ItemRow:
    job_id: int
    seq: int
    sop_uid: str
    sop_class: str
    modality: str
    path: str  # absolute
    size: int
    transfer_syntax: str
    state: str
    status: int | None
    error: str
    permanent: int
    sent_at: float | None
    derived: int = 0  # 1: an object the chain made (``path`` is where each attempt writes its copy)
    sent_sop_class: str = ""  # what a transformed copy of a stored instance carried ('' = the stored UIDs)
    sent_sop_uid: str = ""

    @property
    def sent_uids(self) -> tuple[str, str]:
        """(SOP Class UID, SOP Instance UID) as the peer holds this instance (what commitment asks about)."""
        return self.sent_sop_class or self.sop_class, self.sent_sop_uid or self.sop_uid


@dataclass(frozen=True)
class NewItem:
    sop_uid: str
    sop_class: str
    modality: str
    path: str
    size: int
    transfer_syntax: str


class JobQueue(Database):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / "queue.sqlite", QUEUE)

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self.transaction() as conn:
            return fn(conn)

    # -- adding ----------------------------------------------------------------------------------------------
    def add_job(self, node: NodeConfig, items: Sequence[NewItem], *, plan_uid: str = "", patient_id: str = "",
                label: str = "", origin: str = "manual", transform: str = "", inputs: Iterable[str] = (),
                priority: int | None = None) -> int:
        """``inputs``: paths among ``items`` the chain only reads (the node has them already): state ``input``.
        ``priority``: default from the origin (manual before a rule's, ``outbound/priority.py``)."""
        now = time.time()
        read_only = set(inputs)
        sent = [i for i in items if i.path not in read_only]
        level = for_origin(origin) if priority is None else priority

        def tx(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO jobs (node, node_json, plan_uid, patient_id, label, origin, state, next_try, created,"
                " updated, total, bytes_total, transform, priority) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (node.name, json.dumps(asdict(node)), plan_uid, patient_id, label, origin, QUEUED, now, now, now,
                 len(sent), sum(i.size for i in sent), transform, level))
            job_id = int(cur.lastrowid or 0)
            conn.executemany("INSERT INTO items (job_id, seq, sop_uid, sop_class, modality, path, size,"
                             " transfer_syntax, state) VALUES (?,?,?,?,?,?,?,?,?)",
                             [(job_id, n, i.sop_uid, i.sop_class, i.modality, i.path, i.size, i.transfer_syntax,
                               INPUT if i.path in read_only else QUEUED) for n, i in enumerate(items)])
            return job_id
        return int(self._tx(tx))

    def delivered(self, node: str, paths: Iterable[str], transform: str = "") -> set[str]:
        """Of ``paths``, those already acknowledged by ``node`` in any job (never send them twice by accident).
        Per transform: the anonymized copy and the original are different objects to the peer. An ``input`` of a
        job that is done counts: what the chain made of it (its classic frames) was acknowledged."""
        wanted = list(paths)
        out: set[str] = set()
        for chunk in _chunks(wanted, 500):
            q = (f"SELECT DISTINCT i.path FROM items i JOIN jobs j ON j.id = i.job_id WHERE j.node=? AND"
                 f" j.transform=? AND (i.state='done' OR (i.state='input' AND j.state='done')) AND"
                 f" i.path IN ({','.join('?' * len(chunk))})")
            out.update(r[0] for r in self.conn.execute(q, (node, transform, *chunk)))
        return out

    def pending(self, node: str, paths: Iterable[str], transform: str = "") -> set[str]:
        """Of ``paths``, those already waiting in an active job for ``node`` (with the same transform)."""
        wanted = list(paths)
        out: set[str] = set()
        for chunk in _chunks(wanted, 500):
            q = (f"SELECT DISTINCT i.path FROM items i JOIN jobs j ON j.id = i.job_id WHERE j.node=? AND"
                 f" j.transform=? AND j.state IN ('queued','sending','waiting-retry') AND i.state IN"
                 f" ('queued','sending','input') AND i.path IN ({','.join('?' * len(chunk))})")
            out.update(r[0] for r in self.conn.execute(q, (node, transform, *chunk)))
        return out

    def active_with(self, paths: Iterable[str]) -> list[JobRow]:
        """Active jobs (queued, sending, waiting) with any of these files still to send: a delete must wait."""
        wanted = list(paths)
        ids: set[int] = set()
        for chunk in _chunks(wanted, 500):
            q = (f"SELECT DISTINCT j.id FROM items i JOIN jobs j ON j.id = i.job_id WHERE j.state IN"
                 f" ('queued','sending','waiting-retry') AND i.path IN ({','.join('?' * len(chunk))})")
            ids.update(r[0] for r in self.conn.execute(q, chunk))
        return [j for j in (self.job(i) for i in sorted(ids)) if j is not None]

    # -- reading ---------------------------------------------------------------------------------------------
    def jobs(self, active_only: bool = False, limit: int = 500) -> list[JobRow]:
        where = "WHERE state IN ('queued','sending','waiting-retry')" if active_only else ""
        rows = self.conn.execute(f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [JobRow(**dict(r)) for r in rows]

    def job(self, job_id: int) -> JobRow | None:
        r = self.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return JobRow(**dict(r)) if r else None

    def latest_states(self) -> dict[str, dict[str, str]]:
        """Plan UID → node → the state of its newest job: the console's per-patient "failed" and "never sent"."""
        out: dict[str, dict[str, str]] = {}
        for r in self.conn.execute("SELECT plan_uid, node, state FROM jobs WHERE id IN "
                                   "(SELECT max(id) FROM jobs GROUP BY plan_uid, node)"):
            out.setdefault(r[0], {})[r[1]] = r[2]
        return out

    def history(self, plan_uid: str) -> list[JobRow]:
        rows = self.conn.execute("SELECT * FROM jobs WHERE plan_uid=? ORDER BY id", (plan_uid,))
        return [JobRow(**dict(r)) for r in rows]

    def items(self, job_id: int, states: Sequence[str] | None = None) -> list[ItemRow]:
        sql = "SELECT * FROM items WHERE job_id=?"
        args: list[Any] = [job_id]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return [ItemRow(**dict(r)) for r in self.conn.execute(sql + " ORDER BY seq", args)]

    def due(self, now: float) -> list[JobRow]:
        """Jobs to start now, highest priority first (a manual send before a rule's backlog), then oldest first."""
        rows = self.conn.execute("SELECT * FROM jobs WHERE state IN ('queued','waiting-retry') AND next_try <= ?"
                                 " ORDER BY priority DESC, id", (now,))
        return [JobRow(**dict(r)) for r in rows]

    def waiting_above(self, node: str, priority: int, now: float, exclude: int = 0) -> int | None:
        """The oldest due job for ``node`` with a priority above ``priority`` (None: none waits)."""
        row = self.conn.execute("SELECT id FROM jobs WHERE node=? AND priority>? AND id<>? AND state IN"
                                " ('queued','waiting-retry') AND next_try <= ? ORDER BY priority DESC, id LIMIT 1",
                                (node, priority, exclude, now)).fetchone()
        return int(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}

    # -- running ---------------------------------------------------------------------------------------------
    def settle(self, job_id: int, replaced: Iterable[int], derived: Sequence[NewItem]) -> dict[str, int]:
        """The rows of a job whose chain adds or splits objects, once its copies are made: stored instances the
        chain replaced become ``input``, each derived object gets a row (once: a retry makes the same UIDs and
        finds its row with its state), and total/derived/bytes_total count what goes to the peer.
        Returns derived SOP Instance UID → item seq."""
        def tx(conn: sqlite3.Connection) -> dict[str, int]:
            marks = [(job_id, seq) for seq in replaced]
            conn.executemany("UPDATE items SET state='input' WHERE job_id=? AND seq=? AND derived=0 AND state IN"
                             " ('queued','sending')", marks)
            have = {r[0]: r[1] for r in conn.execute("SELECT sop_uid, seq FROM items WHERE job_id=? AND derived=1",
                                                     (job_id,))}
            seq = int(conn.execute("SELECT coalesce(max(seq), -1) FROM items WHERE job_id=?", (job_id,))
                      .fetchone()[0])
            for d in derived:
                if d.sop_uid in have:
                    conn.execute("UPDATE items SET size=?, path=? WHERE job_id=? AND seq=?",
                                 (d.size, d.path, job_id, have[d.sop_uid]))
                    continue
                seq += 1
                have[d.sop_uid] = seq
                conn.execute("INSERT INTO items (job_id, seq, sop_uid, sop_class, modality, path, size,"
                             " transfer_syntax, state, derived) VALUES (?,?,?,?,?,?,?,?,?,1)",
                             (job_id, seq, d.sop_uid, d.sop_class, d.modality, d.path, d.size, d.transfer_syntax,
                              QUEUED))
            conn.execute("UPDATE jobs SET total=(SELECT count(*) FROM items WHERE job_id=:j AND state!='input'),"
                         " derived=(SELECT count(*) FROM items WHERE job_id=:j AND derived=1),"
                         " bytes_total=(SELECT coalesce(sum(size), 0) FROM items WHERE job_id=:j AND"
                         " state!='input'), updated=:t WHERE id=:j", {"j": job_id, "t": time.time()})
            return have
        return dict(self._tx(tx))

    def claim(self, job_id: int, pid: int) -> bool:
        """Atomically take a due job (two processes never send the same job)."""
        cur = self.conn.execute("UPDATE jobs SET state='sending', owner_pid=?, updated=? WHERE id=? AND state IN"
                                " ('queued','waiting-retry')", (pid, time.time(), job_id))
        return cur.rowcount == 1

    def record_sent(self, job_id: int, uids: dict[int, tuple[str, str]]) -> None:
        """The (SOP Class, SOP Instance) UIDs each row's copy carries (seq → UIDs), once the copies are made: what
        storage commitment asks the node about. Deterministic chains: every attempt records the same."""
        if uids:
            self._tx(lambda conn: conn.executemany(
                "UPDATE items SET sent_sop_class=?, sent_sop_uid=? WHERE job_id=? AND seq=?",
                [(cls, uid, job_id, seq) for seq, (cls, uid) in uids.items()]))

    def mark_item(self, job_id: int, seq: int, state: str, *, status: int | None = None, error: str = "",
                  permanent: bool = False, size: int = 0) -> None:
        """Record one instance's outcome right after the peer answered, with the job's counters."""
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE items SET state=?, status=?, error=?, permanent=?, sent_at=? WHERE job_id=? AND"
                         " seq=?", (state, status, error, int(permanent), time.time(), job_id, seq))
            if state == DONE:
                conn.execute("UPDATE jobs SET done=done+1, bytes_done=bytes_done+?, updated=? WHERE id=?",
                             (size, time.time(), job_id))
            elif state == FAILED:
                conn.execute("UPDATE jobs SET failed=failed+1, updated=? WHERE id=?", (time.time(), job_id))
        self._tx(tx)

    def set_state(self, job_id: int, state: str, *, error: str | None = None, next_try: float | None = None,
                  attempts: int | None = None, only_if: Sequence[str] | None = None) -> bool:
        sets, args = ["state=?", "updated=?"], [state, time.time()]
        for col, val in (("error", error), ("next_try", next_try), ("attempts", attempts)):
            if val is not None:
                sets.append(f"{col}=?")
                args.append(val)
        sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id=?"
        args.append(job_id)
        if only_if:
            sql += f" AND state IN ({','.join('?' * len(only_if))})"
            args += list(only_if)
        return self.conn.execute(sql, args).rowcount == 1

    def requeue_items(self, job_id: int, *, include_failed: bool) -> None:
        """Items to try again: interrupted ones, and failed ones unless their failure is permanent."""
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE items SET state='queued' WHERE job_id=? AND state='sending'", (job_id,))
            if include_failed:
                conn.execute("UPDATE items SET state='queued', error='' WHERE job_id=? AND state='failed' AND"
                             " permanent=0", (job_id,))
            failed = conn.execute("SELECT count(*) FROM items WHERE job_id=? AND state='failed'", (job_id,))
            conn.execute("UPDATE jobs SET failed=? WHERE id=?", (failed.fetchone()[0], job_id))
        self._tx(tx)

    def fail_remaining(self, job_id: int, error: str) -> None:
        """A job given up: instances not delivered become ``failed`` (those already failed keep their own reason)
        and the job's counter says how many."""
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE items SET state='failed', error=? WHERE job_id=? AND state IN ('queued','sending')",
                         (error, job_id))
            failed = conn.execute("SELECT count(*) FROM items WHERE job_id=? AND state='failed'", (job_id,))
            conn.execute("UPDATE jobs SET failed=? WHERE id=?", (failed.fetchone()[0], job_id))
        self._tx(tx)

    def recover(self, alive: Callable[[int], bool]) -> list[tuple[int, list[ItemRow]]]:
        """Jobs a dead process was sending go back to the queue; acknowledged instances stay done.

        Returns (job id, in-doubt items): the first instance not yet acknowledged, which may have been under way
        when the process died (instances go out in order, one at a time). Its response never reached us, so it is
        sent again; the peer may have stored it already (C-STORE alone cannot tell), so the caller logs it."""
        rows = self.conn.execute("SELECT id, owner_pid FROM jobs WHERE state='sending'").fetchall()
        out = []
        for r in rows:
            if not alive(r["owner_pid"] or 0):
                doubt = self.items(r["id"], [QUEUED, SENDING])[:1]
                self.requeue_items(r["id"], include_failed=False)
                self.set_state(r["id"], QUEUED, next_try=0.0)
                out.append((r["id"], doubt))
        return out

    # -- by hand ---------------------------------------------------------------------------------------------
    def retry(self, job_id: int) -> bool:
        """Failed, cancelled or waiting jobs: try again now, with a fresh retry schedule."""
        job = self.job(job_id)
        if job is None or job.state == SENDING:
            return False
        self._tx(lambda c: c.execute("UPDATE items SET state='queued', error='', permanent=0 WHERE job_id=? AND"
                                     " state IN ('failed','cancelled')", (job_id,)))
        self.requeue_items(job_id, include_failed=True)
        return self.set_state(job_id, QUEUED, error="", next_try=0.0, attempts=0)

    def cancel(self, job_id: int) -> bool:
        ok = self.set_state(job_id, CANCELLED, error="cancelled by hand", only_if=ACTIVE)
        if ok:
            self.cancel_items(job_id)
        return ok

    def cancel_items(self, job_id: int) -> None:
        """Instances not yet acknowledged are cancelled; what was delivered stays done."""
        self.conn.execute("UPDATE items SET state='cancelled' WHERE job_id=? AND state IN ('queued','sending')",
                          (job_id,))

    def state_of(self, job_id: int) -> str:
        r = self.conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
        return r[0] if r else ""


def _chunks(seq: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]
