"""The index from the files: full rebuild (``rtstation index --rebuild``) and the start-up reconcile.

The files are the truth. Rebuild writes a fresh index beside the old one and swaps it in; reconcile, run in the
background at every start, indexes files the index has not seen (a crash between ``os.replace`` and the index
commit) and forgets rows whose file is gone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import Iterator

from ..audit import audit_object
from ..dicom.header import BadDicom, dataset_offset, read_header
from ..dicom.lengthwalk import verify_structure
from ..store.index import Index, IndexRecord
from ..plans.readiness import settled_states
from ..store.files import Placed, Store
from ..store.removal import finish_interrupted
from ..store.schema import INDEX

log = logging.getLogger("rtstation.index")
_VERSION = re.compile(r"~(\d+)\.dcm$")
BATCH = 500


def scan_store(store: Store) -> Iterator[str]:
    """Relative paths of every stored file, in a stable order."""
    for root, dirs, files in os.walk(store.root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".dcm"):
                yield (Path(root) / name).relative_to(store.root).as_posix()


def read_provenance(path: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
                out[rec["path"]] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
    return out


def record_for(store: Store, rel: str, prov: dict[str, dict[str, object]], session_id: int | None) -> IndexRecord:
    """The index record of one stored file; BadDicom when it is not whole (a truncated file is never indexed)."""
    path = store.abspath(rel)
    info = read_header(path)
    verify_structure(path, dataset_offset(path), info.transfer_syntax)
    m = _VERSION.search(rel)
    placed = Placed("stored", rel, store.abspath(rel).stat().st_size, int(m.group(1)) if m else 1)
    p = prov.get(rel, {})
    return IndexRecord(info, placed, str(p.get("source", "recovered")), str(p.get("calling_ae", "")),
                       float(p.get("received_at", 0.0) or store.abspath(rel).stat().st_mtime), session_id)


def _index_files(store: Store, index: Index, rels: list[str], prov: dict[str, dict[str, object]],
                 session_id: int | None, recovered: bool = False) -> tuple[int, list[str]]:
    """Index ``rels``; ``recovered``: files an interrupted run stored but never indexed, whose ``stored`` audit
    record the crash may have lost (``audit.py``): written now, marked as recovered."""
    batch: list[IndexRecord] = []
    bad: list[str] = []
    n = 0
    for rel in rels:
        try:
            rec = record_for(store, rel, prov, session_id)
        except (BadDicom, OSError) as exc:
            bad.append(f"{rel}: {exc}")
            continue
        batch.append(rec)
        if recovered:
            audit_object(rec.info, rec.placed, source=rec.source, calling_ae=rec.calling_ae, recovered=True)
        if len(batch) >= BATCH:
            n += index.add(batch)
            batch = []
    n += index.add(batch)
    index.conn.execute("UPDATE instances SET conflict=1 WHERE sop_uid IN "
                       "(SELECT sop_uid FROM instances GROUP BY sop_uid HAVING count(*) > 1)")
    return n, bad


def rebuild(data_dir: Path) -> dict[str, object]:
    """Recreate ``index.sqlite`` from the store. The caller makes sure no server uses this data_dir.

    An index from a newer release is refused like at open: its tables may hold what this version cannot rebuild."""
    try:
        INDEX.refuse_newer_file(data_dir / "index.sqlite")
    except sqlite3.DatabaseError as exc:  # damaged beyond reading its version: exactly what a rebuild is for
        log.warning("the old index %s is damaged (%s); it is replaced", data_dir / "index.sqlite", exc)
    store = Store(data_dir)
    fresh_dir = data_dir / "tmp" / "rebuild"
    fresh_dir.mkdir(parents=True, exist_ok=True)
    for leftover in fresh_dir.glob("index.sqlite*"):
        leftover.unlink()
    index = Index(fresh_dir)
    finish_interrupted(index, store)  # a deletion a crash cut short is completed, never indexed back
    n, bad = _index_files(store, index, list(scan_store(store)), read_provenance(data_dir / "provenance.jsonl"), None)
    index.save_bundle_states(settled_states(index, index.patient_ids()))
    index.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    index.close()
    target = data_dir / "index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(fresh_dir / "index.sqlite", target)
    for leftover in fresh_dir.glob("index.sqlite*"):
        leftover.unlink()
    for line in bad:
        log.warning("not indexed: %s", line)
    return {"indexed": n, "unreadable": bad}


def reconcile(store: Store, index: Index) -> tuple[int, int]:
    """Index files the index lacks (in a session, so readiness evaluates them) and forget vanished ones."""
    on_disk = set(scan_store(store))
    indexed = index.indexed_paths()
    gone = indexed - on_disk
    new = sorted(on_disk - indexed)
    removed = index.remove_paths(gone) if gone else 0
    added = 0
    if new:
        session = index.open_session("recovery", "recovered", "", "", os.getpid())
        added, bad = _index_files(store, index, new, read_provenance(store.data_dir / "provenance.jsonl"), session,
                                  recovered=True)
        store.load_known(index.session_pairs([session]))
        index.end_session(session, added, 0, len(bad))
        for line in bad:
            log.warning("not indexed: %s", line)
        log.warning("indexed %d stored files the index did not know (an interrupted run)", added)
    if removed:
        log.warning("forgot %d index entries whose files are gone", removed)
    for rel, was, now in changed_sizes(store, index, on_disk & indexed):
        log.error("stored file %s is %d bytes, it was %d when stored: damaged behind the station's back. It will "
                  "not be forwarded; restore it (or `rtstation index --rebuild` leaves it out of the index)",
                  store.abspath(rel), now, was)
    return added, removed


def changed_sizes(store: Store, index: Index, rels: set[str]) -> list[tuple[str, int, int]]:
    """(relpath, size when stored, size now) of indexed files whose size changed: one stat per file."""
    out = []
    for rel, size in index.conn.execute("SELECT path, size FROM instances"):
        if rel in rels:
            try:
                now = store.abspath(rel).stat().st_size
            except OSError:
                continue
            if size is not None and now != size:
                out.append((rel, int(size), now))
    return out
