"""Ingest of files and folders (``rtstation import``, the watched import folder): the same store, index, bundling and
readiness as the network path. Non-DICOM or broken files are quarantined with the reason beside them, never deleted.
ZIP archives are expanded (member names are never used as paths: no zip-slip).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..audit import audit, audit_object
from ..dicom.header import BadDicom, InstanceInfo, dataset_offset, read_header, value_problems
from ..store.index import Index, IndexRecord
from ..store.files import Placed, Store
from ..dicom.lengthwalk import verify_structure

log = logging.getLogger("rtstation.import")
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): nothing was done with it
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): DICOM, but not an object to store
    session_id: int | None = None

    def count(self, placed: Placed) -> None:
        if placed.status == "duplicate":
            self.duplicates += 1
        elif placed.status == "conflict":
            self.conflicts += 1
        else:
            self.stored += 1

    def as_json(self) -> dict[str, object]:
        return {"stored": self.stored, "duplicates": self.duplicates, "conflicts": self.conflicts,
                "quarantined": [{"file": f, "reason": r} for f, r in self.quarantined],
                "errors": [{"file": f, "reason": r} for f, r in self.errors],
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped]}


def check_file(path: Path) -> InstanceInfo:
    """Header and structure of a file to import; BadDicom says why it cannot be stored."""
    try:
        info = read_header(path)
    except BadDicom:
        if _has_preamble(path):
            raise
        try:
            info = read_header(path, force=True)  # a raw dataset without preamble/meta (old exports)
        except BadDicom as exc:
            raise BadDicom(f"not DICOM: no 'DICM' marker at byte 128, and not a raw dataset either ({exc})") from None
    verify_structure(path, dataset_offset(path), info.transfer_syntax)
    return info


def _has_preamble(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


class Importer:
    """Imports into ``store``; ``writer`` receives each record (the Station's indexer, or a batch writer)."""

    def __init__(self, store: Store, index: Index, writer: Callable[[IndexRecord], None]) -> None:
        self.store = store
        self.index = index
        self.writer = writer

    def run(self, paths: Iterable[Path], source: str, calling_ae: str, *, move_bad: bool = False,
            on_done: Callable[[Path, str], None] | None = None) -> ImportReport:
        """Import every file below ``paths`` in one session. ``on_done(path, outcome)`` is told each file's fate.

        ``move_bad``: broken files are moved into quarantine (the watched folder consumes its files); otherwise a
        copy goes there and the source is left alone (a one-shot import must never alter the user's folder or CD).
        """
        report = ImportReport()
        report.session_id = self.index.open_session("import", source, calling_ae, "", os.getpid())
        try:
            for path in _walk(paths):
                outcome = self.import_path(path, report, source, calling_ae, move_bad, report.session_id)
                if on_done is not None:
                    on_done(path, outcome)
        finally:
            flush = getattr(self.writer, "flush", None)
            if flush is not None:
                flush()
            self.end_session(report)
        return report

    def end_session(self, report: ImportReport) -> None:
        """Overridden by the Station to queue the end behind the records (see Indexer.end_session)."""
        assert report.session_id is not None
        self.index.end_session(report.session_id, report.stored + report.conflicts, 0, len(report.quarantined))

    def import_path(self, path: Path, report: ImportReport, source: str, calling_ae: str, move_bad: bool,
                    session_id: int | None) -> str:
        """Returns "stored", "duplicate", "conflict", "quarantined", "skipped", "zip" or "error"."""
        try:
            if not _has_preamble(path) and zipfile.is_zipfile(path):
                self._import_zip(path, report, source, calling_ae, session_id)
                return "zip"
            info = check_file(path)
            if info.sop_class == MEDIA_DIRECTORY:
                report.skipped.append((str(path), "DICOMDIR: a media index, not an object"))
                return "skipped"
        except BadDicom as exc:
            return self._quarantine(path, str(exc), report, source, move_bad)
        except FileNotFoundError:
            report.errors.append((str(path), "file vanished before it could be read"))
            log.warning("import: %s vanished before it could be read", path)
            return "error"
        except OSError as exc:
            report.errors.append((str(path), f"cannot read: {exc.strerror or exc}"))
            log.error("import: cannot read %s: %s", path, exc)
            return "error"
        try:
            placed = self.store.import_file(path, info)
        except FileNotFoundError:
            report.errors.append((str(path), "file vanished while it was being imported"))
            log.warning("import: %s vanished while it was being imported", path)
            return "error"
        report.count(placed)
        if placed.status == "conflict":
            log.warning("import: conflict: %s %s (%s) differs from the stored version; both kept (%s)",
                        info.modality, info.sop_uid, path.name, placed.relpath)
        if problems := value_problems(info):
            log.warning("import: stored %s %s as %s despite: %s", info.modality, path.name, placed.relpath,
                        "; ".join(problems))
        audit_object(info, placed, source=source, calling_ae=calling_ae, file=str(path))
        self.writer(IndexRecord(info, placed, source, calling_ae, time.time(), session_id))
        return placed.status

    def _quarantine(self, path: Path, reason: str, report: ImportReport, source: str, move: bool) -> str:
        try:
            self.store.quarantine(path, reason, move=move, details={"source": source})
        except FileNotFoundError:
            report.errors.append((str(path), "file vanished before it could be quarantined"))
            return "error"
        report.quarantined.append((str(path), reason))
        audit("quarantined", file=str(path), reason=reason, source=source)
        return "quarantined"

    def _import_zip(self, path: Path, report: ImportReport, source: str, calling_ae: str,
                    session_id: int | None) -> None:
        workdir = self.store.tmp_dir / f"zip-{secrets.token_hex(6)}"
        workdir.mkdir(mode=0o700)
        try:
            with zipfile.ZipFile(path) as zf:
                for n, member in enumerate(m for m in zf.infolist() if not m.is_dir()):
                    target = workdir / f"{n:06d}-{Path(member.filename).name[-80:] or 'member'}"
                    with zf.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    outcome = self.import_path(target, report, source, calling_ae, True, session_id)
                    if outcome == "quarantined":
                        report.quarantined[-1] = (f"{path}!{member.filename}", report.quarantined[-1][1])
        except zipfile.BadZipFile as exc:
            self._quarantine(path, f"broken ZIP archive: {exc}", report, source, True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield p


class BatchWriter:
    """Index writer for processes without a Station (``rtstation import``): commits every ``size`` records."""

    def __init__(self, index: Index, size: int = 200) -> None:
        self.index, self.size = index, size
        self._batch: list[IndexRecord] = []

    def __call__(self, record: IndexRecord) -> None:
        self._batch.append(record)
        if len(self._batch) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self._batch:
            self.index.add(self._batch)
            self._batch = []
