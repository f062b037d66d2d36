"""The receiver's sockets: they know where each DICOM PDU starts and ends, so a hostile or broken peer is cut off by
rules that hold whatever reads them (our fast loops or pynetdicom's stock ones, plain TCP or TLS).

Why at the socket: both pynetdicom loops trust the PDU header. They read an announced length (up to 4 GB) into memory
before anyone knows who is calling, and they wait for each byte without a deadline, so one byte every few seconds
inside a PDU holds a connection (and an association slot) for ever; the idle timer only sees the start of a PDU.
``GuardedSocket`` / ``GuardedSSLSocket`` are the accepted socket itself (``select`` and ``pending()`` work as
before) with ``recv``/``recv_into`` that follow the PDU stream and enforce:

- before the association is accepted, a PDU is at most ``request_max`` bytes (an A-ASSOCIATE-RQ is small);
  afterwards at most the maximum PDU length we announced (``pdu_max``, 0: unlimited). A longer one is answered
  with an A-ABORT and the connection is closed before its body is read;
- a whole PDU within ``pdu_timeout`` seconds of its first byte, the first one (the A-ASSOCIATE-RQ) within
  ``pdu_timeout`` of the connection: the deadline is per PDU, not per byte;
- the AE titles of the A-ASSOCIATE-RQ are checked as soon as their 32 bytes are in: an empty one, or one holding
  NUL, backslash, non-ASCII or control characters is answered with an A-ASSOCIATE-RJ and a line of ours that names
  the peer (pynetdicom would abort with a traceback quoting the raw bytes).

The first PDU we send tells whether the peer was accepted (A-ASSOCIATE-AC): until then the connection counts as
unauthenticated for the server's per-address cap (``tls.HandshakeInThreadServer``). A connection that sent
something and ends without an A-ASSOCIATE-AC or -RJ is logged and audited (``association_failed``), so every
association attempt leaves a record. No pynetdicom internals are touched here.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, cast

from ..audit import audit
from ..dicom.aetitle import ae_title_problem

log = logging.getLogger("rtstation.receiver")
_HEADER = struct.Struct(">BxL")
A_ABORT_INVALID_PDU = bytes.fromhex("07000000000400000206")  # source: service provider, reason: invalid parameter
RJ_CALLING = bytes.fromhex("03000000000400010103")  # rejected-permanent, service-user, calling AE not recognised
RJ_CALLED = bytes.fromhex("03000000000400010107")  # ..., called AE not recognised
REQUEST_MAX = 256 * 1024  # 128 presentation contexts with every transfer syntax pynetdicom knows fit in ~120 KiB


class PduRefused(ConnectionAbortedError):
    """The peer broke a rule of ours; both pynetdicom loops treat it as a lost connection (Evt17)."""


@dataclass(frozen=True)
class Limits:
    pdu_timeout: float  # s: a whole PDU within this (receiver.network_timeout_s)
    pdu_max: int  # bytes: the maximum PDU length we announced (receiver.max_pdu; 0: none)
    request_max: int = REQUEST_MAX  # bytes: any PDU before the association is accepted


class Guard:
    """The PDU bookkeeping of one connection (only its DUL thread reads it; the server reads the flags)."""

    def __init__(self, limits: Limits, peer: str, on_close: Callable[[Guard], None] | None = None,
                 on_gone: Callable[[Guard], None] | None = None) -> None:
        self.limits, self.peer, self.on_close, self.on_gone = limits, peer, on_close, on_gone
        self.opened = time.monotonic()
        self.deadline: float | None = self.opened + limits.pdu_timeout  # the A-ASSOCIATE-RQ's, from the start
        self.header = bytearray()
        self.left = 0  # body bytes of the current PDU still to come
        self.length = 0
        self.pdus = 0  # whole PDUs received
        self.received = 0
        self.request = bytearray()  # the first 36 body bytes of the first PDU: version, reserved, AE titles
        self.calling = ""
        self.first_sent: int | None = None  # type of the first PDU we sent: 2 accepted, 3 rejected, 7 aborted
        self.reason: str | None = None  # why we cut the connection
        self.reported = False  # its end is already logged and audited (by us or the receiver)
        self.closed = False
        self.eof = False
        self._gone = False

    @property
    def authenticated(self) -> bool:
        return self.first_sent == 2

    @property
    def in_pdu(self) -> bool:
        return bool(self.header) or self.left > 0

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timed_out(self) -> PduRefused:
        if self.pdus == 0:
            what = f"no whole A-ASSOCIATE-RQ within {self.limits.pdu_timeout:g} s of connecting"
        else:
            what = f"no whole PDU within {self.limits.pdu_timeout:g} s (receiver.network_timeout_s)"
        got = len(self.header) + (self.length - self.left if len(self.header) == 6 else 0)
        total = f"{self.length + 6}" if len(self.header) == 6 else "?"
        return self.refuse(f"{what}: {got} of {total} bytes arrived")

    def refuse(self, reason: str, kind: str = "association_failed", **fields: str) -> PduRefused:
        self.reason = reason
        who = f"{self.calling}@{self.peer}" if self.calling else self.peer
        log.warning("closed connection from %s: %s", who, reason)
        if not self.authenticated:
            self.reported = True
            audit(kind, peer=self.peer, calling_ae=self.calling, reason=reason, **fields)
        return PduRefused(reason)

    def consumed(self, data: memoryview, send: Callable[[bytes], Any]) -> None:
        """Follow the PDU stream through bytes just read; raise ``PduRefused`` on a rule broken."""
        n = len(data)
        if 0 < n <= self.left and self.pdus > 0:  # inside a body, past the request: only counting to do
            self.received += n
            self.left -= n
            if not self.left:
                self._pdu_done()
            return
        if not data:
            self.gone()  # whenever its socket is closed here (stock loops: only after the ACSE timeout)
            return
        self.received += len(data)
        i, n = 0, len(data)
        while i < n:
            if self.left == 0:
                if not self.header and self.pdus > 0:
                    self.deadline = time.monotonic() + self.limits.pdu_timeout
                take = min(6 - len(self.header), n - i)
                self.header += data[i:i + take]
                i += take
                if len(self.header) == 6:
                    self._check_header(send)
                continue
            take = min(self.left, n - i)
            if self.pdus == 0 and len(self.request) < 36:
                self.request += data[i:i + min(take, 36 - len(self.request))]
                if len(self.request) == 36 and self.header[0] == 1:
                    self._check_titles(send)
            self.left -= take
            i += take
            if self.left == 0:
                self._pdu_done()

    def gone(self) -> None:
        """The peer is gone (end of stream, reset, or the socket closed here); ``on_gone`` hears of it once."""
        self.eof = True
        if not self._gone:
            self._gone = True
            if self.on_gone is not None:
                self.on_gone(self)

    def _check_header(self, send: Callable[[bytes], Any]) -> None:
        pdu_type, length = _HEADER.unpack(self.header)
        limit = self.limits.request_max if not self.authenticated else self.limits.pdu_max
        if limit and length > limit:
            when = "before an association was accepted" if not self.authenticated else \
                "longer than the maximum PDU length we announced (receiver.max_pdu)"
            _quietly(send, A_ABORT_INVALID_PDU)
            raise self.refuse(f"a PDU (type 0x{pdu_type:02X}) announcing {length} bytes {when}; the limit is "
                              f"{limit}")
        self.length = self.left = length
        if length == 0:
            self._pdu_done()

    def _check_titles(self, send: Callable[[bytes], Any]) -> None:
        called, calling = bytes(self.request[4:20]), bytes(self.request[20:36])
        shown = {k: repr(v.rstrip(b" "))[2:-1] for k, v in (("calling", calling), ("called", called))}
        self.calling = shown["calling"]  # printable: what it was, escaped
        for what, raw, rj in (("calling", calling, RJ_CALLING), ("called", called, RJ_CALLED)):
            problem = ae_title_problem(raw.decode("latin-1").rstrip(" "))
            if problem is not None:
                _quietly(send, rj)
                self.first_sent = 3
                raise self.refuse(f"rejected association: the {what} AE title '{shown[what]}' is invalid "
                                  f"({problem})", "association_rejected", called_ae=shown["called"])

    def _pdu_done(self) -> None:
        self.header.clear()
        self.left = 0
        self.pdus += 1
        self.deadline = None

    def sent(self, data: Any) -> None:
        if self.first_sent is None and len(data):
            self.first_sent = data[0]

    def finished(self) -> None:
        """The socket is closed: an attempt that never became an association is recorded once."""
        if self.closed:
            return
        self.closed = True
        self.gone()
        if not self.reported and self.first_sent not in (2, 3) and self.received:
            reason = "aborted by the station (the request could not be decoded)" if self.first_sent == 7 else \
                "closed before a whole A-ASSOCIATE-RQ arrived" if self.pdus == 0 else "closed during negotiation"
            who = f"{self.calling}@{self.peer}" if self.calling else self.peer
            log.warning("association attempt from %s failed: %s (%d bytes received)", who, reason, self.received)
            audit("association_failed", peer=self.peer, calling_ae=self.calling, reason=reason,
                  bytes=self.received)
        if self.on_close is not None:
            self.on_close(self)


def _quietly(send: Callable[[bytes], Any], data: bytes) -> None:
    try:
        send(data)
    except OSError:
        pass


_DONTWAIT = int(socket.MSG_DONTWAIT)  # a plain int: or-ing the enum costs more than the recv
_LOST = (ConnectionError, ssl.SSLEOFError)  # the peer reset or cut the connection


class _Guarded:
    """``recv``/``recv_into``/``send*``/``close`` through a ``Guard``; without one (``guard is None``), stock."""

    guard: Guard | None = None

    def _wait(self, g: Guard) -> None:
        remaining = g.remaining()
        if remaining is None:
            return
        if remaining <= 0:
            raise g.timed_out()
        ready, _, _ = select.select([cast(Any, self)], [], [], remaining)
        if not ready:
            raise g.timed_out()

    def _read(self, call: Callable[[int], Any], flags: int) -> Any:
        raise NotImplementedError

    def recv(self, bufsize: int = 1024, flags: int = 0) -> bytes:
        g = self.guard
        if g is None:
            return super().recv(bufsize, flags)  # type: ignore[misc, no-any-return]
        try:
            data = self._read(lambda f: super(_Guarded, self).recv(bufsize, f), flags)  # type: ignore[misc]
        except _LOST:
            g.gone()  # reset by the peer: nothing more can come (stock loops may never close the socket)
            raise
        g.consumed(memoryview(data), self._raw_send)
        return data  # type: ignore[no-any-return]

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        nbytes = nbytes or memoryview(buffer).nbytes  # 0/None: the whole buffer, for sockets and SSL sockets alike
        g = self.guard
        if g is None:
            return super().recv_into(buffer, nbytes, flags)  # type: ignore[misc, no-any-return]
        try:
            k = self._read(lambda f: super(_Guarded, self).recv_into(buffer, nbytes, f), flags)  # type: ignore[misc]
        except _LOST:
            g.gone()
            raise
        with memoryview(buffer) as view:
            g.consumed(view[:k], self._raw_send)
        return k  # type: ignore[no-any-return]

    def _raw_send(self, data: bytes) -> None:
        super().sendall(data)  # type: ignore[misc]

    def send(self, data: Any, flags: int = 0) -> int:
        if self.guard is not None:
            self.guard.sent(data)
        return super().send(data, flags)  # type: ignore[misc, no-any-return]

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self.guard is not None:
            self.guard.sent(data)
        super().sendall(data, flags)  # type: ignore[misc]

    def close(self) -> None:
        g = self.guard
        try:
            super().close()  # type: ignore[misc]
        finally:
            if g is not None:
                g.finished()


class GuardedSocket(_Guarded, socket.socket):
    """A plain accepted socket under a ``Guard``: a non-blocking try first, ``select`` only when it would block."""

    def _read(self, call: Callable[[int], Any], flags: int) -> Any:
        g = self.guard
        assert g is not None
        if not g.in_pdu and g.pdus > 0:
            return call(flags)  # between PDUs: the loops only read once select() said so
        while True:
            try:
                return call(flags | _DONTWAIT)
            except BlockingIOError:
                pass
            self._wait(g)  # outside the handler: a timeout is not "during handling of" BlockingIOError

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        """``_Guarded.recv_into`` without the per-call closure: the receive path calls this twice per PDU."""
        g = self.guard
        if g is None or flags:
            return super().recv_into(buffer, nbytes, flags)
        nbytes = nbytes or memoryview(buffer).nbytes
        try:
            if not g.in_pdu and g.pdus > 0:
                k = socket.socket.recv_into(self, buffer, nbytes)
            else:
                while True:
                    try:
                        k = socket.socket.recv_into(self, buffer, nbytes, _DONTWAIT)
                        break
                    except BlockingIOError:
                        pass
                    self._wait(g)
        except _LOST:
            g.gone()  # as _Guarded.recv_into
            raise
        with memoryview(buffer) as view:
            g.consumed(view[:k], self._raw_send)
        return k

    @classmethod
    def adopt(cls, sock: socket.socket, guard: Guard) -> GuardedSocket:
        new = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        new.guard = guard
        return new


class GuardedSSLSocket(_Guarded, ssl.SSLSocket):  # type: ignore[misc]
    """A TLS accepted socket under a ``Guard`` (made by ``ssl.SSLContext.wrap_socket`` through
    ``sslsocket_class``): the deadline is a socket timeout around each read, since a partial TLS record blocks."""

    def _read(self, call: Callable[[int], Any], flags: int) -> Any:
        g = self.guard
        assert g is not None
        remaining = g.remaining()
        if remaining is None or self.pending():
            return call(flags)
        if remaining <= 0:
            raise g.timed_out()
        self.settimeout(remaining)
        try:
            return call(flags)
        except (TimeoutError, socket.timeout):
            raise g.timed_out() from None
        finally:
            self.settimeout(None)
