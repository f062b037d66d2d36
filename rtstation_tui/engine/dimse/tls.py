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
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from ..audit import audit
from ..config.model import TlsConfig
from ..config.nodes import NodeConfig

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


class HandshakeInThreadServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, with the TLS handshake moved from the accept loop into the connection's thread
    and bounded by ``handshake_timeout`` seconds, and a cap on open connections.

    Why the cap: every TCP connection costs a thread until it sends its association request (or its handshake
    times out), and ``max_associations`` is only checked once the request arrives. Beyond ``max_connections``
    (handshakes in progress + associations, 0: no cap) a new connection is closed at once, so a flood of idle
    connections cannot exhaust the process; the log says so at most every 10 seconds."""

    handshake_timeout: float = 10.0
    max_connections: int = 0
    request_queue_size = 64  # listen() backlog; socketserver's 5 makes a burst of senders wait for SYN retries
    daemon_threads = True  # shutdown must not wait for silent handshakes; associations are waited for by Receiver.stop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._refused = 0
        self._refused_logged = 0.0
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        assert self.socket is not None
        return self.socket.accept()  # plain TCP: the accept loop never waits on a peer

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.max_connections and self._pending + len(self.active_associations) >= self.max_connections:
            self._refuse(request, client_address)
            return
        with self._pending_lock:
            self._pending += 1
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread: nobody else will count it down
            with self._pending_lock:
                self._pending -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            ctx = self.ssl_context
            if ctx is not None and not isinstance(request, ssl.SSLSocket):
                request = self._handshake(ctx, request, client_address)
                if request is None:
                    return
            super().process_request_thread(request, client_address)  # starts the association's own thread
        finally:
            with self._pending_lock:
                self._pending -= 1

    def _refuse(self, sock: socket.socket, peer: Any) -> None:
        try:
            sock.close()
        except OSError:
            pass
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 10:
            where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
            log.warning("refused connection from %s: the limit of %d open connections (2 x receiver.max_associations"
                        " + 16) is reached; %d refused since the last such line", where, self.max_connections,
                        self._refused)
            audit("connection_refused", peer=where, reason=f"{self.max_connections} connections open",
                  refused_since_last_record=self._refused)
            self._refused, self._refused_logged = 0, now

    def _handshake(self, ctx: ssl.SSLContext, sock: socket.socket, peer: Any) -> ssl.SSLSocket | None:
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            sock.settimeout(self.handshake_timeout)
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
                 handshake_timeout: float, max_connections: int = 0) -> HandshakeInThreadServer:
    """``ae.start_server(block=False)`` with our server class (pynetdicom's own call cannot take one)."""
    server = ae.make_server(address, ssl_context=ssl_context, evt_handlers=handlers,
                            server_class=HandshakeInThreadServer)
    server.handshake_timeout = handshake_timeout
    server.max_connections = max_connections
    thread = threading.Thread(target=server.serve_forever, name="rtstation-acceptor", daemon=True)
    thread.start()
    ae._servers.append(server)  # so ae.shutdown() stops it too, as with ae.start_server
    return server
