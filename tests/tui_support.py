"""Shared pieces of the console tests: a deterministic store, an app factory, waiting on conditions in Pilot.

Why a deterministic store: snapshots must not change with the clock, ports or temp paths. The store is filled with
the importer (the network's code path), bundles are settled as after ``index --rebuild``, and received times are
pinned to one fixed instant.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")  # before Textual is imported: stable snapshots, fast tests

import waiting
from helpers import DATA, station_toml, write_config

from rtstation_tui.engine.config.model import Config, load_config
from rtstation_tui.engine.intake.importer import BatchWriter, Importer
from rtstation_tui.engine.store.index import Index
from rtstation_tui.engine.logsetup import setup_logging
from rtstation_tui.engine.plans.readiness import settled_states
from rtstation_tui.engine.store.files import Store
from rtstation_tui.synthetic import make_patient
from rtstation_tui.ui.app import StationApp

FIXED_TIME = time.mktime((2026, 1, 2, 9, 30, 0, 0, 0, -1))
NODES = """
[[nodes]]
name = "QA"
ae_title = "STORESCP"
host = "127.0.0.1"
port = 11200

[[nodes]]
name = "ARCHIVE"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242

[[nodes]]
name = "OLD_TPS"
ae_title = "OLDTPS"
host = "10.0.0.9"
port = 104
enabled = false
"""


def make_config(tmp_path: Path, port: int = 11112, extra: str = NODES) -> Config:
    return load_config(write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port, extra=extra)))


def fill_store(config: Config, tmp_path: Path, *, synthetic: bool = True, breast: bool = True) -> None:
    """breast_boost (plan B1, CTs missing) and one complete synthetic patient with fixed UIDs (either optional)."""
    paths = sorted((DATA / "breast_boost").glob("*.dcm")) if breast else []
    if synthetic:
        make_patient(tmp_path / "syn", "SYN001", name="DEMO^ANNA", slices=3, rows=8, cols=8, label="PROST1",
                     machine="TrueBeam1", seed="rtstation-tui-snapshots")
        paths.append(tmp_path / "syn")
    store, index = Store(config.data_dir, "os"), Index(config.data_dir)
    store.load_known(index.known_pairs())
    writer = BatchWriter(index)
    Importer(store, index, writer).run(paths, "import", "ECLIPSE")
    flush = getattr(writer, "flush", None)
    if callable(flush):
        flush()
    conn = index.conn
    conn.execute("UPDATE instances SET received_at=?", (FIXED_TIME,))
    index.save_bundle_states(settled_states(index, index.patient_ids()))
    index.mark_evaluated(index.sessions_to_evaluate())
    conn.execute("UPDATE bundles SET updated=?", (FIXED_TIME,))
    index.close()


async def until(pilot: Any, condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Let the app run until ``condition()`` is truthy; fail after ``timeout`` seconds (never a bare sleep)."""
    return await waiting.until(condition, timeout, what, pause=pilot.pause)


def screen_text(app: Any) -> str:
    """The screen as plain text (what ``tmux capture-pane`` would show), for assertions and debugging."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


REAL = object()


def make_app(config: Config, *, listen: bool = False, sender: Any = REAL, theme: str | None = None) -> StationApp:
    """The console on ``config``. ``sender``: the station's real one, a test double, or None (a build without)."""
    setup_logging(config, stream=None, file=False)  # as run_console does (minus the file): levels set
    app = StationApp(config, theme=theme, listen=listen)
    app.animation_level = "none"
    if sender is not REAL:
        app.station.sender = sender  # type: ignore[assignment]
    return app


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    node: str
    rtt_ms: float | None
    message: str


@dataclass
class QueueRow:
    id: int
    node: str
    plan_uid: str
    label: str
    state: str
    done: int
    total: int
    failed: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    error: str = ""


class FakeQueue:
    def __init__(self) -> None:
        self.rows: list[QueueRow] = []

    def jobs(self, active_only: bool = False) -> list[QueueRow]:
        return [r for r in self.rows if not active_only or r.state in ("queued", "sending", "waiting-retry")]

    def history(self, plan_uid: str) -> list[QueueRow]:
        return [r for r in self.rows if r.plan_uid == plan_uid]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out


class FakeSender:
    """The sender's API as the console uses it (``station.sender``), recording calls instead of sending."""

    def __init__(self, down: tuple[str, ...] = ("ARCHIVE",)) -> None:
        self.sent: list[tuple[str, list[str], str]] = []
        self.transforms: dict[int, str] = {}  # send number → transform, for sends of transformed copies
        self.echoed: list[str] = []
        self.down = down
        self.queue = FakeQueue()

    def send_plan(self, plan_uid: str, nodes: list[str], *, parts: Any = None, origin: str = "manual",
                  force: bool = False, transform: str = "") -> list[int]:
        ids = []
        for node in nodes:
            self.sent.append((plan_uid, [node], origin))
            ids.append(len(self.sent))
            if transform:
                self.transforms[len(self.sent)] = transform
            self.queue.rows.append(QueueRow(len(self.sent), node, plan_uid, "", "queued", 0, 4))
        return ids

    def echo(self, node: str) -> EchoResult:
        self.echoed.append(node)
        if node in self.down:
            return EchoResult(False, node, None, "connection refused")
        return EchoResult(True, node, 1.5, "")

    def retry(self, job_id: int) -> bool:
        return self._set(job_id, "failed", "queued")

    def cancel(self, job_id: int) -> bool:
        return self._set(job_id, "queued", "cancelled") or self._set(job_id, "waiting-retry", "cancelled")

    def _set(self, job_id: int, old: str, new: str) -> bool:
        for row in self.queue.rows:
            if row.id == job_id and row.state == old:
                row.state = new
                return True
        return False
