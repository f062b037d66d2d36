"""``durability = "fsync"`` with overlapped fsyncs keeps its promise, and the deferred audit records are never lost.

- The file's fsync runs on a pool while ingest checks the file, but ingest (whose result is the C-STORE status)
  returns only after the data were fsynced *before* the rename and the folder was fsynced *after* it.
- Concurrent renames into one folder share a directory fsync (group commit) without anyone returning early.
- A ``stored`` audit record is written at the latest when the index commits the object, on shutdown, and after a
  kill -9 by the start-up reconcile (marked ``recovered``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import BREAST
from rtstation_tui.engine import audit
from rtstation_tui.engine.intake.ingest import Announced, Destination, NetworkOrigin, STORED, ingest
from rtstation_tui.engine.intake.rebuild import reconcile
from rtstation_tui.engine.store.durable import Syncer
from rtstation_tui.engine.store.files import Store
from rtstation_tui.engine.store.index import Index
from waiting import wait_for

CT = BREAST[0]
ORIGIN = NetworkOrigin(calling_ae="ECLIPSE", peer="127.0.0.1:4242", assoc_id=1)


@pytest.fixture(autouse=True)
def no_audit_left() -> Iterator[None]:
    yield
    audit.configure(None)


def spooled(store: Store, src: Path = CT) -> Path:
    temp = store.temp_path()
    shutil.copy(src, temp)
    return temp


def audit_records(log_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(log_dir.glob("audit-*.jsonl")) for line in f.read_text().splitlines()]


def test_ingest_answers_only_after_the_file_and_then_its_folder_are_fsynced(tmp_path: Path) -> None:
    store = Store(tmp_path, "fsync")
    release = threading.Event()
    calls: list[tuple[str, bool]] = []  # (what was fsynced, was anything under a real name in the store yet)

    def fake_fsync(fd: int) -> None:
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        calls.append(("dir" if is_dir else "file", any(store.root.rglob("*.dcm"))))
        if not is_dir:
            release.wait(10)  # the disk is slow: the file's fsync takes until the test says so

    store.syncer.fsync = fake_fsync
    into = Destination(store, lambda record: None)
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(ingest(spooled(store), ORIGIN, into, Announced())))
    worker.start()
    wait_for(lambda: calls, timeout=10, what="the file's fsync to start")
    worker.join(0.3)
    assert worker.is_alive() and not result, "ingest returned (the sender would hear success) before its fsync"
    assert not any(store.root.rglob("*.dcm")), "the file got its real name before its data were on disk"
    release.set()
    worker.join(10)
    assert result and result[0].outcome == STORED
    assert calls == [("file", False), ("dir", True)], "data fsynced before the rename, the folder after it"


def test_renames_into_one_folder_share_a_directory_fsync_and_none_returns_early(tmp_path: Path) -> None:
    syncer = Syncer()
    first_started, release = threading.Event(), threading.Event()
    synced: list[int] = []

    def slow_fsync(fd: int) -> None:
        first_started.set()
        release.wait(10)
        synced.append(fd)

    syncer.fsync = slow_fsync
    done: list[int] = []
    first = threading.Thread(target=lambda: (syncer.sync_dir(str(tmp_path)), done.append(0)))
    first.start()
    first_started.wait(10)
    later = [threading.Thread(target=lambda i=i: (syncer.sync_dir(str(tmp_path)), done.append(i))) for i in (1, 2, 3)]
    for t in later:
        t.start()
    first.join(0.2)
    assert not done, "a rename was acknowledged while the only directory fsync was still running"
    release.set()
    for t in [first, *later]:
        t.join(10)
    assert sorted(done) == [0, 1, 2, 3]
    assert len(synced) == 2, f"renames made during one fsync share the next one, got {len(synced)} fsyncs"


def test_deferred_stored_records_are_written_by_the_index_commit_and_on_shutdown(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    audit.configure(log_dir)
    store, index = Store(tmp_path / "data", "os"), Index(tmp_path / "data")
    held: list[Any] = []
    result = ingest(spooled(store), ORIGIN, Destination(store, held.append), Announced())
    assert result.outcome == STORED
    assert not [r for r in audit_records(log_dir) if r["kind"] == "stored"], "written at once: not deferred"
    index.add(held)  # what the indexer does: the record is in the file before the row is committed
    assert [r["path"] for r in audit_records(log_dir) if r["kind"] == "stored"] == [result.placed.relpath]

    second = ingest(spooled(store, BREAST[1]), ORIGIN, Destination(store, lambda record: None), Announced())
    audit.configure(None)  # shutdown
    assert second.placed.relpath in [r["path"] for r in audit_records(log_dir) if r["kind"] == "stored"]


CRASH = """
import os, shutil, signal, sys
from pathlib import Path
from rtstation_tui.engine import audit
from rtstation_tui.engine.intake.ingest import Announced, Destination, NetworkOrigin, ingest
from rtstation_tui.engine.store.files import Store
data, logs, src = map(Path, sys.argv[1:4])
audit.configure(logs)
store = Store(data, "os")
temp = store.temp_path()
shutil.copy(src, temp)
result = ingest(temp, NetworkOrigin(calling_ae="ECLIPSE", peer="127.0.0.1:4242", assoc_id=1),
                Destination(store, lambda record: None), Announced())  # answered; the indexer never got to it
print(result.placed.relpath, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_9_between_the_response_and_the_audit_flush_is_recovered_at_start(tmp_path: Path) -> None:
    data, logs = tmp_path / "data", tmp_path / "logs"
    proc = subprocess.run([sys.executable, "-c", CRASH, str(data), str(logs), str(CT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    relpath = proc.stdout.strip()
    assert (data / "store" / relpath).exists()
    assert not [r for r in audit_records(logs) if r["kind"] == "stored"], "the crash came before the flush"
    audit.configure(logs)  # the next start: reconcile indexes the file and writes its record
    added, _ = reconcile(Store(data, "os"), Index(data))
    audit.configure(None)
    assert added == 1
    recovered = [r for r in audit_records(logs) if r["kind"] == "stored"]
    assert [(r["path"], r["recovered"]) for r in recovered] == [(relpath, True)]


def test_a_study_folder_removed_behind_the_folder_cache_is_made_again(tmp_path: Path) -> None:
    store = Store(tmp_path, "os")
    into = Destination(store, lambda record: None)
    first = ingest(spooled(store), ORIGIN, into, Announced())
    folder = (store.root / first.placed.relpath).parent
    shutil.rmtree(folder)  # a delete or retention pruned the emptied study folder
    second = ingest(spooled(store, BREAST[1]), ORIGIN, into, Announced())
    assert second.outcome == STORED and (store.root / second.placed.relpath).exists()
