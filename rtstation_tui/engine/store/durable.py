"""fsync off the receive path's thread, and one directory fsync for many files: ``durability = "fsync"`` kept, not
serialised.

Why: an fsync of a 0.5 MB file plus the fsync of its directory cost ~0.7 ms on the development VM's disk, more than
everything else the station does per instance. The promise stays (a file is on disk under its real name before the
sender hears success); what changes is that nothing waits for an fsync while it could work:

- ``begin(path)`` starts the file's fsync on a small pool as soon as the dataset is complete; the caller checks the
  header and structure meanwhile (the fsync releases the GIL) and waits for it (``Pending.wait``) right before the
  rename, so the data are durable before the file has its name. Each caller waits for its own file only.
- ``sync_dir(dir)`` is a group commit: a rename made before a directory fsync started is covered by it, so
  concurrent associations storing into the same study folder share one directory fsync instead of queueing one each.

``fsync`` is the hook tests replace (``tests/unit/test_durable.py``: the C-STORE response waits for it).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

WORKERS = 4  # concurrent file fsyncs: one per association of a busy receive, more only queue in the disk


class Pending:
    """A file fsync under way; ``wait()`` returns once it is done and raises its OSError if it failed."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def wait(self) -> None:
        self._future.result()


class _DirState:
    __slots__ = ("requested", "done", "running")

    def __init__(self) -> None:
        self.requested = self.done = 0
        self.running = False


class Syncer:
    """The store's fsyncs: files on a pool, directories as a group commit."""

    def __init__(self, fsync: Callable[[int], None] = os.fsync) -> None:
        self.fsync = fsync
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._cond = threading.Condition()
        self._dirs: dict[str, _DirState] = {}

    def begin(self, path: str | os.PathLike[str]) -> Pending:
        """Start fsyncing ``path`` (opened here, closed by the pool thread); raises OSError if it cannot be opened."""
        fd = os.open(path, os.O_RDONLY)
        try:
            return Pending(self._executor().submit(self._sync_and_close, fd))
        except BaseException:
            os.close(fd)
            raise

    def sync_file(self, path: str | os.PathLike[str]) -> None:
        """fsync ``path`` here and now."""
        self._sync_and_close(os.open(path, os.O_RDONLY))

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="rtstation-fsync")
        return self._pool

    def _sync_and_close(self, fd: int) -> None:
        try:
            self.fsync(fd)
        finally:
            os.close(fd)

    def sync_dir(self, directory: str) -> None:
        """Return once an fsync of ``directory`` that started after this call began has finished (raises its
        OSError if ours failed)."""
        with self._cond:
            state = self._dirs.get(directory)
            if state is None:
                state = self._dirs[directory] = _DirState()
            state.requested += 1
            mine = state.requested
            while state.running and state.done < mine:
                self._cond.wait()
            if state.done >= mine:
                return  # a later-started fsync of this directory covered our rename
            state.running, covers = True, state.requested
        ok = False
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self.fsync(fd)
            finally:
                os.close(fd)
            ok = True
        finally:
            with self._cond:
                state.running = False
                if ok:  # a failed fsync covers nobody: each waiter then tries itself and sees its own error
                    state.done = max(state.done, covers)
                if state.done >= state.requested and len(self._dirs) > 256:
                    self._dirs.pop(directory, None)  # bounded: the study folders of a long run come and go
                self._cond.notify_all()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
