"""The watched import folder (``[import]``): files dropped there are imported like objects received over the network
(same store, index, bundling and readiness; calling AE ``source_ae``, default ``IMPORT_FOLDER``), so rules can
forward them.

Why it works this way:
- watchdog's observer only *tells* us that a path changed (from its own thread, handed to the loop thread-safely
  through the ticker's wake-up); whether a file is ready is decided by polling ``stat``: a file counts once its size
  and mtime have not changed for ``settle_seconds``. A copy still being written is never imported half.
- A full rescan at start (files already there) and every ``RESCAN_SECONDS`` (inotify can overflow, directories can
  be moved in whole) means no file is missed.
- ``after_import``: ``delete``, ``move`` (to ``data_dir/imported/``, keeping sub-folders) or ``keep``. Kept files are
  remembered with their size and mtime (in the index), so they are not imported again and again; a kept file that
  changes is imported again (its new bytes may be a new object). Broken files are moved to quarantine with a reason.
- A missing or unreadable folder is an error *state* (logged, posted as ``ImportFolderState``, shown by the
  console), never an exception: the receiver keeps running, and the folder is watched as soon as it appears.
- All file work runs in worker threads; the loop only schedules.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..audit import audit
from ..config.model import Config
from ..events import EventBus, ImportFolderState
from ..loops import Ticker
from ..dicom.header import BadDicom
from .holding import Holds
from .ingest import FolderOrigin, check_file, has_preamble

log = logging.getLogger("rtstation.watcher")
RESCAN_SECONDS = 30.0
RETRY_SECONDS = 2.0  # how often a missing folder is looked for again
FAILED_PAUSE = 10.0  # after an import failed as a whole (store full)
HOLD_SECONDS, HOLD_SETTLES = 30.0, 10  # a broken file unchanged this long (or settles) is complete: quarantined
BATCH = 200  # files per import session; a stop waits for one batch at most
SOURCE = FolderOrigin.source  # "import-folder"
OFF, WATCHING, ERROR = "off", "watching", "error"


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time this size and mtime were first seen


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: note the path and wake the loop, nothing else."""

    def __init__(self, watcher: ImportWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "modified", "moved", "closed"):
            return
        if event.is_directory and event.event_type not in ("created", "moved"):
            return  # a folder's mtime changes with every file created in it: the files' own events suffice
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        if event.event_type == "closed":
            self.watcher.holds.closed(path)
        self.watcher.note(path, is_dir=event.is_directory)


class ImportWatcher:
    """Station service for ``[import] folder``. ``state``/``detail`` tell the console what is going on."""

    def __init__(self, config: Config, bus: EventBus) -> None:
        self.config = config
        self.cfg = config.import_
        self.bus = bus
        self.folder: Path | None = self.cfg.folder
        self.state, self.detail = OFF, ""
        self.imported_dir = config.data_dir / "imported"
        self._importer: Any = None
        self._index: Any = None
        self._observer: Any = None
        self._lock = threading.Lock()
        self._incoming: set[Path] = set()  # paths named by the observer, not looked at yet
        self._dirs: set[Path] = set()  # directories to scan (moved in whole, created)
        self._seen: dict[Path, _Seen] = {}  # candidates waiting to settle
        self._done: dict[str, tuple[int, int]] = {}  # kept or unreadable files: (size, mtime_ns) when handled
        self._outside: set[str] = set()  # symbolic links out of the folder, already refused (and logged)
        self.holds = Holds(max(HOLD_SECONDS, HOLD_SETTLES * self.cfg.settle_seconds))
        self._next_rescan = 0.0
        self._pause_until = 0.0
        self._stopping = threading.Event()
        self._published: tuple[str, str, int] | None = None
        self._ticker = Ticker("import-folder", self._step, self._interval)

    # -- service ---------------------------------------------------------------------------------------------
    async def start(self, station: Any) -> None:
        if self.folder is None:
            self._publish()
            return
        self._importer = station.importer()
        self._index = station.index
        await asyncio.to_thread(self._load_done)
        self._ticker.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self.folder is not None:
            await self._ticker.stop(timeout=120)
        await asyncio.to_thread(self._stop_observer)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._seen) + len(self._incoming)

    def note(self, path: Path, is_dir: bool = False) -> None:
        """A path changed (any thread). Only new paths wake the loop: a big copy must not cost a step per write."""
        with self._lock:
            if is_dir:
                self._dirs.add(path)
            elif path in self._seen or path in self._incoming:
                return
            else:
                self._incoming.add(path)
        self._ticker.kick()

    def _interval(self) -> float:
        if self.state != WATCHING:
            return RETRY_SECONDS
        with self._lock:
            busy = bool(self._seen or self._incoming or self._dirs)
        if busy:
            return min(1.0, max(0.05, self.cfg.settle_seconds / 4))
        return max(0.05, self._next_rescan - time.monotonic())

    async def _step(self) -> None:
        if self.state != WATCHING:
            await asyncio.to_thread(self._try_watch)
        if self.state == WATCHING:
            ready = await asyncio.to_thread(self._survey)
            for i in range(0, len(ready), BATCH):
                if self._stopping.is_set():
                    break
                await asyncio.to_thread(self._import, ready[i:i + BATCH])
        self._publish()

    def _publish(self) -> None:
        now = (self.state, self.detail, self.pending)
        if now != self._published:
            self._published = now
            self.bus.post(ImportFolderState(self.state, str(self.folder or ""), self.detail, now[2]))

    # -- watching (worker threads) ---------------------------------------------------------------------------
    def folder_problem(self) -> str | None:
        """Why the folder cannot be watched, or None."""
        folder = self.folder
        assert folder is not None
        data = self.config.data_dir.resolve()
        if not folder.exists():
            return f"import folder {folder} does not exist"
        if not folder.is_dir():
            return f"import folder {folder} is not a folder"
        real = folder.resolve()
        if data.is_relative_to(real) or any(real.is_relative_to(data / d)
                                             for d in ("store", "tmp", "quarantine", "imported")):
            return f"import folder {folder} overlaps the station's own files in {data}"
        need = os.R_OK | os.X_OK | (0 if self.cfg.after_import == "keep" else os.W_OK)
        if not os.access(folder, need):
            what = "readable" if self.cfg.after_import == "keep" else "readable and writable"
            return f"import folder {folder} is not {what} by this process (after_import = {self.cfg.after_import})"
        return None

    def _try_watch(self) -> None:
        problem = self.folder_problem()
        if problem is not None:
            self._set_state(ERROR, problem)
            return
        assert self.folder is not None
        try:
            observer = Observer()
            observer.schedule(_Handler(self), str(self.folder), recursive=self.cfg.recursive)
            observer.start()
        except OSError as exc:
            self._set_state(ERROR, f"cannot watch import folder {self.folder}: {exc.strerror or exc}")
            return
        self._observer = observer
        self._next_rescan = 0.0  # files already there are picked up now
        self._set_state(WATCHING, "")

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) == (self.state, self.detail):
            return
        self.state, self.detail = state, detail
        if state == ERROR:
            log.error("%s; the receiver keeps running, the folder is looked for every %.0f s", detail, RETRY_SECONDS)
        else:
            log.info("watching import folder %s (settle %.1f s, after import: %s, calling AE %s)", self.folder,
                     self.cfg.settle_seconds, self.cfg.after_import, self.cfg.source_ae)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(10)

    def _wanted(self, path: Path) -> bool:
        assert self.folder is not None
        try:
            rel = path.relative_to(self.folder)
        except ValueError:
            return False
        parts = rel.parts
        if not parts or (len(parts) > 1 and not self.cfg.recursive):
            return False
        if any(fnmatch.fnmatch(p, pat) for p in parts for pat in self.cfg.exclude):
            return False
        return any(fnmatch.fnmatch(parts[-1], pat) for pat in self.cfg.include)

    def _scan(self, top: Path) -> set[Path]:
        found: set[Path] = set()
        for root, dirs, files in os.walk(top):
            if not self.cfg.recursive and Path(root) != self.folder:
                dirs.clear()
                continue
            found.update(Path(root) / f for f in files)
        return found

    def _survey(self) -> list[Path]:
        """Look at every candidate; return the files stable for settle_seconds (oldest first)."""
        problem = self.folder_problem()
        if problem is not None:
            self._stop_observer()
            self._set_state(ERROR, problem)
            return []
        assert self.folder is not None
        now = time.monotonic()
        with self._lock:
            paths, self._incoming = self._incoming, set()
            dirs, self._dirs = self._dirs, set()
        if now >= self._next_rescan:
            self._next_rescan = now + RESCAN_SECONDS
            dirs.add(self.folder)
        for d in dirs:
            paths |= self._scan(d)
        with self._lock:
            candidates = set(self._seen) | paths
        ready: list[tuple[float, Path]] = []
        for p in candidates:
            st = self._stat(p) if self._wanted(p) else None
            if st is None or self._done.get(str(p)) == st:
                with self._lock:
                    self._seen.pop(p, None)
                continue
            with self._lock:
                seen = self._seen.get(p)
                if seen is None or (seen.size, seen.mtime_ns) != st:
                    self._seen[p] = _Seen(st[0], st[1], now)
                elif (now - seen.since >= self.cfg.settle_seconds and now >= self._pause_until
                      and self.holds.due(p, st, now - seen.since)):
                    ready.append((seen.since, p))
        return [p for _, p in sorted(ready)]

    def _stat(self, p: Path) -> tuple[int, int] | None:
        try:
            st = p.stat()
        except OSError:
            return None
        if not os.path.isfile(p) or not self._inside(p):
            return None
        return st.st_size, st.st_mtime_ns

    def _inside(self, p: Path) -> bool:
        """Whether ``p``, symlinks resolved, is still in the folder. A symlink out of it is never followed: whoever
        may write into the folder could otherwise make the station import (or copy into quarantine) any file it
        can read, such as a root-only one. Refused once per link, with a warning."""
        assert self.folder is not None
        real = Path(os.path.realpath(p))
        if real.is_relative_to(os.path.realpath(self.folder)):
            return True
        if str(p) not in self._outside:
            self._outside.add(str(p))
            log.warning("import folder: %s is a symbolic link to %s, outside the folder: not followed, left alone",
                        p, real)
            audit("import_folder", file=str(p), outcome="refused", action="left (symbolic link out of the folder)",
                  calling_ae=self.cfg.source_ae)
        return False

    # -- importing (worker thread) ---------------------------------------------------------------------------
    def _import(self, files: list[Path]) -> None:
        stats = {p: self._stat(p) for p in files}
        files = [p for p in files if stats[p] is not None and not self._hold_if_incomplete(p, stats[p])]
        if not files:
            return  # gone, turned into a link out of the folder, or held
        outcomes: dict[Path, str] = {}
        try:
            report = self._importer.run(files, SOURCE, self.cfg.source_ae, move_bad=True, kind=FolderOrigin,
                                        on_done=lambda p, o: outcomes.__setitem__(p, o))
        except OSError as exc:  # the store cannot take them now (disk full, ...): they stay and are tried again
            self._pause_until = time.monotonic() + FAILED_PAUSE
            log.error("import folder: importing %d files failed (%s); trying again in %.0f s", len(files), exc,
                      FAILED_PAUSE)
            return
        for p in files:
            with self._lock:
                self._seen.pop(p, None)
            self.holds.forget(p)
            outcome = outcomes.get(p, "error")
            action = self._after(p, outcome, stats[p])
            audit("import_folder", file=str(p), outcome=outcome, action=action, calling_ae=self.cfg.source_ae)
        log.info("import folder: %d files: stored %d, duplicates %d, conflicts %d, quarantined %d, errors %d",
                 len(files), report.stored, report.duplicates, report.conflicts, len(report.quarantined),
                 len(report.errors))
        for f, reason in report.quarantined:
            log.warning("import folder: quarantined %s: %s", f, reason)
        for f, reason in report.errors:
            log.error("import folder: %s: %s", f, reason)

    def _hold_if_incomplete(self, p: Path, st: tuple[int, int] | None) -> bool:
        """True when ``p`` fails the store's check while it may still grow: it is held (see ``holding``)."""
        assert st is not None
        with self._lock:
            seen = self._seen.get(p)
        stable_for = time.monotonic() - seen.since if seen is not None else 0.0
        if self.holds.complete(p, st, stable_for):
            return False  # whatever it is now, it stays so: ingest stores or quarantines it
        try:
            if not has_preamble(p) and zipfile.is_zipfile(p):
                return False
            check_file(p)
        except BadDicom as exc:
            self.holds.hold(p, st, str(exc))
            return True
        except OSError:
            return False  # the importer reports it
        return False

    def _after(self, p: Path, outcome: str, st: tuple[int, int] | None) -> str:
        """Apply after_import to a file that was imported; returns what was done with it."""
        if outcome == "quarantined":
            return "quarantined"
        if not p.exists():
            return "gone"
        if outcome == "error":  # unreadable: not again until it changes (the error is logged once)
            if st is not None:
                self._done[str(p)] = st
            return "left (error)"
        try:
            if self.cfg.after_import == "delete":
                p.unlink()
                return "deleted"
            if self.cfg.after_import == "move":
                return f"moved to {self._move(p)}"
        except OSError as exc:
            log.error("import folder: %s was imported but cannot be %sd: %s; it is kept and not imported again",
                      p, self.cfg.after_import, exc.strerror or exc)
        if st is not None:
            self._remember(p, st)
        return "kept"

    def _move(self, p: Path) -> Path:
        assert self.folder is not None
        target = self.imported_dir / p.relative_to(self.folder)
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{p.stem}~{n}{p.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        try:
            os.replace(p, target)
        except OSError:
            shutil.move(str(p), str(target))  # another filesystem
        return target

    def _remember(self, p: Path, st: tuple[int, int]) -> None:
        self._done[str(p)] = st
        self._index.conn.execute("INSERT OR REPLACE INTO import_kept VALUES (?,?,?,?)",
                                 (str(p), st[0], st[1], time.time()))

    def _load_done(self) -> None:
        for r in self._index.conn.execute("SELECT path, size, mtime_ns FROM import_kept"):
            self._done[r[0]] = (r[1], r[2])
