"""[HARDEN2] 3, 4, 5, 13: hostile peers against a real ``rtstation serve``, in both pynetdicom modes.

A PDU header announcing ~4 GB before any association, association requests and P-DATA trickled a byte at a time
(slowloris), invalid AE titles, and a listener on ``::``. Each test shows what a user would notice: memory, a
legitimate DCMTK sender served or locked out, what the log and the audit trail say."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path

from helpers import BREAST, Serve, echoscu, station_toml, storescu, stored_files, wait_for, write_config
from rawpdu import CT_STORAGE, associate, associate_rq, ended, read_pdu


def rss_mb(server: Serve) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def audit_records(data_dir: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((data_dir / "logs").glob("audit-*.jsonl"))
            for line in f.read_text().splitlines()]


def start(tmp_path: Path, port: int, receiver: str = "", bind: str = "127.0.0.1") -> Serve:
    text = station_toml(tmp_path / "var", port, receiver=receiver).replace('bind = "127.0.0.1"', f'bind = "{bind}"')
    return Serve(write_config(tmp_path / "rt.toml", text), tmp_path / "serve.log").start()


class Trickler:
    """Sends the next byte of each connection's ``data`` every ``period`` seconds (the attack's own pace, in a
    thread) until stopped or the station closes the connection."""

    def __init__(self, conns: list[tuple[socket.socket, bytes]], period: float = 0.5) -> None:
        self.conns, self.period, self.stop = conns, period, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            for sock, data in self.conns:
                if i < len(data):
                    try:
                        sock.send(data[i:i + 1])
                    except OSError:
                        pass
            i += 1
            self.stop.wait(self.period)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock, _ in self.conns:
            sock.close()


def test_a_4gb_pdu_header_before_any_association_is_never_buffered(tmp_path, port, pynetdicom_mode):
    server = start(tmp_path, port)
    try:
        base = rss_mb(server)
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        pushed = []
        for s in socks:
            s.sendall(struct.pack(">BBI", 1, 0, 0xFFFFFFF0))
            s.settimeout(5)
            sent = 0
            try:
                while sent < 48 << 20:  # a station that buffers the announced body takes all of it
                    s.sendall(b"\0" * (1 << 20))
                    sent += 1 << 20
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass
            pushed.append(sent)
        grown = rss_mb(server) - base
        assert grown < 20, f"RSS grew by {grown:.0f} MB for three connections that announced 4 GB each"
        assert all(ended(s, 5) for s in socks), "the station should close such a connection at once"
        for s in socks:
            s.close()
        assert max(pushed) < 48 << 20, f"the station read {max(pushed) >> 20} MB of an unaccepted request"
        assert "announcing 4294967280 bytes before an association was accepted" in server.text()
        assert echoscu(port).returncode == 0
    finally:
        server.kill()


def test_a_pdata_longer_than_our_maximum_pdu_is_refused_before_its_body_is_read(tmp_path, port, pynetdicom_mode):
    server = start(tmp_path, port, "max_pdu = 16384")
    try:
        base = rss_mb(server)
        s = associate(port, abstract=CT_STORAGE)
        s.sendall(struct.pack(">BBI", 4, 0, 0xFFFFFFF0))
        s.settimeout(5)
        try:
            for _ in range(64):
                s.sendall(b"\0" * (1 << 20))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        assert ended(s, 5)
        s.close()
        assert rss_mb(server) - base < 20
        assert "announcing 4294967280 bytes longer than the maximum PDU length we announced" in server.text()
        storescu(port, BREAST[:1])
    finally:
        server.kill()


def test_trickled_association_requests_cannot_lock_a_sender_out(tmp_path, port, pynetdicom_mode):
    """50 connections trickling an A-ASSOCIATE-RQ (no authentication at all): 10 from one address, of which 8 are
    kept, and 8 from each of 5 others, which fill the 48 connections of max_associations = 16. The oldest makes room
    for a sender, and each is cut 4 s (network timeout) after it opened."""
    server = start(tmp_path, port, "max_associations = 16\nnetwork_timeout_s = 4")
    conns = []
    for source in ["127.0.2.1"] * 10 + [f"127.0.3.{i % 5 + 1}" for i in range(40)]:
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        conns.append((s, associate_rq()))
    trickle = Trickler(conns)
    try:
        storescu(port, BREAST)  # fails (connection closed at once) when strangers hold every slot
        assert len(stored_files(tmp_path / "var")) == len(BREAST)
        wait_for(lambda: all(ended(s, 0.01) for s, _ in conns), 10, what="every trickling connection cut")
        text = server.text()
        assert "8 connections from 127.0.2.1 not yet accepted as associations" in text
        assert "no whole A-ASSOCIATE-RQ within 4 s of connecting" in text
    finally:
        trickle.close()
        server.kill()


def test_trickled_pdata_in_allowed_associations_is_cut_after_the_network_timeout(tmp_path, port, pynetdicom_mode):
    """16 accepted associations (all of max_associations) each trickle one byte every 0.5 s inside a P-DATA PDU:
    each is aborted once the PDU has not arrived whole within network_timeout_s, and the sender gets in."""
    server = start(tmp_path, port, "max_associations = 16\nnetwork_timeout_s = 4")
    conns = []
    for _ in range(16):
        s = associate(port, abstract=CT_STORAGE)
        s.sendall(struct.pack(">BBI", 4, 0, 1000))  # a P-DATA-TF PDU of 1000 bytes ...
        conns.append((s, b"\0" * 1000))  # ... whose body comes a byte at a time
    trickle = Trickler(conns)
    started = time.monotonic()
    try:
        wait_for(lambda: storescu(port, BREAST, check=False).returncode == 0, 12,
                 what="the sender served while 16 associations trickle")
        assert len(stored_files(tmp_path / "var")) == len(BREAST)
        wait_for(lambda: all(ended(s, 0.01) for s, _ in conns), 10, what="every trickling association cut")
        assert time.monotonic() - started < 12
        assert "no whole PDU within 4 s (receiver.network_timeout_s)" in server.text()
    finally:
        trickle.close()
        server.kill()


INVALID_TITLES = {"empty": b"", "NUL": b"BAD\x00AE", "backslash": b"A\\B", "non-ASCII": "ÄRZTE".encode("latin-1"),
                  "control characters": b"X\x1b[31m\nFORGE"}


def test_invalid_ae_titles_are_rejected_audited_and_logged_safely(tmp_path, port, pynetdicom_mode):
    server = start(tmp_path, port)
    try:
        for name, title in INVALID_TITLES.items():
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(associate_rq(calling=title))
                answer = read_pdu(s)
            assert answer is not None and answer[0] == 3, f"{name}: expected an A-ASSOCIATE-RJ, got {answer}"
            assert answer[1][1:4] == b"\x01\x01\x03", f"{name}: not 'calling AE title not recognised'"
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(associate_rq(called=b"RT\x1b[2J"))
            answer = read_pdu(s)
        assert answer is not None and answer[0] == 3 and answer[1][1:4] == b"\x01\x01\x07"
        data_dir = tmp_path / "var"
        wait_for(lambda: len([r for r in audit_records(data_dir) if r["kind"] == "association_rejected"]) == 6,
                 what="six rejections audited")
        rejected = [r for r in audit_records(data_dir) if r["kind"] == "association_rejected"]
        assert all(r["peer"].startswith("127.0.0.1:") and "is invalid" in r["reason"] for r in rejected)
        assert rejected[-2]["calling_ae"] == "X\\x1b[31m\\nFORGE" and rejected[-1]["called_ae"] == "RT\\x1b[2J"
        text = server.text()
        assert text.count("closed connection from") >= 6 and "rejected association: the calling AE title" in text
        assert "\x1b" not in text and "\x00" not in text, "control characters reached the log"
        assert not any(line.startswith("FORGE") for line in text.splitlines()), "a forged log line"
        assert echoscu(port).returncode == 0
    finally:
        server.kill()


def test_ipv4_peer_of_a_listener_on_all_ipv6_addresses_matches_ipv4_allowlist_entries(tmp_path, port):
    server = start(tmp_path, port, 'allowed_calling_aes = ["ECLIPSE@127.0.0.1"]', bind="::")
    try:
        storescu(port, BREAST[:1])  # seen as ::ffff:127.0.0.1 by the listener
        assert len(stored_files(tmp_path / "var")) == 1
        assert storescu(port, BREAST[:1], aet="STRANGER", check=False).returncode != 0
        wait_for(lambda: "rejected association from STRANGER@127.0.0.1:" in server.text(), what="the refusal")
        assert "::ffff:" not in server.text(), "peers are shown as the IPv4 address they are"
    finally:
        server.kill()
