"""Event-driven loops for pynetdicom 3.0.4 acceptor associations: the receive path without polling sleeps.

Why: stock pynetdicom cannot receive faster than ~0.3× DCMTK on our 2-core server, and the limit is not Python but
polling (measured in ``bench/``; field notes in the issue): the association thread sleeps 1 ms per loop before
it looks at a finished message, the DUL thread sleeps 1 ms whenever it has caught up with the socket (between
PDUs and before each response goes out), PDUs are read 4 KiB at a time and copied ~8 times, and every C-STORE
command set is decoded and every response encoded through pydicom's generic machinery.

``accelerate(assoc, tmp_dir)``, called from ``EVT_CONN_OPEN`` (before the association's threads start), replaces
per association, never in site-packages (the DIMSE part, C-STORE decoding and serving, is ``acceptor_store.py``):

- the DUL loop: ``select()`` on the peer socket and a wake-up socketpair (rung when a primitive is queued for
  sending or the DUL is stopped) instead of ``sleep(0.001)``;
- PDU reading: header and body read with ``recv_into`` in one go; P-DATA-TF values are memoryview slices;
- the association loop: waits on a doorbell rung by the DIMSE message queue and the ACSE queue;
- C-STORE-RQ decoding: the command set is parsed by hand and the dataset written straight into a temp file in
  ``tmp_dir`` (what ``STORE_RECV_CHUNKED_DATASET`` does, without pydicom), and the C-STORE-RSP is encoded by hand;
- where the C-STORE is served: on the DUL thread as soon as its last fragment is written, not after two thread
  hand-offs (DUL → association thread → DUL). A storage SCU waits for each response (pynetdicom negotiates no
  asynchronous operations), so the reader has nothing else to do meanwhile. Consequence for ``EVT_C_STORE``
  handlers: they may call ``event.assoc.abort()`` (non-blocking inside a handler, as in pynetdicom) but not
  ``release()``, ``kill()`` or the ``send_*()`` methods, which wait for the DUL thread they would be running on.

Everything else (association negotiation and rejection, C-ECHO, other DIMSE messages, odd encodings, release,
abort, timers, the state machine) still runs pynetdicom's own code. Handlers for the per-PDU/per-message events
(``EVT_DATA_RECV``, ``EVT_PDU_RECV``, ``EVT_DIMSE_RECV``) switch the matching fast path off. These are private
internals: the version is pinned in ``pyproject.toml``, every one is listed in ``manifest.py`` and
``tests/unit/test_dimse_manifest.py`` fails loudly when one changes. ``[network] fast_paths = false`` (or
``RTSTATION_STOCK_PYNETDICOM=1``) leaves pynetdicom's own loops in place: the receiver then never calls
``accelerate``.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import struct
import threading
from pathlib import Path
from typing import Any, Callable, cast

import pynetdicom
from pynetdicom import evt
from pynetdicom.dul import LOGGER as DUL_LOG
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.utils import make_target

from . import cstore_wire
from .acceptor_store import StoreService
from .association import association_ended
from .manifest import PYNETDICOM_VERSION as SUPPORTED_VERSION
from .pduguard import PduRefused

DUL_WAIT = 0.02  # s: longest idle sleep of the DUL loop (ARTIM and idle timers are checked this often)
ASSOC_WAIT = 0.05  # s: same for the association loop (network timeout, DUL death)
PREALLOCATE_MAX = 4 << 20  # PDUs up to this size are read into one preallocated buffer
_HEADER = struct.Struct(">BBL")
log = logging.getLogger("rtstation.dimse")
_warned = threading.Event()


def accelerate(assoc: Any, tmp_dir: Path) -> bool:
    """Install the fast loops on one acceptor association; False (stock behaviour) if they cannot apply."""
    if pynetdicom.__version__ != SUPPORTED_VERSION:
        if not _warned.is_set():
            _warned.set()
            log.warning("pynetdicom %s is not %s: fast receive path off", pynetdicom.__version__, SUPPORTED_VERSION)
        return False
    if not assoc.is_acceptor or assoc.is_alive() or assoc.dul.is_alive() or assoc.dul.socket is None:
        return False
    _Accelerator(assoc, Path(tmp_dir))
    return True


class _RingQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that rings a bell after every put, so its consumer can block instead of polling."""

    def __init__(self, ring: Callable[[], None]) -> None:
        super().__init__()
        self._ring = ring

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._ring()


class _UserQueue(_RingQueue):
    """The DUL's to-user queue; remembers whether the A-ASSOCIATE indication was ever put on it (DUL thread only)."""

    request_delivered = False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(item, A_ASSOCIATE):
            self.request_delivered = True
        super().put(item, block, timeout)


class _Accelerator(StoreService):
    """The per-association state and the replacement methods bound onto its pynetdicom objects."""

    def __init__(self, assoc: Any, tmp_dir: Path) -> None:
        self.assoc, self.dul, self.dimse, self.tmp_dir = assoc, assoc.dul, assoc.dimse, tmp_dir
        self.bell = threading.Event()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.cmd = bytearray()
        self.pending = None
        self.stock_busy = False  # pynetdicom's own decoder holds a partial message
        self.rx = bytearray(0)  # the P-DATA lane's receive buffer (_lane_buffer)
        self.fed = False  # read_pdu's P-DATA lane fed DIMSE this loop (no event queued, maybe a response)
        self.reactor_running = threading.Event()  # negotiation done, EVT_ACCEPTED handlers returned
        self._stock_receive = self.dimse.receive_primitive
        self._stock_serve = assoc._serve_request
        self._stock_stop_dul = self.dul.stop_dul
        self._stock_kill = assoc.kill
        assoc.dimse.msg_queue = _RingQueue(self.bell.set)
        self.dul.to_user_queue = self.user_queue = _UserQueue(self.bell.set)
        self.dul.to_provider_queue = _RingQueue(self.wake_dul)
        self.dul._target = make_target(self.dul_reactor)
        self.dul._read_pdu_data = self.read_pdu
        self.dul.stop_dul = self.stop_dul
        self.dimse.receive_primitive = self.receive_primitive
        assoc._run_reactor = self.assoc_reactor
        assoc._serve_request = self.serve_request
        assoc.kill = self.kill

    # -- DUL thread --------------------------------------------------------------------------------------------
    def wake_dul(self) -> None:
        if threading.get_ident() == self.dul.ident:
            return  # the DUL thread itself queued it (a C-STORE response): it looks at the queue next anyway
        try:
            self.wake_w.send(b"!")
        except OSError:  # buffer full (it is already awake) or closed at the end
            pass

    def stop_dul(self) -> bool:
        self.wake_dul()
        return bool(self._stock_stop_dul())

    def kill(self) -> None:
        self.bell.set()
        self._stock_kill()

    def _wait_readable(self) -> None:
        wrapped = self.dul.socket
        sock = wrapped.socket if wrapped is not None and wrapped._is_connected else None
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # decrypted bytes already buffered: select() cannot see them
        watch: list[Any] = [self.wake_r] if sock is None else [self.wake_r, sock]
        try:
            ready, _, _ = select.select(watch, [], [], DUL_WAIT)
        except (OSError, ValueError):  # the socket was closed under us; the stock checks notice it
            return
        if self.wake_r in ready:
            try:
                self.wake_r.recv(4096)
            except OSError:
                pass

    def dul_reactor(self) -> None:
        """``DULServiceProvider.run_reactor`` with ``select()`` where it sleeps; same order of checks."""
        dul, assoc = self.dul, self.assoc
        dul._idle_timer.start()
        idle = False
        try:
            while True:
                if not assoc._dul_ready.is_set():
                    assoc._dul_ready.set()
                if idle:
                    self._wait_readable()
                if dul._kill_thread:
                    break
                if dul.artim_timer.expired:
                    dul.event_queue.put("Evt18")
                try:
                    if dul._process_recv_primitive():
                        pass
                    elif dul._is_transport_event():
                        dul._idle_timer.restart()
                except Exception as exc:
                    DUL_LOG.error("Exception in DUL.run(), aborting association")
                    DUL_LOG.exception(exc)
                    abort = A_ABORT_RQ()
                    abort.source, abort.reason_diagnostic = 0x02, 0x00
                    dul.socket.send(abort.encode())
                    assoc.is_aborted, assoc.is_established, assoc._kill = True, False, True
                    dul._kill_thread = True
                    return
                events = dul.event_queue
                try:
                    if not events.queue:  # nothing queued (the P-DATA lane's usual case): no lock round trip
                        raise queue.Empty
                    event = events.get(block=False)
                except queue.Empty:
                    idle, self.fed = not self.fed, False
                    continue
                dul.state_machine.do_action(event)
                idle = False
        finally:
            if self.pending is not None:  # the peer went away mid-dataset: nothing was acknowledged
                self.pending[2].discard()
                self.pending = None
            self.wake_r.close()
            self.wake_w.close()
            self.bell.set()
            if not self.user_queue.request_delivered:
                # The connection ended (closed, reset, half a request, ARTIM, refused protocol version) before any
                # A-ASSOCIATE-RQ reached the association thread, which waits for one up to the ACSE timeout
                # (pynetdicom's ``run_reactor``) holding its connection slot: None ends that wait now, as a
                # timeout would (it closes the socket and the thread ends).
                self.user_queue.put(None)

    def _recv_exact(self, sock: socket.socket, n: int, into: bytearray | None = None) -> bytearray | memoryview:
        """``n`` bytes, fewer only if the peer closed. A huge claimed length is not allocated up front. ``into``: a
        buffer of at least ``n`` bytes to read into (a view of it is returned) instead of a new one."""
        if into is not None:
            view, got = memoryview(into)[:n], 0
            while got < n:
                k = sock.recv_into(view[got:], n - got)
                if not k:
                    break
                got += k
            return view if got == n else view[:got]
        if n <= PREALLOCATE_MAX:
            buf = bytearray(n)
            view, got = memoryview(buf), 0
            while got < n:
                k = sock.recv_into(view[got:], n - got)
                if not k:
                    break
                got += k
            view.release()
            return buf if got == n else buf[:got]
        out = bytearray()
        while len(out) < n:
            chunk = sock.recv(min(1 << 20, n - len(out)))
            if not chunk:
                break
            out += chunk
        return out

    def read_pdu(self) -> None:
        """``DULServiceProvider._read_pdu_data``: same events, one read per PDU, no copies of P-DATA values."""
        dul = self.dul
        sock = dul.socket.socket
        try:
            header = self._recv_exact(sock, 6)
            if len(header) < 6:
                dul.event_queue.put("Evt17")
                return
            pdu_type, _, length = _HEADER.unpack(header)
            if pdu_type not in (1, 2, 3, 4, 5, 6, 7):
                DUL_LOG.error(f"Unknown PDU type received '0x{pdu_type:02X}'")
                dul.event_queue.put("Evt19")
                return
            handlers = self.assoc._handlers
            lane = pdu_type == 4 and length <= PREALLOCATE_MAX and self._data_lane(handlers)
            body = self._recv_exact(sock, length, self._lane_buffer(length) if lane else None)
        except PduRefused:  # our socket cut it (pduguard) and said why, naming the peer
            dul.event_queue.put("Evt17")
            return
        except (OSError, TimeoutError) as exc:
            DUL_LOG.error("Connection closed before the entire PDU was received")
            DUL_LOG.exception(exc)
            dul.event_queue.put("Evt17")
            return
        if len(body) != length:
            DUL_LOG.error(f"The received PDU is shorter than expected ({len(body) + 6} of {length + 6} bytes received)")
            dul.event_queue.put("Evt17")
            return
        if lane:
            try:
                items = cstore_wire.pdv_items(memoryview(body))
            except ValueError as exc:
                DUL_LOG.error("Unable to decode the received PDU data")
                DUL_LOG.exception(exc)
                dul.event_queue.put("Evt19")
                return
            self.fed = True  # the reactor must not wait for the socket: a response may be queued to send
            for context_id, value in items:
                self.receive_pdv(context_id, value)
            return
        try:
            if pdu_type == 4 and not handlers.get(evt.EVT_DATA_RECV) and not handlers.get(evt.EVT_PDU_RECV):
                pdu: Any = cstore_wire.p_data_tf(memoryview(body))
                event = "Evt10"
            else:
                pdu, event = dul._decode_pdu(cast(bytearray, header) + body)  # not the lane: both are bytearrays
        except Exception as exc:
            DUL_LOG.error("Unable to decode the received PDU data")
            DUL_LOG.exception(exc)
            dul.event_queue.put("Evt19")
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    def _lane_buffer(self, n: int) -> bytearray:
        """The P-DATA lane's receive buffer, reused for every PDU: nothing keeps a view of it past ``read_pdu``
        (values are written to the temp file or copied before it returns), and a fresh 64-128 KiB buffer per PDU
        costs its zeroing and page faults."""
        if len(self.rx) < n:
            self.rx = bytearray(max(n, 2 * len(self.rx)))
        return self.rx

    def _data_lane(self, handlers: dict[Any, Any]) -> bool:
        """Whether a P-DATA-TF may skip the state machine: in Sta6 (established) Evt10 is always DT-2, which hands
        the values to ``receive_primitive`` and stays in Sta6, so nothing but the per-PDU objects and events is
        skipped. Not when a handler wants those events, nor with earlier events still queued (order)."""
        return (self.dul.state_machine.current_state == "Sta6" and not self.dul.event_queue.queue
                and not handlers.get(evt.EVT_DATA_RECV) and not handlers.get(evt.EVT_PDU_RECV)
                and not handlers.get(evt.EVT_FSM_TRANSITION))

    # -- association thread ------------------------------------------------------------------------------------
    def assoc_reactor(self) -> None:
        """``Association._run_reactor``: blocks on a doorbell instead of ``sleep(0.001)``; same checks."""
        a, bell, messages = self.assoc, self.bell, self.dimse.msg_queue
        a._is_paused = False
        self.reactor_running.set()
        try:
            while not a._kill:
                a._is_paused = True
                a._reactor_checkpoint.wait()
                a._is_paused = False
                bell.clear()
                try:
                    context_id, msg = messages.get_nowait()
                except queue.Empty:
                    context_id, msg = None, None
                if msg:
                    a._serve_request(msg, context_id)
                    continue
                if association_ended(a):
                    return
                bell.wait(ASSOC_WAIT)
        finally:
            self._discard_queued()
