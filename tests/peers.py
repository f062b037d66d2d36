"""Real DICOM peers for tests, on loopback and free ports: DCMTK storescp and Orthanc (Debian packages)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from helpers import PEER_ENV, dcmtk, free_port, wait_for

ORTHANC = Path("/usr/sbin/Orthanc")


class StoreSCP:
    """DCMTK storescp writing every reception to its own file (+uf), bit-preserving (+B): duplicates are visible."""

    def __init__(self, out: Path, port: int | None = None, aet: str = "STORESCP", extra: tuple[str, ...] = ()) -> None:
        self.out, self.aet = out, aet
        self._port_given = port is not None
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra = extra

    def start(self) -> StoreSCP:
        """Started and answering C-ECHO. A free port can be taken before storescp binds it (an outgoing connection
        of any process may get it as its local port): storescp then exits at once, and a port we chose is chosen
        again; any other early exit fails with what storescp said."""
        self.out.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            log = self.out.parent / f"{self.out.name}.storescp.log"
            with open(log, "wb") as err:
                self.proc = subprocess.Popen([dcmtk("storescp"), "-aet", self.aet, "-od", str(self.out), "+B", "+uf",
                                              *self.extra, str(self.port)], env=PEER_ENV, stdout=err, stderr=err)
            proc = self.proc
            wait_for(lambda: proc.poll() is not None or self._echo_ok(), 20, what=f"storescp on {self.port}")
            if proc.poll() is None:
                return self
            said = log.read_text(errors="replace")
            if self._port_given or "already in use" not in said:
                raise AssertionError(f"storescp on port {self.port} exited ({proc.returncode}): {said[-1500:]}")
            self.port = free_port()
        raise AssertionError(f"storescp found no free port in 3 tries: {said[-1500:]}")

    def _echo_ok(self) -> bool:
        from helpers import echoscu

        return echoscu(self.port, aec=self.aet).returncode == 0

    def files(self) -> list[Path]:
        return sorted(p for p in self.out.iterdir() if p.is_file()) if self.out.exists() else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def spec(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.port}"


class Orthanc:
    """A throw-away Orthanc (not the system service) with its own storage, DICOM and HTTP ports."""

    def __init__(self, storage: Path, aet: str = "ORTHANC", accepted: tuple[str, ...] = ("1.2.840.10008.1.*",),
                 modalities: dict[str, tuple[str, int]] | None = None) -> None:
        """``modalities``: name -> (AE title, port) on 127.0.0.1 that Orthanc knows (C-MOVE destinations)."""
        if not ORTHANC.exists():
            raise AssertionError("Orthanc missing at /usr/sbin/Orthanc: run `make test` (it installs the peers)")
        self.storage, self.aet, self.accepted = storage, aet, list(accepted)
        self.modalities = modalities or {}
        self.dicom_port, self.http_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Orthanc:
        self.storage.mkdir(parents=True, exist_ok=True)
        config = {"Name": "rtstation-test", "StorageDirectory": str(self.storage), "IndexDirectory": str(self.storage),
                  "StorageCompression": False, "Plugins": [], "HttpServerEnabled": True, "HttpPort": self.http_port,
                  "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomServerEnabled": True,
                  "DicomAet": self.aet, "DicomPort": self.dicom_port, "DicomCheckCalledAet": False,
                  "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "UnknownSopClassAccepted": True,
                  "AcceptedTransferSyntaxes": self.accepted, "DicomScpTimeout": 30,
                  "DicomAssociationCloseDelay": 0, "OverwriteInstances": True, "ConcurrentJobs": 1,
                  "SaveJobs": False, "StableAge": 60, "DicomAlwaysAllowFind": True,
                  "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True,
                  "DicomModalities": {name: [ae, "127.0.0.1", port] for name, (ae, port) in self.modalities.items()}}
        cfg = self.storage / "orthanc.json"
        cfg.write_text(json.dumps(config))
        log = open(self.storage / "orthanc.out", "wb")
        self.proc = subprocess.Popen([str(ORTHANC), f"--logdir={self.storage}", str(cfg)], env=PEER_ENV,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(lambda: self._alive(), 30, what="Orthanc REST API")
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Orthanc exited: {(self.storage / 'orthanc.out').read_text()[-2000:]}")
        try:
            self.get("/system")
            return True
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as rsp:
            data = rsp.read()
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def instance_uids_in_arrival_order(self) -> list[str]:
        changes = self.get("/changes?limit=1000")["Changes"]
        ids = [c["ID"] for c in changes if c["ChangeType"] == "NewInstance"]
        return [self.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in ids]

    def file_of(self, sop_uid: str) -> bytes:
        for i in self.get("/instances"):
            if self.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] == sop_uid:
                return bytes(self.get(f"/instances/{i}/file"))
        raise KeyError(sop_uid)

    def post(self, path: str, body: bytes) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=30) as rsp:
            data = rsp.read()
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def upload(self, files: list[Path]) -> None:
        """Store files through the REST API (``POST /instances``: the bytes as they are)."""
        for f in files:
            self.post("/instances", f.read_bytes())

    def statistics(self) -> dict[str, Any]:
        return dict(self.get("/statistics"))

    @property
    def spec(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
