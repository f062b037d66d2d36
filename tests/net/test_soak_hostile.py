"""[HARDEN2] "Done when": a bounded soak on loopback. While a legitimate DCMTK storescu stores 300 instances, 120 bare
TCP probes, 50 connections trickling an A-ASSOCIATE-RQ and 16 accepted associations trickling a P-DATA PDU (each
re-opened as soon as the station cuts it) hammer the same port. Every instance is stored; afterwards the server's
threads and file descriptors are back to their baseline and its RSS stayed under 200 MB."""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from helpers import BREAST, Serve, echoscu, station_toml, storescu, stored_files, wait_for, write_config
from rawpdu import CT_STORAGE, associate, associate_rq, ended
from test_probes import probe

INSTANCES = 300
WARM = 4
LIMITS = "max_associations = 20\nnetwork_timeout_s = 3"


def status(server: Serve, key: str) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} line")


def fds(server: Serve) -> tuple[int, int]:
    """(SQLite fds, every other fd) of the server. Each thread opens its own SQLite connections (store/db.py), so
    worker pools that grow under load hold more of them; a leak is a dead thread's connection or any socket."""
    assert server.proc is not None
    targets = []
    for f in os.listdir(f"/proc/{server.proc.pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{server.proc.pid}/fd/{f}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    sqlite = sum(1 for t in targets if ".sqlite" in t)
    return sqlite, len(targets) - sqlite


def settled(server: Serve, base_threads: int, base_other_fds: int) -> bool:
    threads = status(server, "Threads")
    sqlite, other = fds(server)
    return threads <= base_threads and other <= base_other_fds and sqlite <= 6 * threads  # index, queue: 3 each


def small_cts(folder: Path, n: int) -> list[Path]:
    """``n`` distinct 64 x 64 CT instances of one series (the breast CT, cropped, new UIDs)."""
    folder.mkdir()
    ds = dcmread(next(p for p in BREAST if "ct." in p))
    ds.Rows = ds.Columns = 64
    ds.PixelData = ds.PixelData[:64 * 64 * 2]
    ds.SeriesInstanceUID = generate_uid()
    out = []
    for i in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        out.append(folder / f"ct{i:03}.dcm")
        ds.save_as(out[-1], enforce_file_format=True)
    return out


class Attack:
    """The hostile peers, each kind in its own thread, at their own pace, until stopped."""

    def __init__(self, port: int) -> None:
        self.port, self.stop = port, threading.Event()
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self._probes, self._slow_requests,
                                                                           self._slow_associations)]
        for t in self.threads:
            t.start()

    def _keep(self, s: socket.socket) -> socket.socket:
        with self.lock:
            self.socks.append(s)
        return s

    def reopened(self) -> int:
        with self.lock:
            return len(self.socks)

    def _probes(self) -> None:
        for i in range(120):
            if self.stop.is_set():
                return
            probe(self.port, i)
            self.stop.wait(0.02)

    def _trickle(self, make: callable, n: int, data: bytes) -> None:  # type: ignore[valid-type]
        conns: list[tuple[socket.socket, int]] = []
        while not self.stop.is_set():
            conns = [(s, i) for s, i in conns if not ended(s, 0)]
            while len(conns) < n and not self.stop.is_set():
                try:
                    conns.append((self._keep(make(len(conns))), 0))
                except (OSError, AssertionError):  # refused by a cap: try again next round
                    break
            nxt = []
            for s, i in conns:
                try:
                    s.send(data[i % len(data):i % len(data) + 1])
                except OSError:
                    continue
                nxt.append((s, i + 1))
            conns = nxt
            self.stop.wait(0.5)

    def _slow_requests(self) -> None:
        def make(i: int) -> socket.socket:
            s = socket.socket()
            s.bind((f"127.0.4.{i % 10 + 1}", 0))
            s.connect(("127.0.0.1", self.port))
            return s
        self._trickle(make, 50, associate_rq())

    def _slow_associations(self) -> None:
        def make(i: int) -> socket.socket:
            s = associate(self.port, abstract=CT_STORAGE)
            s.sendall(struct.pack(">BBI", 4, 0, 16000))  # within max_pdu: only its pace is wrong
            return s
        self._trickle(make, 16, b"\0" * 16000)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        with self.lock:
            for s in self.socks:
                s.close()


def test_soak_senders_get_through_hostile_peers(tmp_path, port, pynetdicom_mode):
    files = small_cts(tmp_path / "cts", INSTANCES + WARM)
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=LIMITS))
    server = Serve(cfg, tmp_path / "serve.log").start()
    attack = None
    try:
        storescu(port, files[:WARM])  # warm-up: the threads and connections a store opens once, for good
        wait_for(lambda: len(stored_files(tmp_path / "var")) == WARM, what="the warm-up stored")
        wait_for(lambda: "association 1 from" in server.text() and "released" in server.text(), what="its end")
        base_threads, base_fds = status(server, "Threads"), fds(server)[1]
        attack = Attack(port)
        peak = 0
        for chunk in range(WARM, INSTANCES + WARM, 30):  # ten associations, each among the attackers
            storescu(port, files[chunk:chunk + 30], timeout=120)
            peak = max(peak, status(server, "VmRSS"))
        # the attack went on through the station's answers to it: cuts, drops, re-opened attackers
        # (the 66 attackers exceed the 56 connections allowed: the oldest trickling requests are dropped, often
        # before their own 3 s are up)
        wait_for(lambda: "no whole PDU within 3 s" in server.text(), 15, what="slow P-DATA cut")
        wait_for(lambda: "dropped a connection from 127.0.4." in server.text(), 15, what="slow requests dropped")
        assert attack.reopened() > 66, "the attackers were never cut and re-opened"
        peak = max(peak, status(server, "VmRSS"))
        attack.close()
        attack = None
        wait_for(lambda: len(stored_files(tmp_path / "var")) == INSTANCES + WARM, 60, what="every instance stored")
        wait_for(lambda: settled(server, base_threads, base_fds), 15,
                 what=f"threads back to {base_threads} and fds other than SQLite's to {base_fds}")
        peak = max(peak, status(server, "VmHWM"))
        assert peak < 200 * 1024, f"peak RSS {peak / 1024:.0f} MB"
        assert echoscu(port).returncode == 0
    finally:
        if attack is not None:
            attack.close()
        server.kill()
