"""Import of files and folders (``rtstation import``, the watched import folder): walks them, expands ZIP archives
(member names are never used as paths: no zip-slip) and hands each file to ``ingest`` (the network's path: same
checks, store, audit and index); this module only turns the outcomes into an ``ImportReport``. Non-DICOM or broken
files are quarantined with the reason beside them, never deleted.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..store.index import Index, IndexRecord
from ..store.files import Placed, Store
from .ingest import (FAILED, QUARANTINED, SKIPPED, Destination, ImportOrigin, Ingested, has_preamble, ingest,
                     quarantine)

log = logging.getLogger("rtstation.import")


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


class Importer:
    """Imports into ``store``; ``writer`` receives each record (the Station's indexer, or a batch writer)."""

    def __init__(self, store: Store, index: Index, writer: Callable[[IndexRecord], None]) -> None:
        self.store = store
        self.index = index
        self.writer = writer
        self._into = Destination(store, writer)

    def run(self, paths: Iterable[Path], source: str, calling_ae: str, *, move_bad: bool = False,
            on_done: Callable[[Path, str], None] | None = None,
            kind: type[ImportOrigin] = ImportOrigin) -> ImportReport:
        """Import every file below ``paths`` in one session. ``on_done(path, outcome)`` is told each file's fate.

        ``move_bad``: broken files are moved into quarantine (the watched folder consumes its files); otherwise a
        copy goes there and the source is left alone (a one-shot import must never alter the user's folder or CD).
        ``kind``: the origin each file is ingested with (``FolderOrigin`` for the watched folder).
        """
        report = ImportReport()
        report.session_id = self.index.open_session("import", source, calling_ae, "", os.getpid())
        try:
            for path in _walk(paths):
                origin = kind(path=path, calling_ae=calling_ae, session_id=report.session_id, source=source,
                              consume_bad=move_bad)
                outcome = self.import_path(path, report, origin)
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

    def import_path(self, path: Path, report: ImportReport, origin: ImportOrigin) -> str:
        """Returns "stored", "duplicate", "conflict", "quarantined" (for an archive: it was), "skipped", "zip" or
        "error"."""
        try:
            if not has_preamble(path) and zipfile.is_zipfile(path):
                return self._import_zip(path, report, origin)
        except OSError as exc:
            return self._error(path, report, "read", exc)
        return self._count(path, report, ingest(path, origin, self._into))

    def _count(self, path: Path, report: ImportReport, result: Ingested) -> str:
        """The report's counts for what ``ingest`` did; the outcome for ``on_done``."""
        if result.outcome == QUARANTINED:
            report.quarantined.append((str(path), result.reason))
        elif result.outcome == SKIPPED:
            report.skipped.append((str(path), result.reason))
        elif result.outcome == FAILED:
            assert result.error is not None
            return self._error(path, report, result.stage, result.error)
        else:
            assert result.placed is not None
            report.count(result.placed)
        return result.outcome

    @staticmethod
    def _error(path: Path, report: ImportReport, stage: str, exc: OSError) -> str:
        """A file that vanished or cannot be read is reported and left alone; a store that cannot take files (disk
        full) raises, so the whole run fails and the watched folder tries again later."""
        if isinstance(exc, FileNotFoundError):
            when = {"read": "before it could be read", "place": "while it was being imported",
                    "quarantine": "before it could be quarantined"}[stage]
            report.errors.append((str(path), f"file vanished {when}"))
            if stage != "quarantine":
                log.warning("import: %s vanished %s", path, when)
            return "error"
        if stage != "read":
            raise exc
        report.errors.append((str(path), f"cannot read: {exc.strerror or exc}"))
        log.error("import: cannot read %s: %s", path, exc)
        return "error"

    def _import_zip(self, path: Path, report: ImportReport, origin: ImportOrigin) -> str:
        """Each member is extracted to a temp file of ours and ingested from there (so it is moved, not copied,
        into quarantine); member names never become paths.

        A member that cannot be extracted (encrypted, a compression method Python lacks, corrupt data) does not stop
        the others; the archive itself is then quarantined with the reason (the user must supply it differently),
        and the outcome is "quarantined", so the watched folder never sees it again. Returns "zip" otherwise."""
        workdir = self.store.tmp_dir / f"zip-{secrets.token_hex(6)}"
        workdir.mkdir(mode=0o700)
        unreadable: list[str] = []
        try:
            with zipfile.ZipFile(path) as zf:
                for n, member in enumerate(m for m in zf.infolist() if not m.is_dir()):
                    target = workdir / f"{n:06d}-{Path(member.filename).name[-80:] or 'member'}"
                    why = _extract(zf, member, target)
                    if why is not None:
                        unreadable.append(f"{member.filename}: {why}")
                        continue
                    outcome = self.import_path(target, report, replace(origin, path=target, consume_bad=True))
                    if outcome == "quarantined":
                        report.quarantined[-1] = (f"{path}!{member.filename}", report.quarantined[-1][1])
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
            unreadable.insert(0, f"broken ZIP archive: {exc}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if not unreadable:
            return "zip"
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        reason = unreadable[0] if unreadable[0].startswith("broken ZIP") else \
            f"ZIP member {unreadable[0]}{more}; the other members were imported"
        return self._count(path, report, quarantine(path, reason, origin, self.store))


def _extract(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> str | None:
    """Extract one member to ``target``; None, or why it cannot be (the archive goes on with its other members)."""
    if member.flag_bits & 0x1:
        return "encrypted (password required); export it without a password"
    try:
        with zf.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except NotImplementedError as exc:  # e.g. compression method 99 (AES), 9 (Deflate64)
        return f"{exc} (method {member.compress_type}); re-pack it with Deflate or Store"
    except (RuntimeError, zipfile.BadZipFile, EOFError, zlib.error) as exc:  # corrupt data, bad CRC
        return f"cannot be extracted: {exc}"
    return None


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
