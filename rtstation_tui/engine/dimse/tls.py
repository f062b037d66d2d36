"""DICOM TLS (Part 15, BCP 195 profiles): SSL contexts for the receiver and the sender, and a server that does the
TLS handshake where it cannot hurt anyone else.

Why a server class of our own: pynetdicom 3.0.4's ``AssociationServer.get_request`` wraps each accepted socket
inline, in the accept loop. A client that opens TCP and never sends a ClientHello (a port scanner, a half-dead
modality) blocks the accept loop, so *every* other sender waits. ``HandshakeInThreadServer`` accepts plain sockets
and does the handshake in the connection's own thread, with a deadline; a failed or silent handshake is logged
with the peer's address and costs nobody else anything.

Why not ``ssl.create_default_context`` on the server side: for ``Purpose.CLIENT_AUTH`` it trusts the system's
public CAs, so any certificate bought from a public CA would pass ``require_client_cert``. Only ``[tls] ca`` is
trusted for client certificates.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from ..audit import audit
from ..config.acl import normal_ip
from ..config.model import TlsConfig
from ..config.nodes import NodeConfig
from .pduguard import Guard, GuardedSocket, GuardedSSLSocket, Limits

log = logging.getLogger("rtstation.tls")
MINIMUM = ssl.TLSVersion.TLSv1_2  # BCP 195: nothing older


class TlsError(ValueError):
    """A TLS setting that cannot work: names the key, the file and what is wrong with it."""


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The receiver's context: our certificate and key; client certificates checked against ``[tls] ca`` only
    (required with ``require_client_cert``, else verified when offered)."""
    if tls.certificate is None or tls.key is None:
        raise TlsError("[tls] certificate and key are both required to accept TLS connections")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MINIMUM
    _load_chain(ctx, tls.certificate, tls.key)
    if tls.ca is not None:
        _load_ca(ctx, tls.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    elif tls.require_client_cert:
        raise TlsError("[tls] require_client_cert = true needs [tls] ca: the CA that signs the clients' certificates")
    return ctx


def client_context(tls: TlsConfig, node: NodeConfig) -> ssl.SSLContext:
    """The sender's context for ``node``: the peer's certificate must chain to ``[tls] ca`` (or, without it, to the
    system's CAs) and name ``node.host``; our certificate is presented when configured (mutual TLS).

    Use as ``ae.associate(node.host, node.port, ae_title=node.ae_title, tls_args=(ctx, node.host))``.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = MINIMUM
    if tls.ca is not None:
        _load_ca(ctx, tls.ca)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if tls.certificate is not None and tls.key is not None:
        _load_chain(ctx, tls.certificate, tls.key)
    if not node.host:
        raise TlsError(f"node {node.name!r}: a host is needed to check the peer's certificate")
    return ctx


def _load_chain(ctx: ssl.SSLContext, certificate: Path, key: Path) -> None:
    for what, path in (("certificate", certificate), ("key", key)):
        if not path.is_file():
            raise TlsError(f"[tls] {what} {path}: no such file")
    try:
        ctx.load_cert_chain(str(certificate), str(key))
    except ssl.SSLError as exc:
        why = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else (
            f"not a PEM certificate and unencrypted PEM key ({exc.reason or exc})")
        raise TlsError(f"[tls] certificate {certificate} / key {key}: {why}") from None
    except OSError as exc:
        raise TlsError(f"[tls] certificate {certificate} / key {key}: cannot read: {exc.strerror or exc}") from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    if not ca.is_file():
        raise TlsError(f"[tls] ca {ca}: no such file")
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"[tls] ca {ca}: not a PEM certificate bundle ({exc})") from None


@dataclass
class _Conn:
    """One open connection, from accept to close, for the caps."""

    ip: str
    sock: Any  # the socket it lives on: the accepted one, then the guarded one
    started: float
    guard: Guard | None = None
    evicted: bool = False
    handshaking: bool = False  # TLS: wrap_socket has detached the accepted socket and not returned yet
    fd: int = -1  # the same through adopting and TLS wrapping (both take the accepted socket's fd over)

    @property
    def live(self) -> bool:
        g = self.guard
        if self.evicted:
            return False
        if self.handshaking:
            return True
        if g is not None:
            if g.closed or g.eof or g.reason is not None:
                return False
            if getattr(self.sock, "guard", None) is not g:
                return True  # being adopted: the accepted socket's fd already reads -1, the new one is not here yet
        try:
            return bool(self.sock.fileno() != -1)
        except (OSError, ValueError):
            return False

    @property
    def unauthenticated(self) -> bool:
        return self.guard is None or not self.guard.authenticated


class HandshakeInThreadServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, with the TLS handshake moved from the accept loop into the connection's thread
    and bounded by ``handshake_timeout`` seconds, PDU rules on every accepted socket (``pduguard``), and caps.

    Why the caps: every TCP connection costs a thread until it sends its association request (or its handshake
    times out), and ``max_associations`` is only checked once the request arrives. A connection is
    *unauthenticated* until we send its A-ASSOCIATE-AC. At most ``per_peer_unauthenticated`` of them per peer
    address: a slowloris from one host cannot take more. Beyond ``max_connections`` open connections (0: no cap)
    the oldest unauthenticated one is dropped to make room, so strangers can never keep an allowed AE out; only
    when every connection is an accepted association is the new one closed at once. Refusals and drops are logged
    at most every 10 seconds, with counts. These hold with pynetdicom's stock loops too (they are all here)."""

    handshake_timeout: float = 10.0
    max_connections: int = 0
    per_peer_unauthenticated: int = 8
    limits: Limits | None = None  # PDU rules for accepted sockets; None: none
    request_queue_size = 64  # listen() backlog; socketserver's 5 makes a burst of senders wait for SYN retries
    daemon_threads = True  # shutdown must not wait for silent handshakes; associations are waited for by Receiver.stop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: list[_Conn] = []
        self._conns_lock = threading.Lock()
        self._refusals: dict[str, tuple[int, float]] = {}  # kind: (not logged yet, when last logged)
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        assert self.socket is not None
        return self.socket.accept()  # plain TCP: the accept loop never waits on a peer

    def open_connections(self) -> int:
        with self._conns_lock:
            self._conns = [c for c in self._conns if c.live]
            return len(self._conns)

    def process_request(self, request: Any, client_address: Any) -> None:
        ip = normal_ip(client_address[0]) if isinstance(client_address, tuple) else str(client_address)
        conn = _Conn(ip, request, time.monotonic(), fd=request.fileno())
        with self._conns_lock:
            self._conns = [c for c in self._conns if c.live]
            waiting = [c for c in self._conns if c.unauthenticated]
            mine = sum(1 for c in waiting if c.ip == ip)
            reason, victim = None, None
            if self.per_peer_unauthenticated and mine >= self.per_peer_unauthenticated:
                reason = f"{mine} connections from {ip} not yet accepted as associations (the limit per address)"
            elif self.max_connections and len(self._conns) >= self.max_connections:
                if waiting:
                    victim = min(waiting, key=lambda c: c.started)
                    victim.evicted = True
                    self._conns.remove(victim)
                else:
                    reason = f"the limit of {self.max_connections} open connections (2 x receiver.max_associations" \
                             " + 16) is reached by accepted associations"
            if reason is None:
                self._conns.append(conn)
        if reason is not None:
            self._refuse(request, client_address, reason)
            return
        if victim is not None:
            self._evict(victim, ip)
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread: nobody else will end it
            conn.evicted = True
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        conn = next((c for c in self._conns if c.sock is request), None)
        try:
            ctx = self.ssl_context
            if ctx is not None and not isinstance(request, ssl.SSLSocket):
                if conn is not None:
                    conn.handshaking = True
                try:
                    request = self._handshake(ctx, request, client_address)
                finally:
                    if conn is not None:
                        conn.handshaking = False
                if request is None:
                    if conn is not None:
                        conn.evicted = True  # closed
                    return
            if self.limits is not None and conn is not None and not conn.evicted:
                request = self._guarded(request, conn, client_address)
            elif conn is not None:
                conn.sock = request
            super().process_request_thread(request, client_address)  # starts the association's own thread
        except BaseException:
            if conn is not None:
                conn.evicted = True
            raise

    def _guarded(self, request: Any, conn: _Conn, peer: Any) -> Any:
        assert self.limits is not None
        guard = Guard(self.limits, f"{conn.ip}:{peer[1]}" if isinstance(peer, tuple) else conn.ip,
                      on_gone=self._gone_before_request)
        if isinstance(request, GuardedSSLSocket):
            request.guard = guard
        elif not isinstance(request, ssl.SSLSocket):
            conn.guard = guard  # first: adopting detaches the accepted socket, whose fd then reads -1
            request = GuardedSocket.adopt(request, guard)
        conn.sock, conn.guard = request, guard
        return request

    def _gone_before_request(self, guard: Guard) -> None:
        """[HARDEN2] 1 with pynetdicom's stock loops: a connection that ended before one whole PDU arrived can bring
        no A-ASSOCIATE-RQ any more, yet the stock association thread waits the whole ACSE timeout for one (a thread
        per monitoring probe, and a stop that waits). Wake it with what its queue yields on a timeout (None): it
        ends as after one, at once. Our fast loops end such a connection themselves (their queue is their own)."""
        if guard.pdus:
            return
        for assoc in self.active_associations:
            dul = assoc.dul
            if getattr(getattr(dul, "socket", None), "socket", None) is not None and \
                    getattr(dul.socket.socket, "guard", None) is guard and type(dul.to_user_queue) is queue.Queue:
                dul.to_user_queue.put(None)

    def _evict(self, victim: _Conn, newcomer: str) -> None:
        if victim.guard is not None:
            victim.guard.reported = True
        try:  # on a duplicate of its fd: its socket object may be mid-handshake in its own thread
            with socket.fromfd(victim.fd, socket.AF_INET, socket.SOCK_STREAM) as dup:
                dup.shutdown(socket.SHUT_RDWR)  # its thread sees the end and finishes
        except (OSError, ValueError):
            pass
        self._log_refusal(f"dropped a connection from {victim.ip} that was not yet an association (open "
                          f"{time.monotonic() - victim.started:.0f} s), to make room for {newcomer}",
                          victim.ip, "connection_dropped")

    def _refuse(self, sock: socket.socket, peer: Any, reason: str) -> None:
        try:
            sock.close()
        except OSError:
            pass
        where = f"{normal_ip(peer[0])}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._log_refusal(f"refused connection from {where}: {reason}", where, "connection_refused")

    def _log_refusal(self, line: str, where: str, kind: str) -> None:
        """One line (and audit record) per kind at most every 10 s, with how many were not logged."""
        count, last = self._refusals.get(kind, (0, 0.0))
        count += 1
        now = time.monotonic()
        if now - last < 10:
            self._refusals[kind] = (count, last)
            return
        log.warning("%s; %d like it since the last such line", line, count)
        audit(kind, peer=where, reason=line, refused_since_last_record=count)
        self._refusals[kind] = (0, now)

    def _handshake(self, ctx: ssl.SSLContext, sock: socket.socket, peer: Any) -> ssl.SSLSocket | None:
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            sock.settimeout(self.handshake_timeout)
            ctx.sslsocket_class = GuardedSSLSocket  # our context: a TLS socket the PDU rules can apply to
            tls_sock = ctx.wrap_socket(sock, server_side=True)
            tls_sock.settimeout(None)  # pynetdicom's transport expects a blocking socket, as with inline wrapping
            return tls_sock
        except (TimeoutError, socket.timeout):
            reason = f"no TLS handshake within {self.handshake_timeout:g} s"
        except ssl.SSLError as exc:
            reason = f"TLS handshake failed: {exc.reason or exc}"
        except (OSError, ValueError) as exc:
            reason = f"connection lost during the TLS handshake: {exc}"
        log.warning("closed connection from %s: %s", where, reason)
        audit("connection_refused", peer=where, reason=reason)
        try:
            sock.close()
        except OSError:
            pass
        return None


def connection_limit(max_associations: int) -> int:
    """Open connections allowed (handshakes + associations): room for every allowed association, for refusing the
    extra ones politely with A-ASSOCIATE-RJ, and for a few slow handshakes."""
    return 2 * max_associations + 16


def start_server(ae: Any, address: tuple[str, int], handlers: list[Any], ssl_context: ssl.SSLContext | None,
                 handshake_timeout: float, max_connections: int = 0,
                 limits: Limits | None = None) -> HandshakeInThreadServer:
    """``ae.start_server(block=False)`` with our server class (pynetdicom's own call cannot take one)."""
    server = ae.make_server(address, ssl_context=ssl_context, evt_handlers=handlers,
                            server_class=HandshakeInThreadServer)
    server.handshake_timeout = handshake_timeout
    server.max_connections = max_connections
    server.limits = limits
    thread = threading.Thread(target=server.serve_forever, name="rtstation-acceptor", daemon=True)
    thread.start()
    ae._servers.append(server)  # so ae.shutdown() stops it too, as with ae.start_server
    return server
