"""The SQLite index (WAL) of the store: patients, studies, series, instances, references, plans, sessions, bundles.

The index is derived data: ``rebuild.py`` recreates it from the files. One writer thread per process
(``indexer.py``); readers use their own connections, so the console never waits for the receive path. Other
processes (``rtstation import``, ``rtstation send``) may write too: WAL plus a busy timeout makes that safe.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..audit import flush_deferred
from .db import Database
from .schema import INDEX
from ..dicom.header import InstanceInfo
from .files import Placed


@dataclass(frozen=True)
class IndexRecord:
    """One stored object as the indexer receives it."""

    info: InstanceInfo
    placed: Placed
    source: str
    calling_ae: str = ""
    received_at: float = 0.0
    session_id: int | None = None


class _Parents:
    """The patient, study and series rows of one batch's new instances, written once each per batch (a 300-slice
    series is one series row, not 300 statements): the rows per-instance statements in order would leave (a
    patient's name and time from its last instance, a study's and series' values from their first)."""

    def __init__(self) -> None:
        self.patients: dict[str, tuple[str, str, float]] = {}
        self.studies: dict[str, tuple[str, str]] = {}
        self.series: dict[str, tuple[str, str, str, str, str]] = {}

    def note(self, rec: IndexRecord) -> None:
        i = rec.info
        self.patients[i.patient_id] = (i.patient_id, i.patient_name, rec.received_at)
        self.studies.setdefault(i.study_uid, (i.study_uid, i.patient_id))
        self.series.setdefault(i.series_uid, (i.series_uid, i.study_uid, i.patient_id, i.modality,
                                              i.series_description))

    def write(self, conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO patients VALUES (?,?,?) ON CONFLICT(patient_id) DO UPDATE SET "
                         "patient_name=excluded.patient_name, updated=excluded.updated", list(self.patients.values()))
        conn.executemany("INSERT OR IGNORE INTO studies VALUES (?,?)", list(self.studies.values()))
        conn.executemany("INSERT OR IGNORE INTO series VALUES (?,?,?,?,?)", list(self.series.values()))


class Index(Database):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / "index.sqlite", INDEX)

    # -- sessions: one per association or import run; readiness is evaluated when a session ends -------------
    def open_session(self, kind: str, source: str, calling_ae: str = "", peer: str = "", pid: int = 0) -> int:
        cur = self.conn.execute(
            "INSERT INTO sessions (kind, source, calling_ae, peer, started, pid) VALUES (?,?,?,?,?,?)",
            (kind, source, calling_ae, peer, time.time(), pid))
        return int(cur.lastrowid or 0)

    def end_session(self, session_id: int, instances: int, nbytes: int, failures: int) -> None:
        self.conn.execute("UPDATE sessions SET ended=?, instances=?, bytes=?, failures=? WHERE id=?",
                          (time.time(), instances, nbytes, failures, session_id))

    def close_orphan_sessions(self, alive: Any) -> int:
        """Sessions left open by a process that died: end them so their bundles get evaluated."""
        rows = self.conn.execute("SELECT id, pid FROM sessions WHERE ended IS NULL").fetchall()
        dead = [r["id"] for r in rows if not alive(r["pid"])]
        for sid in dead:
            self.conn.execute("UPDATE sessions SET ended=? WHERE id=?", (time.time(), sid))
        return len(dead)

    def retrieve_in_progress(self, calling_ae: str, alive: Any) -> str | None:
        """The node (``peer`` of its session) of a retrieve from ``calling_ae`` that is running now (its session
        open, its process alive), or None. Why here: the retrieve may run in another process (``rtstation
        retrieve`` while ``serve`` holds the port), and the index is what both share."""
        rows = self.conn.execute("SELECT peer, pid FROM sessions WHERE kind = 'retrieve' AND ended IS NULL AND "
                                 "calling_ae = ? ORDER BY id DESC", (calling_ae,)).fetchall()
        return next((str(r["peer"]) for r in rows if alive(r["pid"])), None)

    def sessions_to_evaluate(self) -> list[int]:
        rows = self.conn.execute("SELECT id FROM sessions WHERE ended IS NOT NULL AND evaluated=0 ORDER BY id")
        return [r[0] for r in rows]

    def session_patients(self, session_ids: Iterable[int]) -> set[str]:
        ids = list(session_ids)
        if not ids:
            return set()
        q = f"SELECT DISTINCT patient_id FROM instances WHERE session_id IN ({','.join('?' * len(ids))})"
        return {r[0] for r in self.conn.execute(q, ids)}

    def session_pairs(self, session_ids: Iterable[int]) -> list[tuple[str, str]]:
        ids = list(session_ids)
        if not ids:
            return []
        q = f"SELECT sop_uid, path FROM instances WHERE session_id IN ({','.join('?' * len(ids))})"
        return [(r[0], r[1]) for r in self.conn.execute(q, ids)]

    def mark_evaluated(self, session_ids: Iterable[int]) -> None:
        self.conn.executemany("UPDATE sessions SET evaluated=1 WHERE id=?", [(i,) for i in session_ids])

    # -- instances -------------------------------------------------------------------------------------------
    def add(self, records: Iterable[IndexRecord]) -> int:
        """Index stored objects in one transaction. Returns rows added.

        A duplicate is offered too: its file is usually indexed already (the path is unique, so nothing is added),
        but not after a crash between placing files and committing their batch (kill -9 during an import). Then
        the next import of the same files finds them as duplicates, and this is what indexes them."""
        added = 0
        flush_deferred()  # every indexed object has its audit record (audit.py: what a crash can lose)
        parents = _Parents()
        with self.transaction() as conn:
            for rec in records:
                if self._insert(conn, rec):
                    parents.note(rec)
                    added += 1
            parents.write(conn)
        return added

    def _insert(self, conn: sqlite3.Connection, rec: IndexRecord) -> bool:
        """The instance row, its references and plan; its patient, study and series rows are ``_Parents``'."""
        i, p = rec.info, rec.placed
        cur = conn.execute(
            "INSERT OR IGNORE INTO instances (sop_uid, version, sop_class, modality, transfer_syntax, patient_id,"
            " study_uid, series_uid, frame_of_ref, instance_number, description, path, size, source, calling_ae,"
            " received_at, session_id, conflict) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (i.sop_uid, p.version, i.sop_class, i.modality, i.transfer_syntax, i.patient_id, i.study_uid,
             i.series_uid, i.frame_of_ref, i.instance_number, i.description, p.relpath, p.size, rec.source,
             rec.calling_ae, rec.received_at, rec.session_id, 1 if p.others else 0))
        if cur.rowcount == 0:
            return False
        iid = cur.lastrowid
        if p.others:
            conn.execute("UPDATE instances SET conflict=1 WHERE sop_uid=?", (i.sop_uid,))
        if i.refs:
            conn.executemany("INSERT INTO refs VALUES (?,?,?,?)", [(iid, r.kind, r.uid, r.sop_class) for r in i.refs])
        if i.plan is not None:
            pl = i.plan
            conn.execute("INSERT INTO plans VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         (iid, i.sop_uid, i.patient_id, pl.label, pl.name, pl.approval, "\\".join(pl.machines),
                          json.dumps([asdict(b) for b in pl.beams]), len(pl.beams), pl.fractions,
                          int(pl.ion), pl.intent))
        return True

    def remove_paths(self, relpaths: Iterable[str]) -> int:
        """Forget files that vanished from disk (the files are the truth)."""
        n = 0
        with self.transaction() as conn:
            for rel in relpaths:
                row = conn.execute("SELECT id FROM instances WHERE path=?", (rel,)).fetchone()
                if row is None:
                    continue
                for table in ("refs", "plans"):
                    conn.execute(f"DELETE FROM {table} WHERE instance_id=?", (row[0],))
                conn.execute("DELETE FROM instances WHERE id=?", (row[0],))
                n += 1
        return n

    def sop_uids_at(self, relpaths: Iterable[str]) -> dict[str, str]:
        """relpath -> SOP Instance UID of the indexed files among ``relpaths``."""
        return {r[0]: r[1] for r in self._by_paths("SELECT path, sop_uid FROM instances", list(relpaths))}

    def patients_at(self, relpaths: Iterable[str]) -> set[str]:
        return {r[0] for r in self._by_paths("SELECT DISTINCT patient_id FROM instances", list(relpaths))}

    def _by_paths(self, select: str, paths: list[str]) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = []
        for i in range(0, len(paths), 500):
            chunk = paths[i:i + 500]
            rows += self.conn.execute(f"{select} WHERE path IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        return rows

    def forget_plans(self, plan_uids: Iterable[str]) -> None:
        """What the index remembers of removed plans besides their files: bundle state, rule marks, tags, metrics
        (a plan received again is then evaluated and computed afresh)."""
        uids = [(u,) for u in plan_uids]
        with self.transaction() as conn:
            for table in ("bundles", "rule_marks", "plan_tags", "metric_plans", "metric_rois"):
                conn.executemany(f"DELETE FROM {table} WHERE plan_uid=?", uids)

    def prune_empty(self, patient_ids: Iterable[str]) -> set[str]:
        """Patient, study and series rows of these patients left without instances go; returns the patients gone."""
        gone: set[str] = set()
        with self.transaction() as conn:
            for pid in patient_ids:
                conn.execute("DELETE FROM series WHERE patient_id=? AND series_uid NOT IN (SELECT series_uid FROM"
                             " instances WHERE patient_id=?)", (pid, pid))
                conn.execute("DELETE FROM studies WHERE patient_id=? AND study_uid NOT IN (SELECT study_uid FROM"
                             " instances WHERE patient_id=?)", (pid, pid))
                if conn.execute("SELECT 1 FROM instances WHERE patient_id=? LIMIT 1", (pid,)).fetchone() is None:
                    conn.execute("DELETE FROM patients WHERE patient_id=?", (pid,))
                    gone.add(pid)
        return gone

    def usage(self, patient_id: str | None = None) -> tuple[int, int]:
        """(instances, bytes) stored, of one patient or in all: sizes are recorded when each file is placed."""
        if patient_id is None:
            row = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM instances").fetchone()
        else:
            row = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM instances WHERE patient_id=?",
                                    (patient_id,)).fetchone()
        return int(row[0]), int(row[1])

    def sop_uids_of(self, level: str, uid: str) -> list[str]:
        """SOP Instance UIDs stored under one series, study or patient (``level``), connected to a plan or not."""
        column = {"series": "series_uid", "study": "study_uid", "patient": "patient_id"}[level]
        rows = self.conn.execute(f"SELECT DISTINCT sop_uid FROM instances WHERE {column}=? ORDER BY sop_uid", (uid,))
        return [r[0] for r in rows]

    def known_pairs(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute("SELECT sop_uid, path FROM instances ORDER BY id")]

    def indexed_paths(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT path FROM instances")}

    def patient_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT patient_id FROM patients ORDER BY patient_id")]

    def count_instances(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM instances").fetchone()[0])

    # -- bundle state (what the readiness tracker last told the world) ----------------------------------------
    def bundle_states(self, patient_id: str | None = None) -> dict[str, sqlite3.Row]:
        if patient_id is None:
            rows = self.conn.execute("SELECT * FROM bundles")
        else:
            rows = self.conn.execute("SELECT * FROM bundles WHERE patient_id=?", (patient_id,))
        return {r["plan_uid"]: r for r in rows}

    def save_bundle_states(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """rows: (plan_uid, patient_id, state, complete, signature, missing, summary_json, updated)."""
        self.conn.executemany("INSERT OR REPLACE INTO bundles VALUES (?,?,?,?,?,?,?,?)", list(rows))

    def delete_bundle_states(self, plan_uids: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM bundles WHERE plan_uid=?", [(u,) for u in plan_uids])
