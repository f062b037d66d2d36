"""Process-level guards: one serving process per data_dir, and whether a recorded pid still runs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StationLocked(RuntimeError):
    pass


class DataDirLock:
    """One serving process per data_dir: a second ``serve`` (or ``index --rebuild`` under a server) is refused."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "station.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise StationLocked(f"{self.path.parent} is in use by another rtstation process (pid {holder or '?'})"
                                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
