"""The Station: the one facade over the engine, the same under ``rtstation serve`` and inside the console.

``await start()`` recovers from whatever the last run left (temp files, open sessions, files the index missed),
starts the index writer, the receiver (pynetdicom threads) and the readiness tracker, then any services (sender
queue, rules, import folder) that other modules register. ``await stop()`` stops accepting, lets in-flight stores
finish and flushes the index. Subscribers get typed events, batched, on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import replace
from typing import Any, Callable, Mapping, Protocol, Sequence

import pydicom

from .api import EchoOutcome, StationStatus
from .audit import audit, configure as configure_audit
from .config.groups import expand_for_send
from .config.model import Config
from .config.rules import RuleConfig
from .events import EventBus, ReceiverState, Subscriber
from .intake.importer import ImportReport, Importer
from .store.lock import DataDirLock, pid_alive
from .store.index import Index
from .store.indexer import Indexer
from .plans import queries
from .plans.queries import JobInfo, LooseObject, PatientRow, PlanDetails, PlanRow, PlanVerdicts, SendPreview
from .plans.selection import Selection, SelectionPreview, selection_preview, selection_sops
from .plans.readiness import Readiness
from .intake.rebuild import reconcile
from .intake.receiver import Receiver, ReceiverError
from .outbound import commitment
from .outbound.commitment import CommitmentReports
from .config.reload import ReloadError, config_changes, effective
from .outbound.dryrun import dry_run
from .outbound.queue import ACTIVE, JobRow
from .outbound.autodelete import AfterSendDeleter
from .outbound.deletion import DeletePreview, announce, delete as delete_objects, select as select_delete
from .outbound.retention import RetentionService
from .outbound.rules import RulesService
from .outbound.sender import Sender
from .store.files import Store
from .store.removal import finish_interrupted
from .qr.scp import QRService
from .qr.pull import RemotePlan, RetrieveRuns
from .dimse.tls import TlsError
from .intake.watcher import ImportWatcher
from .service.server import ApiServer
from .metrics import views as metrics_views
from .metrics.service import MetricsService
from .metrics.views import DvhCurve, PlanMetrics

log = logging.getLogger("rtstation.station")

# Header parsing must not spend time validating values of hostile or sloppy senders (stored as they came anyway).
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


class Service(Protocol):
    """Something that runs as long as the Station does (sender workers, rules, the import-folder watcher)."""

    async def start(self, station: Station) -> None: ...

    async def stop(self) -> None: ...


class Station:
    """Runs the engine; also the in-process implementation of ``api.StationAPI`` (the methods at the end)."""

    def __init__(self, config: Config, *, receive: bool = True) -> None:
        self.config = config
        self.bus = EventBus()
        data_dir = config.data_dir
        self.store = Store(data_dir, config.receiver.durability)
        self.index = Index(data_dir)
        self.indexer = Indexer(self.index, self.bus, data_dir / "provenance.jsonl")
        self.qr = QRService(lambda: self.config, self.index, self.store)  # [QR]: C-FIND/C-GET/C-MOVE SCP
        # [ACTIONS]: Storage Commitment reports arrive on our listener; they settle the sender's requests
        self.commitment_reports = CommitmentReports(lambda: self.sender.queue, lambda job: self.sender.announce(job))
        self.receiver = Receiver(config, self.store, self.index, self.indexer, self.bus,
                                 (self.qr, self.commitment_reports)) if receive else None
        # [QR] the console's Remote screen: plan lists of a node, retrieves in background threads (events on the bus)
        self.retrieves = RetrieveRuns(lambda: self.config, self.store, self.bus,
                                      lambda: self.receiver is not None and self.receiver_state == "listening")
        self.readiness = Readiness(self.index, self.bus, config.receiver.settle_seconds, self.store)
        self.services: list[Service] = []
        self.sender = Sender(config, self.index, self.store, self.bus)
        for db in (self.index, self.sender.queue):  # a damaged file is named now, with what to do
            db.check_integrity()
        self.add_service(self.sender)
        if config.retention.auto and (config.retention.days > 0 or config.retention.max_store_gb > 0):
            self.add_service(RetentionService(lambda: self.config, self.index, self.sender.queue, self.store,
                                              self.bus))
        # [ACTIONS] delete_after_send: a rule's bundle leaves the store once every target committed it
        self.add_service(AfterSendDeleter(lambda: self.config, self.index, self.sender.queue, self.store, self.bus))
        # subscribes now (no ready event missed); reads self.config at each evaluation (a reload applies at once)
        self.rules = RulesService(lambda: self.config, self.index, self.bus, self.sender)
        self.add_service(self.rules)
        # plan metrics and DVHs of ready bundles, computed in a separate process (never on the receive path)
        self.metrics = MetricsService(lambda: self.config, self.index, self.store, self.bus)
        self.add_service(self.metrics)
        self.watcher = ImportWatcher(config, self.bus)  # state/detail: the import folder, for the console
        self.add_service(self.watcher)
        self.receiver_state = "stopped"
        self.receiver_detail = ""
        self._lock = DataDirLock(data_dir)
        self._started = False
        self._start_error = ""
        self._background: set[asyncio.Task[Any]] = set()
        api = config.api
        self.api_server = ApiServer(self, config.api_socket, replay=api.replay_events,
                                    client_timeout=api.client_timeout_s) if api.enabled else None
        # how the process owner re-reads its configuration (file + command-line overrides), for POST /config/reload
        self.reread: Callable[[], Config] | None = None

    def on_stop_request(self, fn: Callable[[], None]) -> None:
        """What ``POST /api/v1/stop`` (``rtstation stop``) does: the owner of the process decides how to stop."""
        if self.api_server is not None:
            self.api_server.on_stop = fn

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    async def start(self) -> None:
        """Start everything. A receiver that cannot listen leaves the rest running and raises ReceiverError."""
        self._lock.acquire()
        try:
            await self._start_services()
        except Exception as exc:  # sends would be queued with no worker to run them: say so (status())
            self._start_error = f"the station did not start ({exc})"
            raise
        if self.api_server is not None:  # before the receiver: the API reports a listener that cannot bind
            await self.api_server.start()
        self._spawn(asyncio.to_thread(reconcile, self.store, self.index), "reconcile")
        if self.receiver is not None:
            await self.start_receiver()

    async def _start_services(self) -> None:
        configure_audit(self.config.log_dir, self.config.logging.retention_days)
        self.bus.start()
        await asyncio.to_thread(self._recover)
        self.indexer.start()
        self._started = True
        await self.readiness.start()
        for service in self.services:
            await service.start(self)

    async def start_receiver(self) -> None:
        assert self.receiver is not None
        try:
            await asyncio.to_thread(self.receiver.start)
        except ReceiverError as exc:
            self._set_receiver_state("error", str(exc))
            raise
        self._set_receiver_state("listening", "")

    async def stop_receiver(self, timeout: float = 30.0) -> None:
        if self.receiver is not None:
            await asyncio.to_thread(self.receiver.stop, timeout)
            self._set_receiver_state("stopped", "")

    def _set_receiver_state(self, state: str, detail: str) -> None:
        self.receiver_state, self.receiver_detail = state, detail
        address = self.receiver.address if self.receiver else ""
        self.bus.post(ReceiverState(state, address, detail))

    def _recover(self) -> None:
        n = self.store.clean_temp()
        if n:
            log.warning("removed %d temp files left by an interrupted run (never acknowledged)", n)
        closed = self.index.close_orphan_sessions(pid_alive)
        if closed:
            log.info("closed %d sessions left open by an interrupted run", closed)
        finish_interrupted(self.index, self.store)  # deletions a crash cut short: completed before anything reads
        self.store.load_known(self.index.known_pairs())

    async def stop(self, timeout: float = 30.0) -> None:
        if not self._started:
            self._lock.release()
            return
        if self.api_server is not None:
            await self.api_server.stop()
        await self.stop_receiver(timeout)
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %r failed", service)
        for task in list(self._background):
            task.cancel()
        await asyncio.to_thread(self.indexer.stop, timeout)
        await self.readiness.step()  # sessions that just ended get their ready events
        await self.readiness.stop()
        await self.bus.stop()
        self._started = False
        self._lock.release()

    def reload(self, config: Config) -> list[str]:
        """Apply a new configuration without dropping associations (``serve`` calls this on SIGHUP).

        Returns the keys that changed. Keys bound at start-up (address, port, AE title, data_dir, max PDU, log dir)
        keep their running values and are logged as waiting for a restart. Raises ReloadError, with the old
        configuration still in force, when the new one cannot be applied (e.g. an unreadable TLS certificate).
        Services with a ``reload(config)`` method (sender, rules) get the new configuration too."""
        new, held = effective(self.config, config)
        changed = config_changes(self.config, new)
        if self.receiver is not None:
            try:
                self.receiver.reload(new)
            except (TlsError, ValueError) as exc:
                raise ReloadError(str(exc)) from None
        self.store.fsync = new.receiver.durability == "fsync"
        self.readiness.settle = new.receiver.settle_seconds
        self.config = new
        self.sender.config = new  # nodes: read per job, so new jobs and retries use the new definitions
        if "logging.retention_days" in changed:
            configure_audit(new.log_dir, new.logging.retention_days)
        for service in self.services:
            hook = getattr(service, "reload", None)
            if hook is not None:
                try:
                    hook(new)
                except Exception:
                    log.exception("%r could not apply the new configuration", service)
        if held:
            log.warning("configuration: %s changed, effective at the next restart", ", ".join(held))
        audit("config_reloaded", file=str(config.path or ""), changed=changed, held_until_restart=held)
        log.info("configuration reloaded: %s", ", ".join(changed) if changed else "nothing changed")
        return changed

    async def restart_receiver(self, config: Config, timeout: float = 30.0) -> list[str]:
        """Apply ``config`` including the keys ``reload`` holds back for the listener (address, port, AE title).

        Why a restart and not a swap: the port is bound and the AE title given to pynetdicom when the server starts.
        The old listener stops accepting and its in-flight stores finish (as at ``stop``); then a new Receiver
        binds with the new values. Sender jobs and the index keep running throughout. Returns the changed keys;
        raises ReceiverError (state "error", everything else keeps running) if the new address cannot be bound."""
        keys = ("ae_title", "bind", "port")
        listener = [f"station.{k}" for k in keys if getattr(self.config.station, k) != getattr(config.station, k)]
        await self.stop_receiver(timeout)
        self.config = replace(self.config, station=replace(self.config.station,
                                                           **{k: getattr(config.station, k) for k in keys}))
        changed = listener + self.reload(config)
        if self.receiver is not None:
            # the same extra services as at start: C-FIND/C-GET/C-MOVE, and commitment reports still accepted
            self.receiver = Receiver(self.config, self.store, self.index, self.indexer, self.bus,
                                     (self.qr, self.commitment_reports))
            await self.start_receiver()
            log.info("listener restarted on %s as %s", self.receiver.address, self.receiver.ae_title)
        return changed

    def importer(self) -> Importer:
        """An importer feeding this station's indexer (for the import folder and the console)."""
        station = self

        class _StationImporter(Importer):
            def end_session(self, report: ImportReport) -> None:
                assert report.session_id is not None
                station.indexer.end_session(report.session_id, report.stored + report.conflicts, 0,
                                            len(report.quarantined))

        return _StationImporter(self.store, self.index, self.indexer.put)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %s", name, t.exception())

        task.add_done_callback(done)

    # -- StationAPI: what the console reads and asks, as plain frozen data (engine/api.py) ----------------------
    def status(self) -> StationStatus:
        w, r = self.watcher, self.receiver
        return StationStatus(self.config.station.ae_title, r.address if r is not None else "", r is not None,
                             self.receiver_state, self.receiver_detail, w.state, str(w.folder or ""), w.detail,
                             self._start_error)

    def patients(self, text: str = "", only: Sequence[str] | None = None) -> list[PatientRow]:
        conn = self.index.conn
        if not text:
            rows = queries.patients(conn, only)
        else:
            found = queries.search(conn, text)
            if only is not None:
                within = set(only)
                found = [pid for pid in found if pid in within]
            rows = queries.patients(conn, found)
        return queries.send_attention(conn, rows, self.sender.queue.latest_states())

    def label_matches(self, text: str, limit: int = 20) -> list[str]:
        return queries.label_matches(self.index.conn, text, limit)

    def plans_of(self, patient_id: str) -> list[PlanRow]:
        out = []
        for p in queries.plans_of(self.index.conn, patient_id):
            history = self._history(p.plan_uid)
            out.append(replace(p, sends=queries.latest_sends(history), commitments=queries.latest_commitments(history)))
        return out

    def unconnected(self, patient_id: str) -> list[LooseObject]:
        return queries.unconnected(self.index.conn, patient_id)

    def plan_metrics(self, where: Sequence[str] = (), sort: str = "-received", limit: int = 1000) -> list[PlanMetrics]:
        return metrics_views.plan_metrics(self.index.conn, where, sort, limit, self.config.metrics.dvh_points)

    def dvh_curves(self, plan_uid: str) -> list[DvhCurve]:
        return metrics_views.dvh_curves(self.index.conn, plan_uid)

    def plan_details(self, plan_uid: str) -> PlanDetails | None:
        details = queries.plan_details(self.index.conn, plan_uid)
        return replace(details, history=tuple(self._history(plan_uid))) if details is not None else None

    def received_since(self, since: float) -> int:
        return queries.received_since(self.index.conn, since)

    def free_disk_mb(self) -> float:
        return shutil.disk_usage(self.config.data_dir).free / 1e6

    def job_counts(self) -> tuple[int, int]:
        counts = self.sender.queue.counts()
        return sum(counts.get(s, 0) for s in ACTIVE), counts.get("failed", 0)

    def send_preview(self, plan_uids: Sequence[str]) -> list[SendPreview]:
        return queries.send_preview(self.index.conn, plan_uids)

    def send(self, plan_uids: Sequence[str], nodes: Sequence[str],
             transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        """One ``send_plan`` per transform ("" = the stored files): a job carries one transform for all its nodes.
        A ``[[groups]]`` name stands for its enabled nodes (each may have its own transform)."""
        groups: dict[str, list[str]] = {}
        for node in expand_for_send(nodes, self.config):
            groups.setdefault((transforms or {}).get(node, ""), []).append(node)
        return [job for uid in plan_uids for transform, group in groups.items()
                for job in self.sender.send_plan(uid, group, origin="manual", transform=transform, force=force)]

    def selection_preview(self, selection: Selection) -> SelectionPreview | None:
        return selection_preview(self.index.conn, selection)

    def send_selection(self, selection: Selection, nodes: Sequence[str],
                       transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        """As ``send``, for a patient, study, series or a set of objects: one job per node and transform."""
        sops = selection_sops(self.index.conn, selection)
        if not sops:
            raise ValueError(f"nothing stored under {selection.what or selection.level + ' ' + selection.uid}")
        label = selection.what or f"{selection.level} {selection.uid}"
        groups: dict[str, list[str]] = {}
        for node in nodes:
            groups.setdefault((transforms or {}).get(node, ""), []).append(node)
        return [e.job_id for transform, group in groups.items()
                for e in self.sender.enqueue_instances(sops, group, label=label, transform=transform, force=force)
                if e.job_id is not None]

    def echo(self, node: str) -> EchoOutcome:
        started = time.monotonic()
        try:
            r = self.sender.echo(node)
        except Exception as exc:  # an unknown or unreachable node is an answer, not a crash of the caller
            return EchoOutcome(node, False, (time.monotonic() - started) * 1000, str(exc))
        return EchoOutcome(r.node, bool(r.ok), r.rtt_ms, r.message)

    def jobs(self, active_only: bool = True) -> list[JobInfo]:
        return [self._job_info(j) for j in self.sender.queue.jobs(active_only=active_only)]

    def retry_failed(self, plan_uids: Sequence[str]) -> list[int]:
        """Acknowledged instances of a retried job are not resent."""
        return [j.id for uid in plan_uids for j in self.sender.queue.history(uid)
                if j.state == "failed" and self.sender.retry(j.id)]

    def cancel_active(self, plan_uids: Sequence[str]) -> list[int]:
        return [j.id for uid in plan_uids for j in self.sender.queue.history(uid)
                if j.state in ACTIVE and self.sender.cancel(j.id)]

    def remote_plans(self, node: str, patient_id: str) -> list[RemotePlan]:
        return self.retrieves.remote_plans(node, patient_id)

    def retrieve(self, node: str, patient_id: str, plan_uids: Sequence[str]) -> int:
        return self.retrieves.start(node, patient_id, plan_uids)

    def dry_run(self, rules: tuple[RuleConfig, ...], limit: int = queries.MAX_DRY_RUN_PLANS) -> list[PlanVerdicts]:
        return dry_run(self.index.conn, rules, limit, self.config.nodes, self.sender.queue, self.store,
                       self.config.groups)

    def store_usage(self, patient_id: str | None = None) -> tuple[int, int]:
        return self.index.usage(patient_id)

    def delete_preview(self, patient_id: str, plan_uids: Sequence[str] = ()) -> DeletePreview:
        return select_delete(self.index, self.sender.queue, self.store, patient_id, plan_uids)[0]

    def delete(self, patient_id: str, plan_uids: Sequence[str] = (), who: str = "operator") -> DeletePreview:
        done = delete_objects(self.index, self.sender.queue, self.store, patient_id, plan_uids, who=who)
        announce(self.bus, done.patient_id, done.plans, done.instances, done.nbytes, done.patient_gone, who)
        return done

    def _history(self, plan_uid: str) -> list[JobInfo]:
        return [self._job_info(j) for j in self.sender.queue.history(plan_uid)]

    def _job_info(self, j: JobRow) -> JobInfo:
        return JobInfo(j.id, j.node, j.plan_uid, j.label, j.state, j.done, j.total, j.failed, j.bytes_done,
                       j.bytes_total, j.error or "", j.created, j.origin or "", j.derived,
                       commitment.state_of(self.sender.queue, j.id) if j.state == "done" else "")
