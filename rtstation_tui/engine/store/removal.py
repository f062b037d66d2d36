"""Removing stored objects (``rtstation delete``, retention, ``delete_after_send``) so that a crash never leaves the
index saying something the files do not, and ``index --rebuild`` never brings a deleted object back.

The order, and why: the files are the truth, so the files must go; the index follows them.
1. An intent journal ``data_dir/deleting/<id>.json`` (every relative path, the plans and patients concerned) is
   written atomically (temp, fsync, ``os.replace``) before anything is removed.
2. The files are unlinked (then their directories fsynced, unless ``durability = "os"``), empty folders pruned.
3. Their index rows go (instances, refs, plans, bundle states, rule marks, tags, metrics, and the
   patient/study/series rows left without instances).
4. The journal is removed.
A crash before 1 changed nothing. A crash after 1 leaves a journal: the next start (``Station`` recovery) and
``index --rebuild`` (before it scans) finish it, so the half-deleted bundle is completed, never resurrected.
Meanwhile the start-up reconcile would forget rows of files already gone in any case.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .files import Store, _fsync_path
from .index import Index

log = logging.getLogger("rtstation.store")
JOURNAL_DIR = "deleting"


@dataclass(frozen=True)
class Removed:
    files: int  # files unlinked now (a file already gone is not counted)
    rows: int  # instance rows removed from the index
    gone_patients: tuple[str, ...]  # patients with nothing left in the index


def remove_objects(index: Index, store: Store, relpaths: Iterable[str], plan_uids: Iterable[str] = (),
                   patient_ids: Iterable[str] = ()) -> Removed:
    """Remove stored files and their index rows, journaled (module docstring). Idempotent."""
    entry = {"paths": sorted(set(relpaths)), "plans": sorted(set(plan_uids)), "patients": sorted(set(patient_ids))}
    journal = _write_journal(store, entry)
    done = _apply(index, store, entry)
    journal.unlink()
    return done


def finish_interrupted(index: Index, store: Store) -> int:
    """Complete the removals a crash interrupted (their journals); returns how many."""
    folder = store.data_dir / JOURNAL_DIR
    n = 0
    for journal in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # never written whole (os.replace): cannot happen but say so
            log.error("removal journal %s is unreadable (%s); left for inspection", journal, exc)
            continue
        _apply(index, store, entry)
        journal.unlink()
        n += 1
    for leftover in folder.glob("*.part") if folder.is_dir() else []:
        leftover.unlink(missing_ok=True)  # a journal never placed: its removal never started
    if n:
        log.warning("finished %d removals an interrupted run had started", n)
    return n


def _write_journal(store: Store, entry: dict[str, list[str]]) -> Path:
    folder = store.data_dir / JOURNAL_DIR
    folder.mkdir(mode=0o750, exist_ok=True)
    name = f"{time.time_ns()}-{secrets.token_hex(4)}"  # sorted: interrupted removals are finished in order
    temp, final = folder / f"{name}.part", folder / f"{name}.json"
    with open(temp, "w", encoding="utf-8") as fh:
        json.dump(entry, fh)
        fh.flush()
        if store.fsync:
            os.fsync(fh.fileno())
    os.replace(temp, final)
    if store.fsync:
        _fsync_path(folder, directory=True)
    return final


def _apply(index: Index, store: Store, entry: dict[str, list[str]]) -> Removed:
    paths, plans = list(entry.get("paths", [])), list(entry.get("plans", []))
    unlinked = 0
    folders: set[Path] = set()
    for rel in paths:
        path = store.abspath(rel)
        try:
            path.unlink()
            unlinked += 1
        except FileNotFoundError:
            pass
        folders.add(path.parent)
    if store.fsync:
        for folder in folders:
            if folder.is_dir():
                _fsync_path(folder, directory=True)
    _prune_folders(store, folders)
    sops = index.sop_uids_at(paths)
    patients = set(entry.get("patients", [])) | index.patients_at(paths)
    rows = index.remove_paths(paths)
    index.forget_plans(plans)
    gone = index.prune_empty(patients)
    for rel in paths:
        store.forget(sops.get(rel, ""), rel)
    return Removed(unlinked, rows, tuple(sorted(gone)))


def _prune_folders(store: Store, folders: set[Path]) -> None:
    """Study and patient folders left empty go too (never the store root)."""
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        while folder != store.root and store.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop climbing
                break
            folder = folder.parent
