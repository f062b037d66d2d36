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

QUEUED, SENDING, WAITING, DONE, FAILED, CANCELLED = "queued", "sending", "waiting-retry", "done", "failed", "cancelled"
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

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def node_config(self) -> NodeConfig:
        return NodeConfig(**json.loads(self.node_json))

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("node_json")
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
                label: str = "", origin: str = "manual", transform: str = "") -> int:
        now = time.time()

        def tx(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO jobs (node, node_json, plan_uid, patient_id, label, origin, state, next_try, created,"
                " updated, total, bytes_total, transform) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (node.name, json.dumps(asdict(node)), plan_uid, patient_id, label, origin, QUEUED, now, now, now,
                 len(items), sum(i.size for i in items), transform))
            job_id = int(cur.lastrowid or 0)
            conn.executemany("INSERT INTO items (job_id, seq, sop_uid, sop_class, modality, path, size,"
                             " transfer_syntax, state) VALUES (?,?,?,?,?,?,?,?,?)",
                             [(job_id, n, i.sop_uid, i.sop_class, i.modality, i.path, i.size, i.transfer_syntax,
                               QUEUED) for n, i in enumerate(items)])
            return job_id
        return int(self._tx(tx))

    def delivered(self, node: str, paths: Iterable[str], transform: str = "") -> set[str]:
        """Of ``paths``, those already acknowledged by ``node`` in any job (never send them twice by accident).
        Per transform: the anonymized copy and the original are different objects to the peer."""
        wanted = list(paths)
        out: set[str] = set()
        for chunk in _chunks(wanted, 500):
            q = (f"SELECT DISTINCT i.path FROM items i JOIN jobs j ON j.id = i.job_id WHERE j.node=? AND"
                 f" j.transform=? AND i.state='done' AND i.path IN ({','.join('?' * len(chunk))})")
            out.update(r[0] for r in self.conn.execute(q, (node, transform, *chunk)))
        return out

    def pending(self, node: str, paths: Iterable[str], transform: str = "") -> set[str]:
        """Of ``paths``, those already waiting in an active job for ``node`` (with the same transform)."""
        wanted = list(paths)
        out: set[str] = set()
        for chunk in _chunks(wanted, 500):
            q = (f"SELECT DISTINCT i.path FROM items i JOIN jobs j ON j.id = i.job_id WHERE j.node=? AND"
                 f" j.transform=? AND j.state IN ('queued','sending','waiting-retry') AND i.state IN"
                 f" ('queued','sending') AND i.path IN ({','.join('?' * len(chunk))})")
            out.update(r[0] for r in self.conn.execute(q, (node, transform, *chunk)))
        return out

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
        rows = self.conn.execute("SELECT * FROM jobs WHERE state IN ('queued','waiting-retry') AND next_try <= ?"
                                 " ORDER BY id", (now,))
        return [JobRow(**dict(r)) for r in rows]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}

    # -- running ---------------------------------------------------------------------------------------------
    def claim(self, job_id: int, pid: int) -> bool:
        """Atomically take a due job (two processes never send the same job)."""
        cur = self.conn.execute("UPDATE jobs SET state='sending', owner_pid=?, updated=? WHERE id=? AND state IN"
                                " ('queued','waiting-retry')", (pid, time.time(), job_id))
        return cur.rowcount == 1

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
