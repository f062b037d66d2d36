"""The file store: ``data_dir/store/<PatientID>/<StudyInstanceUID>/<Modality>.<SOPInstanceUID>.dcm``.

Files are the truth. Every write is atomic (temp file in ``data_dir/tmp`` on the same filesystem, fsync unless
``durability = "os"``, ``os.replace``), so after a crash there is never a half file under a real name. The same SOP
Instance UID again with identical dataset bytes is a *duplicate* (nothing written); with different bytes it is a
*conflict*: both versions are kept (``…~2.dcm``) and nothing is ever overwritten.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import secrets
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import generate_uid

from ..dicom.header import InstanceInfo, dataset_offset
from .durable import Pending, Syncer
from .paths import safe_component

log = logging.getLogger("rtstation.store")
# stable, under pydicom's public UID root (generate_uid with fixed entropy is deterministic)
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["rtstation-tui implementation class"])
CHUNK = 1 << 20


@dataclass(frozen=True)
class Placed:
    """Outcome of putting one object into the store."""

    status: str  # "stored", "duplicate" or "conflict"
    relpath: str  # relative to the store root; for a duplicate, the file already there
    size: int
    version: int = 1
    others: tuple[str, ...] = ()  # other versions of the same SOP Instance UID (conflicts)


class Store:
    def __init__(self, data_dir: Path, durability: str = "fsync") -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "store"
        self.tmp_dir = self.data_dir / "tmp"
        self.quarantine_dir = self.data_dir / "quarantine"
        self.fsync = durability == "fsync"
        self.syncer = Syncer()
        self._lock = threading.Lock()
        self._known: dict[str, list[str]] = {}
        self._made: set[str] = set()  # study folders known to exist: no mkdir per instance
        for d in (self.root, self.tmp_dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o750)

    # -- bookkeeping -------------------------------------------------------------------------------------------
    def load_known(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(SOP Instance UID, relpath) of every indexed file, so duplicates are found without a query."""
        with self._lock:
            for sop, rel in pairs:
                lst = self._known.setdefault(sop, [])
                if rel not in lst:
                    lst.append(rel)

    def forget(self, sop: str, rel: str) -> None:
        with self._lock:
            lst = self._known.get(sop, [])
            if rel in lst:
                lst.remove(rel)

    def abspath(self, rel: str) -> Path:
        return self.root / rel

    def free_mb(self) -> float:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize / 1e6

    def clean_temp(self) -> int:
        """Remove temp files left by a crash: they were never acknowledged, so nothing is lost."""
        n = 0
        for p in self.tmp_dir.iterdir():
            try:
                p.unlink()
                n += 1
            except IsADirectoryError:
                shutil.rmtree(p, ignore_errors=True)
            except OSError as exc:
                log.warning("cannot remove stale temp file %s: %s", p, exc)
        return n

    def temp_path(self, suffix: str = ".part") -> Path:
        return self.tmp_dir / f"{secrets.token_hex(8)}{suffix}"

    # -- placing -----------------------------------------------------------------------------------------------
    def relpath_for(self, info: InstanceInfo, version: int = 1) -> str:
        folder = _folder(info.patient_id, info.study_uid)
        name = f"{safe_component(info.modality, 'OT')}.{safe_component(info.sop_uid, '_no_sop_uid')}"
        return f"{folder}/{name}{'' if version == 1 else f'~{version}'}.dcm"

    def begin_sync(self, temp: Path) -> Pending | None:
        """Start the fsync of a complete temp file now (``durability = "fsync"``), so it runs while the caller
        checks the file; ``place`` waits for it before the rename. None with ``"os"``."""
        return self.syncer.begin(temp) if self.fsync else None

    def place(self, temp: Path, info: InstanceInfo, size: int | None = None, synced: Pending | None = None) -> Placed:
        """Move a complete temp file (same filesystem) into the store; the temp file is gone or untouched after.

        With fsync durability the file's data are on disk before it gets its name (``synced``, or an fsync here)
        and the name is on disk before this returns (the directory's fsync, shared with concurrent renames)."""
        if size is None:
            size = os.stat(temp).st_size
        if self.fsync:
            if synced is not None:
                synced.wait()
            else:
                self.syncer.sync_file(temp)
        with self._lock:
            # versions removed meanwhile (retention cleanup, by hand) are forgotten, not compared against
            known = self._known.get(info.sop_uid)
            versions = [v for v in known if (self.root / v).exists()] if known else []
            self._known[info.sop_uid] = list(versions)
            for rel in versions:
                if same_dataset(self.root / rel, temp):
                    return Placed("duplicate", rel, size, versions.index(rel) + 1, tuple(v for v in versions if v != rel))
            version, rel = self._free_slot(info, len(versions) + 1, temp)
            if rel is None:  # identical file already on disk though not yet indexed
                rel = self.relpath_for(info, version)
                self._known.setdefault(info.sop_uid, []).append(rel)
                return Placed("duplicate", rel, size, version, tuple(versions))
            folder = self._rename_into(temp, rel)
            self._known.setdefault(info.sop_uid, []).append(rel)
        if self.fsync:
            self.syncer.sync_dir(folder)
        status = "conflict" if versions else "stored"
        return Placed(status, rel, size, version, tuple(versions))

    def _rename_into(self, temp: Path, rel: str) -> str:
        """``os.replace`` into the store, creating the folder the first time (or again, if it was removed since:
        retention and hand clean-ups remove empty folders). Returns the folder."""
        target = f"{self.root}/{rel}"
        folder = os.path.dirname(target)
        if folder not in self._made:
            os.makedirs(folder, mode=0o750, exist_ok=True)
            self._made.add(folder)
        try:
            os.replace(temp, target)
        except FileNotFoundError:
            if not os.path.exists(temp):
                raise
            self._made.discard(folder)
            os.makedirs(folder, mode=0o750, exist_ok=True)
            self._made.add(folder)
            os.replace(temp, target)
        return folder

    def _free_slot(self, info: InstanceInfo, version: int, temp: Path) -> tuple[int, str | None]:
        """First version number whose file does not exist yet, with its relpath (None: an identical file is
        already there)."""
        while True:
            rel = self.relpath_for(info, version)
            target = f"{self.root}/{rel}"
            if not os.path.exists(target):
                return version, rel
            if same_dataset(Path(target), temp):
                return version, None
            version += 1

    def import_file(self, src: Path, info: InstanceInfo) -> Placed:
        """Copy ``src`` into the store (the source is left alone). A raw dataset gets a proper file meta header."""
        temp = self.temp_path()
        try:
            with open(src, "rb") as fin, open(temp, "xb") as fout:
                os.chmod(temp, 0o640)
                if not info.has_meta:
                    fout.write(file_meta_bytes(info))
                shutil.copyfileobj(fin, fout, CHUNK)
            return self.place(temp, info)
        finally:
            temp.unlink(missing_ok=True)

    def quarantine(self, src: Path, reason: str, *, move: bool, details: dict[str, str] | None = None,
                   name: str | None = None) -> Path:
        """Keep a file we cannot store, with the reason beside it. Never deletes anything. ``name``: a better name
        than the source's (a received temp file is better named after the SOP Instance UID it announced)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{secrets.token_hex(3)}-{safe_component(name or src.name, 'unnamed')}"
        dest = self.quarantine_dir / name
        if move:
            try:
                os.replace(src, dest)
            except OSError:
                _copy_no_wider(src, dest)
                src.unlink(missing_ok=True)
        else:
            _copy_no_wider(src, dest)
        lines = [f"reason: {reason}", f"original: {src}", f"time: {time.strftime('%Y-%m-%d %H:%M:%S %z')}"]
        lines += [f"{k}: {v}" for k, v in (details or {}).items()]
        Path(f"{dest}.reason.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        log.warning("quarantined %s as %s: %s", src.name, dest.name, reason)
        return dest


@functools.lru_cache(maxsize=4096)
def _folder(patient_id: str, study_uid: str) -> str:
    """The store folder of a study (cached: every instance of a series asks for the same one)."""
    return f"{safe_component(patient_id, '_no_patient_id')}/{safe_component(study_uid, '_no_study')}"


def _copy_no_wider(src: Path, dest: Path) -> None:
    """Copy ``src`` to a new ``dest`` whose mode is never wider than the source's (nor than 0640): a root-only 0600
    file that reaches quarantine must stay 0600. The file is created with that mode, so it is never wider even
    while it is being written (the umask may narrow it further)."""
    mode = stat.S_IMODE(os.stat(src).st_mode) & 0o640
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(fin, fout, CHUNK)


def file_meta_bytes(info: InstanceInfo) -> bytes:
    """Preamble + ``DICM`` + a file meta group for a raw dataset (files written without one, e.g. old exports)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = info.sop_class
    meta.MediaStorageSOPInstanceUID = info.sop_uid
    meta.TransferSyntaxUID = info.transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = "RTSTATION_01"
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue()


def same_dataset(a: Path, b: Path) -> bool:
    """True when both files carry byte-identical datasets (their file meta may differ)."""
    try:
        oa, ob = dataset_offset(a), dataset_offset(b)
        if a.stat().st_size - oa != b.stat().st_size - ob:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            fa.seek(oa)
            fb.seek(ob)
            while True:
                ca, cb = fa.read(CHUNK), fb.read(CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except FileNotFoundError:
        return False


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
