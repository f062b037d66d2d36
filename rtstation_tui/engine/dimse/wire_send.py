"""C-STORE requests written straight from the stored file, and their responses read by hand (the sender's fast path).

Why: pynetdicom's ``send_c_store(path)`` re-reads the file meta with pydicom, encodes the command set through
pydicom, cuts the dataset into P-DATA-TF PDUs in Python and hands each one to its DUL thread, which wakes up on a
timer to send it; the response comes back the same way and is decoded through pydicom. That is ~2.5 ms of CPU per
CT slice, all of it under the GIL, so three nodes sending at once queue behind each other. Here the sending thread
owns the association's socket while the job runs: the command set is ``cstore_wire.store_request`` (bytes), each
PDU is a 12-byte header plus one ``os.sendfile`` of the next fragment of the stored dataset (the kernel copies it,
the GIL is released), and the C-STORE-RSP is read and parsed by ``cstore_wire.parse_store_response``.

Ownership: while we own the socket the DUL thread is told there is nothing to read (``_is_transport_event``
replaced on the instance) and sleeps longer (``_run_loop_delay``); the network idle timer is restarted as data
moves. Anything but a P-DATA-TF from the peer (A-ABORT, A-RELEASE-RQ, a closed connection) is only peeked at and
handed back to pynetdicom, which handles it as it always does (``requestor.note_peer_abort`` names the abort).
A timeout or a protocol error aborts the association. Plain TCP only: a TLS socket goes through pynetdicom.
Every private name used here is listed in ``manifest.py``.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from types import MethodType
from typing import Any

import pynetdicom

from .cstore_wire import StoreResponse, p_data_tf_bytes, parse_store_response, pdv_items, store_request
from .manifest import PYNETDICOM_VERSION

P_DATA_TF = 0x04
_PDU = struct.Struct(">BBLLBB")  # PDU type, reserved, PDU length, PDV item length, context ID, message control
_PDU_HEAD = struct.Struct(">BBL")
UNLIMITED_PDU = 1 << 20  # the peer said "no limit" (0): fragments of 1 MiB
OWNED_DUL_DELAY = 0.02  # s: the DUL loop's sleep while we own the socket (it has nothing to do then)
PARK_WAIT = 2.0  # s: at most, for the DUL loop to come round once (it does every 50 µs; not at all if it ended)
LONGEST_RESPONSE = 1 << 16  # bytes: a C-STORE-RSP command set is ~100; anything longer is not one

__all__ = ["WireLost", "WireSender", "StoreResponse", "usable"]


class WireLost(Exception):
    """The association is over (handed back to pynetdicom and ended); ``timeout``: we gave up waiting."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def usable(assoc: Any) -> bool:
    """Whether this association can be sent on by hand: pinned pynetdicom, established, plain TCP."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    return (pynetdicom.__version__ == PYNETDICOM_VERSION and assoc.is_established
            and type(sock) is socket.socket)


class WireSender:
    """Sends C-STOREs on one established association from the calling thread (one job, one thread)."""

    def __init__(self, assoc: Any) -> None:
        self.assoc = assoc
        self.sock: socket.socket = assoc.dul.socket.socket
        peer_max = int(assoc.acceptor.maximum_length or 0)
        self.max_value = ((peer_max or UNLIMITED_PDU) - 6) & ~1  # PDV value bytes per PDU, even
        self._message_id = 0
        self._owned = False
        self._saved_delay = 0.0
        timeout = float(assoc.network_timeout or 0)  # a peer that stops reading: a send fails after this long
        self._send_timeout = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))

    # -- ownership -------------------------------------------------------------------------------------------
    def take(self) -> None:
        """From now on this thread reads and writes the socket; the DUL thread idles."""
        if self._owned:
            return
        dul = self.assoc.dul
        parked = threading.Event()

        def nothing_to_read(_dul: Any) -> bool:
            parked.set()
            return False

        dul._is_transport_event = MethodType(nothing_to_read, dul)
        # a look at the socket the DUL began before the swap must be over before we send: once it has called the
        # new one, it has (its loop is sequential); otherwise it could take our response off the socket
        parked.wait(PARK_WAIT)
        self._saved_delay, dul._run_loop_delay = dul._run_loop_delay, OWNED_DUL_DELAY
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._send_timeout)
        self._owned = True

    def give_back(self) -> None:
        """pynetdicom's DUL reads the socket again (release, abort, a fallback send through ``send_c_store``)."""
        if not self._owned:
            return
        dul = self.assoc.dul
        dul.__dict__.pop("_is_transport_event", None)
        dul._run_loop_delay = self._saved_delay
        self._owned = False
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))
        except OSError:  # already closed
            pass

    # -- one C-STORE -----------------------------------------------------------------------------------------
    def store(self, fd: int, offset: int, length: int, context_id: int, sop_class: str, sop_uid: str,
              timeout_s: float, pad: bool = False) -> StoreResponse:
        """Send the ``length`` dataset bytes at ``offset`` of ``fd`` as one C-STORE and return the response.
        ``pad``: one NUL after them (a deflated dataset of odd length, PS3.5 A.5). WireLost: the association ended
        (the caller asks ``requestor.peer_abort`` why)."""
        self.take()
        deadline = time.monotonic() + timeout_s
        self._message_id = self._message_id % 0xFFFF + 1
        command = store_request(sop_class, sop_uid, self._message_id)
        first = p_data_tf_bytes(context_id, 0x03, command)  # the command set: one PDU, last fragment
        try:
            self._dataset(first, fd, offset, length, context_id, pad)
        except (BlockingIOError, TimeoutError) as exc:
            self._abort()
            raise WireLost(f"the peer took no data for too long ({exc})", timeout=True) from None
        except OSError as exc:
            self._lost()
            raise WireLost(f"the connection failed while sending: {exc.strerror or exc}") from None
        response = parse_store_response(self._response(deadline))
        if response is None or response.message_id != self._message_id:
            self._abort()
            raise WireLost("the peer answered the C-STORE with something that is not its C-STORE response")
        self.assoc.dul._idle_timer.restart()
        return response

    def _dataset(self, head: bytes, fd: int, offset: int, length: int, context_id: int, pad: bool) -> None:
        """The dataset as P-DATA-TF PDUs: each header written with MSG_MORE, then its fragment by sendfile."""
        sock, out, timer = self.sock, self.sock.fileno(), self.assoc.dul._idle_timer
        left, pos = length + (1 if pad else 0), offset
        while True:
            n = min(self.max_value, left)
            last = n == left
            sock.sendall(head + _PDU.pack(P_DATA_TF, 0, n + 6, n + 2, context_id, 0x02 if last else 0x00),
                         socket.MSG_MORE)
            head = b""
            end = pos + n - (1 if (last and pad) else 0)
            while pos < end:
                done = os.sendfile(out, fd, pos, end - pos)
                if done == 0:
                    raise OSError(f"the stored file ended {end - pos} bytes early")
                pos += done
            if last and pad:
                sock.sendall(b"\0")
            timer.restart()  # data moves: the network timeout counts from here
            left -= n
            if last:
                return

    # -- the response ----------------------------------------------------------------------------------------
    def _response(self, deadline: float) -> bytes:
        """The command set of the next message: P-DATA-TF PDUs of command fragments up to the last one."""
        command = bytearray()
        while True:
            kind = self._peek(deadline)
            if kind != P_DATA_TF:
                self._lost()
                raise WireLost("the peer ended the association instead of answering the C-STORE")
            head = self._recv(6, deadline)
            _kind, _reserved, length = _PDU_HEAD.unpack(head)
            if length < 6 or length > LONGEST_RESPONSE:
                self._abort()
                raise WireLost(f"the peer sent a P-DATA-TF of {length} bytes where a C-STORE response belongs")
            try:
                items = pdv_items(memoryview(self._recv(length, deadline)))
            except ValueError as exc:
                self._abort()
                raise WireLost(f"the peer sent a broken P-DATA-TF: {exc}") from None
            for _context, value in items:
                control = value[0]
                if not control & 0x01:  # a dataset fragment: a C-STORE-RSP has none
                    self._abort()
                    raise WireLost("the peer sent a data set where its C-STORE response belongs")
                command += value[1:]
                if control & 0x02:
                    return bytes(command)
            if len(command) > LONGEST_RESPONSE:
                self._abort()
                raise WireLost("the peer's C-STORE response has no end")

    def _peek(self, deadline: float) -> int | None:
        """The type of the next PDU without taking it (None: the connection closed)."""
        self._wait_readable(deadline)
        try:
            first = self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return None
        return first[0] if first else None

    def _recv(self, n: int, deadline: float) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            self._wait_readable(deadline)
            try:
                k = self.sock.recv_into(view[got:])
            except OSError as exc:
                self._lost()
                raise WireLost(f"the connection failed while reading the response: {exc.strerror or exc}") from None
            if not k:
                self._lost()
                raise WireLost("the peer closed the connection in the middle of its response")
            got += k
        return bytes(buf)

    def _wait_readable(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            self._abort()
            raise WireLost("no C-STORE response in time", timeout=True)

    # -- endings ---------------------------------------------------------------------------------------------
    def _lost(self) -> None:
        """The peer ended it (or the connection broke): pynetdicom reads what is left and ends the association."""
        self.give_back()
        self.assoc.dul.join(5.0)
        if self.assoc.is_established:
            self.assoc.abort()

    def _abort(self) -> None:
        self.give_back()
        self.assoc.abort()
