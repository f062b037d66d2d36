"""The storage SCP: pynetdicom threads that stream C-STOREs to disk and hand them to the indexer.

Accepts Verification and every storage SOP class, private and unknown ones included, in whatever transfer syntax
the peer proposes first: objects are stored as they came, byte for byte, never relabelled, never decoded.
Association checks (called AE, calling-AE allowlist with host/CIDR, association limit) happen in ``EVT_REQUESTED`` so
the log can say who was refused, from where and why. Each spooled dataset goes through ``ingest`` (the path imports
take too) with the association's ``NetworkOrigin``; ``_reply`` turns the outcome into the C-STORE status.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from ..config.acl import check_calling, normal_ip, parse_acl_entry
from ..audit import audit
from ..config.model import Config
from ..events import (AssociationClosed, AssociationOpened, AssociationRejected, EventBus, InstanceQuarantined,
                      ReceiveProgress)
from ..store.index import Index
from ..store.indexer import Indexer
from ..dimse.acceptor import accelerate
from ..dimse.association import answer_unserved, nodelay, reject
from ..dimse.pduguard import Limits
from ..dimse.settings import apply_receive_settings
from ..dimse.spool import failure as spool_failure
from ..store.files import Store
from ..dimse.tls import TlsError, connection_limit, server_context, start_server
from ..store.lock import pid_alive
from .ingest import (DUPLICATE, FAILED, QUARANTINED, STORED, Announced, Destination, Ingested, NetworkOrigin,
                     RetrieveOrigin, ingest)
from .splitter import EnhancedSplitter, splits

log = logging.getLogger("rtstation.receiver")

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
# A-ASSOCIATE-RJ (result, source, diagnostic), Part 8 Table 9-21
RJ_CALLED_AE = (0x01, 0x01, 0x07)
RJ_CALLING_AE = (0x01, 0x01, 0x03)
RJ_LIMIT = (0x02, 0x03, 0x02)
UNCOUNTED = 1 << 20  # pynetdicom's own association limit: off (see start())
PROGRESS_SECONDS = 0.25  # at most this often per association: "receiving 143 objects…" in the console's tree


class ReceiverError(RuntimeError):
    pass


def _limits(rc: Any) -> Limits:
    """The PDU rules of every accepted connection (``dimse.pduguard``): a whole PDU within the network timeout, no
    PDU longer than the maximum we announce."""
    return Limits(pdu_timeout=rc.network_timeout_s, pdu_max=rc.max_pdu)


@dataclass
class _Assoc:
    """Counters of one association, for its log line and its session in the index."""

    assoc_id: int
    calling_ae: str
    peer: str
    session_id: int
    started: float = field(default_factory=time.monotonic)
    instances: int = 0
    nbytes: int = 0
    failures: int = 0
    duplicates: int = 0
    duplicate_kinds: Counter[str] = field(default_factory=Counter)  # modality → duplicates: one summary line
    full_disk_logged: bool = False
    patients: dict[str, list[Any]] = field(default_factory=dict)  # patient ID → [name, objects received]
    progress_at: float = 0.0  # when the last ReceiveProgress of this association was posted (monotonic)
    progress_timer: threading.Timer | None = None  # a held-back count goes out at the latest this much later
    closed: bool = False
    retrieve_node: str | None = None  # a retrieve from this calling AE runs now: the node it pulls from
    origin: NetworkOrigin = field(init=False)  # what ingest records of this association with every object
    retrieved: RetrieveOrigin | None = field(init=False)  # … with the C-MOVE sub-operations of that retrieve

    def __post_init__(self) -> None:
        self.origin = NetworkOrigin(calling_ae=self.calling_ae, peer=self.peer, assoc_id=self.assoc_id,
                                    session_id=self.session_id)
        self.retrieved = None if self.retrieve_node is None else RetrieveOrigin(
            calling_ae=self.calling_ae, node=self.retrieve_node, method="C-MOVE", session_id=self.session_id)


class DimseServices(Protocol):
    """More DIMSE services on the same listener (the Station passes [QR]'s C-FIND/C-GET/C-MOVE SCP): the
    abstract syntaxes to accept and their event handlers. The receiver's association checks apply to them too."""

    def abstract_syntaxes(self) -> list[str]: ...

    def handlers(self) -> list[tuple[Any, Any]]: ...


class Receiver:
    def __init__(self, config: Config, store: Store, index: Index, indexer: Indexer, bus: EventBus,
                 services: tuple[DimseServices, ...] = ()) -> None:
        self.config = config
        self.services = services
        self._served = frozenset(uid for service in services for uid in service.abstract_syntaxes())
        self.store = store
        self.index = index
        self.indexer = indexer
        self.bus = bus
        self._into = Destination(store, indexer.put)
        self.splitter = EnhancedSplitter(self._into)  # [receiver] split_enhanced; its thread starts on first use
        self.acl = tuple(parse_acl_entry(e) for e in config.receiver.allowed_calling_aes)
        self.ae_title = config.station.ae_title.strip()
        self._server: Any = None
        self._ae: AE | None = None
        self._assocs: dict[Any, _Assoc] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self.ssl_context: Any = None  # set by the TLS setup when [tls] is enabled
        self._fast_paths = config.network.fast_paths

    @property
    def address(self) -> str:
        return f"{self.config.station.bind}:{self.config.station.port}"

    def active_count(self) -> int:
        return len(self._server.active_associations) if self._server is not None else 0

    def start(self) -> None:
        rc = self.config.receiver
        self._fast_paths = self.config.network.fast_paths  # restart-only: the spool mode is process-wide
        apply_receive_settings(self.store.tmp_dir, self._fast_paths)
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = rc.max_pdu
        ae.network_timeout = rc.network_timeout_s
        ae.acse_timeout = min(30.0, rc.network_timeout_s)  # also how long a silent connection holds its slot
        ae.dimse_timeout = rc.network_timeout_s
        # pynetdicom counts every connection thread still alive (negotiating, or a stock loop waiting out its ACSE
        # timeout) as an association; ours (_on_requested) counts accepted ones only, so strangers that never
        # finish a request cannot take an allowed AE's slot. Connections are capped by the server (tls.py).
        ae.maximum_associations = UNCOUNTED
        ae.require_called_aet = False  # checked in _on_requested, which logs why
        ae.add_supported_context(Verification)
        handlers = [
            (evt.EVT_CONN_OPEN, self._on_conn_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_C_ECHO, lambda event: STATUS_SUCCESS),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        for service in self.services:
            for uid in service.abstract_syntaxes():
                ae.add_supported_context(uid)
            handlers += service.handlers()
        try:
            if self.ssl_context is None and self.config.tls.enabled:
                self.ssl_context = server_context(self.config.tls)
            # our server class: the TLS handshake runs in the connection's thread, never in the accept loop
            self._server = start_server(ae, (self.config.station.bind, self.config.station.port), handlers,
                                        self.ssl_context, self.config.tls.handshake_timeout_s,
                                        connection_limit(rc.max_associations), _limits(rc))
        except TlsError as exc:
            raise ReceiverError(f"cannot accept TLS on {self.address}: {exc}") from None
        except OSError as exc:
            raise ReceiverError(f"cannot listen on {self.address}: {exc.strerror or exc}") from None
        self._ae = ae
        log.info("listening on %s as %s (max PDU %d, durability %s%s)", self.address, self.ae_title, rc.max_pdu,
                 rc.durability, ", DICOM TLS" if self.ssl_context is not None else "")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting; let in-flight associations finish (up to ``timeout``), then abort what is left."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.shutdown()
        deadline = time.monotonic() + timeout
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in server.active_associations:
            log.warning("aborting association from %s at shutdown", assoc.requestor.ae_title)
            assoc.abort()
        self._sweep_vanished()
        self.splitter.stop()
        log.info("receiver stopped")

    def reload(self, config: Config) -> None:
        """Swap in a new configuration (SIGHUP) without dropping associations. What can fail (a TLS certificate)
        is prepared first and raises TlsError with nothing changed; then each value is one atomic assignment that
        the next association or C-STORE reads. Address, port and AE title are the Station's to hold back."""
        ctx = self.ssl_context
        if config.tls != self.config.tls:
            ctx = server_context(config.tls) if config.tls.enabled else None
        acl = tuple(parse_acl_entry(e) for e in config.receiver.allowed_calling_aes)
        self.config, self.acl, self.ssl_context = config, acl, ctx
        rc = config.receiver
        if self._ae is not None:
            self._ae.maximum_associations = UNCOUNTED
            self._ae.network_timeout = self._ae.dimse_timeout = rc.network_timeout_s
            self._ae.acse_timeout = min(30.0, rc.network_timeout_s)
        if self._server is not None:
            self._server.ssl_context = ctx
            self._server.handshake_timeout = config.tls.handshake_timeout_s
            self._server.max_connections = connection_limit(rc.max_associations)
            self._server.limits = _limits(rc)

    # -- event handlers (pynetdicom threads) -------------------------------------------------------------------
    def _on_conn_open(self, event: Any) -> None:
        nodelay(event.assoc)
        answer_unserved(event.assoc, self._served)  # before accelerate: the fast loops hand it the rest
        if self._fast_paths:
            accelerate(event.assoc, self.store.tmp_dir)  # event-driven loops instead of pynetdicom's 1 ms polling

    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        rq = assoc.requestor.primitive
        calling, called = str(rq.calling_ae_title).strip(), str(rq.called_ae_title).strip()
        peer_ip, peer_port = normal_ip(assoc.requestor.address), assoc.requestor.port
        reason, rsd = None, None
        if self.config.receiver.check_called_ae and called != self.ae_title:
            reason, rsd = f"called AE {called!r} is not this station ({self.ae_title!r})", RJ_CALLED_AE
        elif (why := check_calling(self.acl, calling, peer_ip)) is not None:
            reason, rsd = why, RJ_CALLING_AE
        else:
            active = sum(1 for a in assoc.ae.active_associations if a.is_acceptor and a.is_established)
            if active >= self.config.receiver.max_associations:
                reason = f"too many associations ({active} open, receiver.max_associations is " \
                         f"{self.config.receiver.max_associations})"
                rsd = RJ_LIMIT
        if reason is None or rsd is None:
            return
        log.warning("rejected association from %s@%s:%s to %s: %s", calling, peer_ip, peer_port, called, reason)
        self.bus.post(AssociationRejected(calling, f"{peer_ip}:{peer_port}", reason))
        audit("association_rejected", calling_ae=calling, called_ae=called, peer=f"{peer_ip}:{peer_port}",
              reason=reason)
        reject(assoc, *rsd)

    def _on_accepted(self, event: Any) -> None:
        self._sweep_vanished()
        assoc = event.assoc
        calling = str(assoc.requestor.ae_title).strip()
        peer = f"{normal_ip(assoc.requestor.address)}:{assoc.requestor.port}"
        # C-MOVE sub-operations of a retrieve running now (in this process or an `rtstation retrieve`): recorded
        # as retrieved from that node, as when the retrieve's own storage SCP takes them
        node = self.index.retrieve_in_progress(calling, pid_alive)
        session_id = self.index.open_session("association", "network" if node is None else "retrieve", calling, peer,
                                             os.getpid())
        # this thread's own SQLite connection: association threads come and go, and each connection left behind
        # holds its fds (index + WAL) until the garbage collector happens to find it
        self.index.close()
        with self._lock:
            self._next_id += 1
            st = self._assocs[assoc] = _Assoc(self._next_id, calling, peer, session_id, retrieve_node=node)
        log.debug("association %d from %s@%s accepted", st.assoc_id, calling, peer)
        self.bus.post(AssociationOpened(st.assoc_id, calling, peer))
        audit("association_opened", assoc_id=st.assoc_id, calling_ae=calling, peer=peer,
              tls=self.ssl_context is not None)

    def _on_store(self, event: Any) -> int:
        st = self._assocs.get(event.assoc)
        if st is None:  # cannot happen for an accepted association; refuse rather than store unaccounted
            return STATUS_OUT_OF_RESOURCES
        if (err := spool_failure(event.request)) is not None:
            return self._spool_failed(st, event, err)
        min_free = self.config.receiver.min_free_mb
        if min_free and self.store.free_mb() < min_free:
            st.failures += 1
            if not st.full_disk_logged:
                st.full_disk_logged = True
                log.error("disk nearly full (%.0f MB free < receiver.min_free_mb %d): refusing C-STORE from %s "
                          "with 0xA700", self.store.free_mb(), min_free, st.calling_ae)
            audit("store_refused", sop_uid=str(event.request.AffectedSOPInstanceUID or ""), calling_ae=st.calling_ae,
                  peer=st.peer, assoc_id=st.assoc_id, status="0xA700", reason=f"free disk below {min_free} MB")
            return STATUS_OUT_OF_RESOURCES
        announced = Announced(str(event.request.AffectedSOPInstanceUID or ""),
                              str(event.request.AffectedSOPClassUID or ""))
        return self._reply(st, ingest(Path(event.dataset_path), self._origin(st, event.request), self._into,
                                      announced), announced)

    def _origin(self, st: _Assoc, request: Any) -> NetworkOrigin | RetrieveOrigin:
        """A C-STORE is a sub-operation of our retrieve when its association comes from the node a retrieve pulls
        from now and the request is a C-MOVE sub-operation (it carries a Move Originator AE title); any other
        C-STORE of that node is an ordinary received object. The originator's value is not compared: Part 7
        9.1.1.1 makes it the AE that asked for the C-MOVE (us), but pynetdicom-based SCPs send their own."""
        if st.retrieved is None:
            return st.origin
        originator = str(getattr(request, "MoveOriginatorApplicationEntityTitle", "") or "").strip()
        return st.retrieved if originator else st.origin

    def _reply(self, st: _Assoc, result: Ingested, announced: Announced) -> int:
        """The C-STORE status for what ``ingest`` did, and the association's counters."""
        if result.outcome == QUARANTINED:
            assert result.path is not None
            st.failures += 1
            log.warning("refused C-STORE of %s from %s@%s with 0xC000, kept in quarantine as %s: %s",
                        announced.sop_uid or "unknown", st.calling_ae, st.peer, result.path.name, result.reason)
            self.bus.post(InstanceQuarantined(result.path.name, result.reason, st.calling_ae))
            return STATUS_CANNOT_UNDERSTAND
        if result.outcome == FAILED:
            st.failures += 1
            if result.stage == "quarantine":  # broken and could not even be kept: the peer must not forget it
                log.error("cannot quarantine %s from %s (%s): %s", announced.sop_uid or "unknown", st.calling_ae,
                          result.reason, result.error)
                return STATUS_CANNOT_UNDERSTAND
            sop = result.info.sop_uid if result.info is not None else announced.sop_uid
            log.error("cannot store %s from %s: %s", sop, st.calling_ae, result.error)
            return STATUS_OUT_OF_RESOURCES
        assert result.placed is not None
        st.instances += 1
        st.nbytes += result.placed.size
        if result.info is not None:
            self._progress(st, result.info.patient_id, result.info.patient_name)
        if result.outcome == DUPLICATE:
            st.duplicates += 1
            st.duplicate_kinds[result.info.modality if result.info is not None else "?"] += 1
        elif result.outcome == STORED and self.config.receiver.split_enhanced and result.info is not None \
                and splits(result.info.sop_class):
            self.splitter.submit(self.store.abspath(result.placed.relpath), st.calling_ae)
        return STATUS_SUCCESS

    def _progress(self, st: _Assoc, patient_id: str, patient_name: str) -> None:
        """Count the object for its patient; tell the console now if this patient is new to the association or
        the last word is older than PROGRESS_SECONDS, else within PROGRESS_SECONDS (a timer), so the count on
        screen is never more than that behind, even when the sender pauses."""
        counted = st.patients.get(patient_id)
        if counted is None:
            counted = st.patients[patient_id] = [patient_name, 0]
            st.progress_at = 0.0
        counted[1] += 1
        late = PROGRESS_SECONDS - (time.monotonic() - st.progress_at)
        if late <= 0:
            self._post_progress(st)
        elif st.progress_timer is None:
            timer = st.progress_timer = threading.Timer(late, self._post_progress, (st, True))
            timer.daemon = True
            timer.start()

    def _post_progress(self, st: _Assoc, from_timer: bool = False) -> None:
        with self._lock:  # never after the association's closing counts (_close_books)
            if from_timer:
                st.progress_timer = None
            if st.closed:
                return
            st.progress_at = time.monotonic()
            for pid, (name, n) in list(st.patients.items()):
                self.bus.post(ReceiveProgress(st.assoc_id, st.calling_ae, pid, name, n))

    def _spool_failed(self, st: _Assoc, event: Any, err: OSError) -> int:
        """The dataset could not be written to the temp file (disk full, quota, size limit): nothing is stored."""
        st.failures += 1
        sop = str(event.request.AffectedSOPInstanceUID or "")
        log.error("no space to receive %s from %s@%s (%s in %s): refused with 0xA700, nothing stored", sop,
                  st.calling_ae, st.peer, err.strerror or err, self.store.tmp_dir)
        audit("store_refused", sop_uid=sop, calling_ae=st.calling_ae, peer=st.peer, assoc_id=st.assoc_id,
              status="0xA700", reason=f"writing the received data failed: {err.strerror or err}")
        return STATUS_OUT_OF_RESOURCES

    def _on_closed(self, event: Any) -> None:
        self._close_books(event.assoc, "released" if event.event is evt.EVT_RELEASED else "aborted")

    def _sweep_vanished(self) -> None:
        """Close the books of associations whose thread ended without EVT_RELEASED/ABORTED/CONN_CLOSE.

        Why: when pynetdicom's connection (DUL) thread dies of an exception (an I/O error while spooling, a bug),
        its association ends silently; without this, its session would stay open, its bundles would wait for
        settle_seconds and no closing line would say what happened. A dead association thread has joined its
        DUL thread, so no closing event can follow."""
        with self._lock:
            gone = [a for a in self._assocs if not a.is_alive()]
        for assoc in gone:
            self._close_books(assoc, "lost (its connection thread failed; see the error above)")

    def _close_books(self, assoc: Any, how: str) -> None:
        with self._lock:
            st = self._assocs.pop(assoc, None)
        if st is None:
            return
        seconds = time.monotonic() - st.started
        aborted = how != "released"
        self.indexer.end_session(st.session_id, st.instances, st.nbytes, st.failures)
        log.log(logging.INFO if how in ("released", "aborted") else logging.ERROR,
                "association %d from %s@%s %s: %d instances, %.1f MB, %.2f s, %d failures, %d duplicates",
                st.assoc_id, st.calling_ae, st.peer, how, st.instances, st.nbytes / 1e6, seconds, st.failures,
                st.duplicates)
        if st.duplicates:  # a re-sent series: one line, not one per object (the audit log keeps each)
            log.info("association %d from %s: %d duplicates (identical bytes, already stored): %s", st.assoc_id,
                     st.calling_ae, st.duplicates,
                     ", ".join(f"{n} {kind}" for kind, n in sorted(st.duplicate_kinds.items())))
        with self._lock:  # the tree's "receiving N objects…" ends with the association
            st.closed = True
            if st.progress_timer is not None:
                st.progress_timer.cancel()
            for pid, (name, n) in st.patients.items():
                self.bus.post(ReceiveProgress(st.assoc_id, st.calling_ae, pid, name, n, done=True))
        self.bus.post(AssociationClosed(st.assoc_id, st.calling_ae, st.peer, st.instances, st.nbytes, seconds,
                                        st.failures, st.duplicates, aborted))
        audit("association_closed", assoc_id=st.assoc_id, calling_ae=st.calling_ae, peer=st.peer,
              instances=st.instances, bytes=st.nbytes, seconds=round(seconds, 3), failures=st.failures,
              duplicates=st.duplicates, aborted=aborted, how=how)
