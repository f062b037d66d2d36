"""[HARDEN2] 1: bare TCP probes (connect and close, as a monitoring check does) must not hold a connection slot.

Before the fix each closed connection left its association thread waiting the whole ACSE timeout (up to 30 s) for an
A-ASSOCIATE-RQ that could no longer come: a few dozen probes filled the connection cap, every legitimate sender was
refused, and a stop waited for the timeout. Here the ACSE timeout is 30 s, so anything that frees the slots within a
few seconds can only be the closed connection itself ending its association."""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest

from helpers import BREAST, Serve, echoscu, station_toml, storescu, stored_files, wait_for, write_config
from test_tls import Pki, dcmtk_tls, pki, tls_section  # noqa: F401  (pki is a fixture)

PROBES = 64  # more than three times the connection cap (2 x 2 + 16)
LIMITS = "max_associations = 2\nnetwork_timeout_s = 60"  # ACSE timeout min(30, 60) = 30 s


def threads(server: Serve) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def half_associate_rq() -> bytes:
    """The start of an A-ASSOCIATE-RQ that announces 200 bytes and brings 40."""
    return struct.pack(">BBIHH", 1, 0, 200, 1, 0) + b"RTSTATION".ljust(16) + b"PROBE".ljust(16) + b"\x00" * 4


def _close(sock: socket.socket, how: int) -> None:
    if how % 4 == 1:  # RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how % 4 == 2:
        sock.sendall(half_associate_rq())
    elif how % 4 == 3:
        sock.sendall(half_associate_rq()[:3])  # not even a whole PDU header
    sock.close()


def probe(port: int, how: int, tls: ssl.SSLContext | None = None) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls is not None and how % 8 < 4:  # half of them complete the handshake, the rest are bare TCP
        try:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        except (ssl.SSLError, OSError):  # refused over the cap: closed at once, which is fine too
            sock.close()
            return
    try:
        _close(sock, how)
    except OSError:  # closed by the station (over the cap)
        sock.close()


def run_probes(server: Serve, port: int, tls: ssl.SSLContext | None = None, wait: bool = True) -> None:
    baseline = threads(server)
    started = time.monotonic()
    for i in range(PROBES):
        probe(port, i, tls)
    assert time.monotonic() - started < 25, "the probes took so long that the ACSE timeout could explain the result"
    if not wait:
        return
    # a slot is freed when the connection closes, not after the ACSE timeout (30 s)
    wait_for(lambda: threads(server) <= baseline, 5, what=f"the server's threads back to {baseline} after the probes")
    assert server.proc is not None and server.proc.poll() is None


def stops_quickly(server: Serve) -> None:
    started = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - started < 5, "SIGTERM waited for something"


def test_closed_probes_free_their_slots_at_once(pynetdicom_mode, tmp_path, port):
    """In both modes: pynetdicom's stock association thread is woken too when its connection ends unasked."""
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=LIMITS))
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        assert echoscu(port).returncode == 0
        for _ in range(2):  # twice the cap, twice: nothing accumulates
            run_probes(server, port)
        proc = echoscu(port)
        assert proc.returncode == 0, f"echo refused after the probes: {proc.stderr}"
        storescu(port, BREAST)
        wait_for(lambda: len(stored_files(tmp_path / "var")) == len(BREAST), what="the store after the probes")
        run_probes(server, port, wait=False)  # and a stop right after a burst does not wait for the probes
        stops_quickly(server)
    finally:
        server.kill()


@pytest.fixture
def tls_client(pki: Pki) -> ssl.SSLContext:  # noqa: F811
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_crt), str(pki.client_key))
    return ctx


def test_closed_probes_free_their_slots_at_once_over_tls(tmp_path, port, pki, tls_client):  # noqa: F811
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=LIMITS,
                                                          extra=tls_section(pki)))
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        assert dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca).returncode == 0
        for _ in range(2):
            run_probes(server, port, tls_client)
        proc = dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca)
        assert proc.returncode == 0, f"echo refused after the probes: {proc.stderr}"
        proc = dcmtk_tls("storescu", port, pki.client_key, pki.client_crt, pki.ca, *BREAST)
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: len(stored_files(tmp_path / "var")) == len(BREAST), what="the store after the probes")
        run_probes(server, port, tls_client, wait=False)
        stops_quickly(server)
    finally:
        server.kill()
