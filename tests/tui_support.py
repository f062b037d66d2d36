"""Shared pieces of the console tests: a deterministic store, an app factory, waiting on conditions in Pilot.

Why a deterministic store: snapshots must not change with the clock, ports or temp paths. The store is filled with
the importer (the network's code path), bundles are settled as after ``index --rebuild``, and received times are
pinned to one fixed instant.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")  # before Textual is imported: stable snapshots, fast tests

import waiting
from helpers import DATA, station_toml, write_config

from rtstation_tui.engine.api import (DeletePreview, DeleteRefused, DvhCurve, EchoOutcome, PlanMetrics, StationAPI,
                                     StationStatus)
from rtstation_tui.engine.config.model import Config, load_config
from rtstation_tui.engine.config.rules import RuleConfig
from rtstation_tui.engine.events import Subscriber
from rtstation_tui.engine.intake.importer import BatchWriter, Importer
from rtstation_tui.engine.store.index import Index
from rtstation_tui.engine.logsetup import setup_logging
from rtstation_tui.engine.plans.queries import (JobInfo, LooseObject, PatientRow, PlanDetails, PlanRow, PlanVerdicts,
                                                SendPreview, latest_commitments, latest_sends,
                                                send_attention)
from rtstation_tui.engine.plans.selection import Selection, SelectionPreview
from rtstation_tui.engine.plans.readiness import settled_states
from rtstation_tui.engine.qr.pull import RemotePlan, RemoteUnavailable
from rtstation_tui.engine.station import Station
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


def snapshot_config(tmp_path: Path, monkeypatch: Any) -> Config:
    """The snapshots' configuration: relative paths from ``tmp_path``, free disk and the log clock pinned."""
    from rtstation_tui.ui.widgets import logpane

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Station, "free_disk_mb", lambda self: 123_456.0)
    monkeypatch.setattr(logpane, "clock", lambda ts: "09:30:00")
    write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", 11112, extra=NODES))
    return load_config("rtstation.toml")


def fill_store(config: Config, tmp_path: Path, *, synthetic: bool = True, breast: bool = True) -> None:
    """breast_boost (plan B1, CTs missing) and one complete synthetic patient with fixed UIDs (either optional)."""
    paths = sorted((DATA / "breast_boost").glob("*.dcm")) if breast else []
    if synthetic:
        make_patient(tmp_path / "syn", "SYN001", name="DEMO^ANNA", slices=3, rows=8, cols=8, label="PROST1",
                     machine="TrueBeam1", seed="rtstation-tui-snapshots")
        paths.append(tmp_path / "syn")
    import_settled(config, paths)


def fill_plans(config: Config, tmp_path: Path, plans: Sequence[tuple[str, str, str]], slices: int = 2) -> dict[str, str]:
    """Synthetic plans (patient ID, patient name, label), several per patient if asked; returns label → plan UID."""
    out, paths = {}, []
    for pid, name, label in plans:
        folder = tmp_path / "plans" / f"{pid}-{label}"
        out[label] = make_patient(folder, pid, name=name, slices=slices, rows=8, cols=8, label=label,
                                  seed=f"console-{pid}-{label}").plan_uid
        paths.append(folder)
    import_settled(config, paths)
    return out


def import_settled(config: Config, paths: Sequence[Path], source_ae: str = "ECLIPSE") -> None:
    """Import ``paths`` as sent by ``source_ae``, bundles settled and received times pinned (see the top)."""
    store, index = Store(config.data_dir, "os"), Index(config.data_dir)
    store.load_known(index.known_pairs())
    writer = BatchWriter(index)
    Importer(store, index, writer).run(list(paths), "import", source_ae)
    writer.flush()
    conn = index.conn
    conn.execute("UPDATE instances SET received_at=?", (FIXED_TIME,))
    conn.execute("UPDATE patients SET updated=?", (FIXED_TIME,))  # the tree's newest-first order: ties by ID
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


def screen_segments(app: Any) -> list[Any]:
    """The screen as Rich segments (text and style, link and meta included), in the order ``screen_text`` reads."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return [segment for line in update.strips for strip in line for segment in strip]


REAL = object()


def make_app(config: Config, *, listen: bool = False, sender: Any = REAL, theme: str | None = None) -> StationApp:
    """The console on ``config``. ``sender``: the station's real one, a FakeSender, or None (a station that cannot
    send). With a double the console talks to a ``FakeStation``: the real station's listings, the double's jobs."""
    setup_logging(config, stream=None, file=False)  # as run_console does (minus the file): levels set
    app = StationApp(config, theme=theme, listen=listen)
    app.animation_level = "none"
    app.owner = ""  # snapshots: no pid in the header (tests/tui/test_attach.py checks it)
    if sender is not REAL:
        assert isinstance(app.station, Station)  # not attached: the console runs it
        app.api = FakeStation(app.station, sender)
    return app


QueueRow = JobInfo  # the fake queue's rows are what the console is shown


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
    """A send queue and C-ECHO that record calls instead of sending (the station's side of FakeStation)."""

    def __init__(self, down: tuple[str, ...] = ("ARCHIVE",)) -> None:
        self.sent: list[tuple[str, list[str], str]] = []
        self.transforms: dict[int, str] = {}  # send number → transform, for sends of transformed copies
        self.echoed: list[str] = []
        self.down = down
        self.has: set[tuple[str, str]] = set()  # (plan UID, node) the node already acknowledged
        self.forced: list[tuple[str, str]] = []
        self.queue = FakeQueue()
        self.selections: list[tuple[Selection, str, str]] = []  # (what, node, transform) of non-plan sends

    def send_plan(self, plan_uid: str, nodes: list[str], *, parts: Any = None, origin: str = "manual",
                  force: bool = False, transform: str = "") -> list[int]:
        ids = []
        for node in nodes:
            if (plan_uid, node) in self.has and not force:  # acknowledged before: the real queue skips it
                continue
            self.forced += [(plan_uid, node)] if force else []
            self.sent.append((plan_uid, [node], origin))
            ids.append(len(self.sent))
            if transform:
                self.transforms[len(self.sent)] = transform
            self.queue.rows.append(QueueRow(len(self.sent), node, plan_uid, "", "queued", 0, 4, created=FIXED_TIME,
                                            origin=origin))
        return ids

    def send_selection(self, selection: Selection, nodes: Sequence[str], transforms: Mapping[str, str],
                       force: bool) -> list[int]:
        ids = []
        for node in nodes:
            self.selections.append((selection, node, transforms.get(node, "")))
            ids.append(1000 + len(self.selections))
        return ids

    def echo(self, node: str) -> EchoOutcome:
        self.echoed.append(node)
        if node in self.down:
            return EchoOutcome(node, False, None, "connection refused")
        return EchoOutcome(node, True, 1.5, "")

    def retry(self, job_id: int) -> bool:
        return self._set(job_id, "failed", "queued")

    def cancel(self, job_id: int) -> bool:
        return self._set(job_id, "queued", "cancelled") or self._set(job_id, "waiting-retry", "cancelled")

    def _set(self, job_id: int, old: str, new: str) -> bool:
        rows = self.queue.rows
        for i, row in enumerate(rows):
            if row.id == job_id and row.state == old:
                rows[i] = replace(row, state=new)
                return True
        return False


class FakeStation:
    """``StationAPI`` over a real (not started, or started) station's index, with sends going to a FakeSender.

    ``sender=None``: a station that cannot send now (as one whose start failed): status says why."""

    def __init__(self, real: Station, sender: FakeSender | None) -> None:
        self.real = real
        self.sender = sender
        self.remote: dict[tuple[str, str], list[RemotePlan]] = {}  # (node, patient) → what the node "holds"
        self.retrieved: list[tuple[str, str, tuple[str, ...]]] = []  # retrieves started (node, patient, plans)

    @property
    def config(self) -> Config:
        return self.real.config

    def status(self) -> StationStatus:
        status = self.real.status()
        return status if self.sender is not None else replace(status, send_unavailable="this station has no sender")

    def patients(self, text: str = "", only: Sequence[str] | None = None) -> list[PatientRow]:
        latest: dict[str, dict[str, str]] = {}  # the double's jobs, as the real queue's latest_states gives them
        for job in sorted(self.sender.queue.rows if self.sender is not None else [], key=lambda j: j.id):
            latest.setdefault(job.plan_uid, {})[job.node] = job.state
        return send_attention(self.real.index.conn, self.real.patients(text, only), latest)

    def label_matches(self, text: str, limit: int = 20) -> list[str]:
        return self.real.label_matches(text, limit)

    def plans_of(self, patient_id: str) -> list[PlanRow]:
        return [replace(p, sends=latest_sends(h), commitments=latest_commitments(h))
                for p in self.real.plans_of(patient_id) for h in [self._history(p.plan_uid)]]

    def unconnected(self, patient_id: str) -> list[LooseObject]:
        return self.real.unconnected(patient_id)

    def plan_details(self, plan_uid: str) -> PlanDetails | None:
        d = self.real.plan_details(plan_uid)
        return replace(d, history=tuple(self._history(plan_uid))) if d is not None else None

    def plan_metrics(self, where: Sequence[str] = (), sort: str = "-received", limit: int = 1000) -> list[PlanMetrics]:
        return self.real.plan_metrics(where, sort, limit)

    def dvh_curves(self, plan_uid: str) -> list[DvhCurve]:
        return self.real.dvh_curves(plan_uid)

    def received_since(self, since: float) -> int:
        return self.real.received_since(since)

    def free_disk_mb(self) -> float:
        return self.real.free_disk_mb()

    def job_counts(self) -> tuple[int, int]:
        counts = self._sender().queue.counts()
        return sum(counts.get(s, 0) for s in ("queued", "sending", "waiting-retry")), counts.get("failed", 0)

    def send_preview(self, plan_uids: Sequence[str]) -> list[SendPreview]:
        return self.real.send_preview(plan_uids)

    def send(self, plan_uids: Sequence[str], nodes: Sequence[str],
             transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        return [j for uid in plan_uids for node in nodes for j in self._sender().send_plan(
            uid, [node], origin="manual", transform=(transforms or {}).get(node, ""), force=force)]

    def selection_preview(self, selection: Selection) -> SelectionPreview | None:
        return self.real.selection_preview(selection)

    def send_selection(self, selection: Selection, nodes: Sequence[str],
                       transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        return self._sender().send_selection(selection, nodes, transforms or {}, force)

    def echo(self, node: str) -> EchoOutcome:
        return self._sender().echo(node)

    def jobs(self, active_only: bool = True) -> list[JobInfo]:
        return self._sender().queue.jobs(active_only)

    def retry_failed(self, plan_uids: Sequence[str]) -> list[int]:
        sender = self._sender()
        return [r.id for uid in plan_uids for r in sender.queue.history(uid) if sender.retry(r.id)]

    def cancel_active(self, plan_uids: Sequence[str]) -> list[int]:
        sender = self._sender()
        return [r.id for uid in plan_uids for r in sender.queue.history(uid) if sender.cancel(r.id)]

    def store_usage(self, patient_id: str | None = None) -> tuple[int, int]:
        return self.real.store_usage(patient_id)

    def delete_preview(self, patient_id: str, plan_uids: Sequence[str] = ()) -> DeletePreview:
        """The real station's answer, refused by the fake queue's active jobs of those plans too."""
        preview = self.real.delete_preview(patient_id, plan_uids)
        plans = {uid for uid, _ in preview.plans}
        held = tuple(f"job {j.id} to {j.node} ({j.state}, {j.label})" for uid in sorted(plans)
                     for j in self._history(uid) if j.state in ("queued", "sending", "waiting-retry"))
        return replace(preview, blocked_by=preview.blocked_by + held)

    def delete(self, patient_id: str, plan_uids: Sequence[str] = (), who: str = "operator") -> DeletePreview:
        preview = self.delete_preview(patient_id, plan_uids)
        if preview.blocked_by:
            raise DeleteRefused(f"{preview.subject()} is not deleted: active jobs still send its objects: "
                                f"{'; '.join(preview.blocked_by)}")
        return self.real.delete(patient_id, plan_uids, who)

    def remote_plans(self, node: str, patient_id: str) -> list[RemotePlan]:
        if (node, patient_id) not in self.remote:
            raise RemoteUnavailable(f"{node}: C-FIND found no patient {patient_id!r}")
        return list(self.remote[(node, patient_id)])

    def retrieve(self, node: str, patient_id: str, plan_uids: Sequence[str]) -> int:
        """Recorded; the test posts the RetrieveProgress/RetrieveFinished events a station would."""
        self.retrieved.append((node, patient_id, tuple(plan_uids)))
        return len(self.retrieved)

    def dry_run(self, rules: tuple[RuleConfig, ...], limit: int = 50) -> list[PlanVerdicts]:
        return self.real.dry_run(rules, limit)

    def reload(self, config: Config) -> list[str]:
        return self.real.reload(config)

    async def restart_receiver(self, config: Config, timeout: float = 30.0) -> list[str]:
        return await self.real.restart_receiver(config, timeout)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.real.subscribe(fn)

    def _history(self, plan_uid: str) -> list[JobInfo]:
        return self.sender.queue.history(plan_uid) if self.sender is not None else []

    def _sender(self) -> FakeSender:
        if self.sender is None:
            raise RuntimeError("this station has no sender")
        return self.sender


def _conforms(real: Station, fake: FakeStation) -> tuple[StationAPI, StationAPI]:
    """Never called: mypy (tests/unit/test_typing.py) checks here that both implement the console's interface."""
    return real, fake
