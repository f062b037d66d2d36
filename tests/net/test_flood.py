"""A flood of idle TCP connections cannot exhaust the receiver nor lock an allowed sender out ([HARDEN2] 4): at most
8 connections per peer address that are not yet associations (the next one is closed at once), and beyond
2 x max_associations + 16 open connections the oldest one that is not yet an association is dropped to make room.
Refusals and drops are logged at most every 10 s; service resumes when the flood stops."""

from __future__ import annotations

import socket

from helpers import Serve, echoscu, station_toml, wait_for, write_config
from test_tls import dcmtk_tls, pki, tls_section  # noqa: F401  (pki is a fixture)

LIMITS = "max_associations = 1\nnetwork_timeout_s = 5"


def connect_from(source: str, port: int) -> socket.socket:
    """A connection from another loopback address (all of 127/8 is local): a different peer for the caps."""
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(s: socket.socket, timeout: float = 5) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_from_one_address_are_capped(tmp_path, port):
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=LIMITS))
    server = Serve(cfg, tmp_path / "serve.log").start()
    idle: list[socket.socket] = []
    try:
        for _ in range(8):
            idle.append(connect_from("127.0.0.2", port))
        extra = connect_from("127.0.0.2", port)
        assert closed_by_peer(extra), "the ninth idle connection from one address should be closed at once"
        extra.close()
        wait_for(lambda: "refused connection from 127.0.0.2" in server.text(), what="the refusal logged")
        assert "8 connections from 127.0.0.2 not yet accepted as associations" in server.text()
        assert echoscu(port).returncode == 0, "another address is still served"
        for s in idle:
            s.close()
        idle.clear()
        # a closed connection frees its slot at once (before [HARDEN2] 1: only at the ACSE timeout, 5 s here)
        wait_for(lambda: echoscu(port).returncode == 0, 4, what="service after the flood")
    finally:
        for s in idle:
            s.close()
        server.kill()


def test_a_full_house_of_idle_connections_makes_room_for_a_sender(tmp_path, port):
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=LIMITS))
    server = Serve(cfg, tmp_path / "serve.log").start()
    idle: list[socket.socket] = []
    try:
        for i in range(18):  # the connection cap for max_associations = 1, from 18 addresses
            idle.append(connect_from(f"127.0.1.{i + 1}", port))
        proc = echoscu(port)
        assert proc.returncode == 0, f"an allowed sender was locked out by idle connections: {proc.stderr}"
        assert closed_by_peer(idle[0]), "the oldest idle connection should have been dropped to make room"
        wait_for(lambda: "dropped a connection from 127.0.1.1 that was not yet an association" in server.text(),
                 what="the drop logged")
        assert server.proc is not None and server.proc.poll() is None
    finally:
        for s in idle:
            s.close()
        server.kill()


def test_hostile_pdus_never_stop_the_receiver(serve, port):
    """Garbage, a 4 GB A-ASSOCIATE-RQ, P-DATA before any association, an unknown PDU type, a truncated request:
    each connection is dropped or aborted on its own, and the next association is served."""
    import os
    import struct

    hostile = {
        "garbage": bytes(range(256)) * 2,
        "huge A-ASSOCIATE-RQ": struct.pack(">BBI", 1, 0, 0xFFFFFFFF) + b"\x00" * 100,
        "P-DATA first": struct.pack(">BBI", 4, 0, 10) + b"\x00" * 10,
        "unknown PDU type": struct.pack(">BBI", 9, 0, 4) + b"abcd",
        "truncated A-ASSOCIATE-RQ": struct.pack(">BBI", 1, 0, 10) + b"\x00\x01" + b"\x00" * 8,
        "random": os.urandom(300),
    }
    for name, data in hostile.items():
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(data)
        assert echoscu(port).returncode == 0, f"not serving after {name}"
    assert serve.proc is not None and serve.proc.poll() is None


def test_silent_tls_handshakes_make_room_for_a_tls_sender(tmp_path, port, pki):  # noqa: F811
    """Connections that never send a ClientHello count as not yet associations: the 19th drops the oldest."""
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=LIMITS,
                                                          extra=tls_section(pki, timeout=30)))
    server = Serve(cfg, tmp_path / "serve.log").start()
    idle: list[socket.socket] = []
    try:
        for i in range(18):
            idle.append(connect_from(f"127.0.1.{i + 1}", port))
        proc = dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca)
        assert proc.returncode == 0, f"a TLS sender was locked out by silent handshakes: {proc.stderr}"
        assert closed_by_peer(idle[0]), "the oldest silent handshake should have been dropped to make room"
    finally:
        for s in idle:
            s.close()
        server.kill()
