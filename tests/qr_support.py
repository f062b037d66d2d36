"""Query/Retrieve test data: Orthanc holding two patients, one with two plans (labels differ, one APPROVED) on one
CT, each plan with its own structure set and dose; and helpers to read what a station stored."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from peers import Orthanc
from rtstation_tui.synthetic import SynthPatient, add_plan, make_patient


@dataclass
class QrData:
    a: SynthPatient  # QRA, plan A1 APPROVED (CT, RS, RP, RD)
    b: SynthPatient  # QRA, plan B2 UNAPPROVED on the same CT (its own RS, RP, RD)
    c: SynthPatient  # QRC, another patient

    def chain_a(self) -> set[str]:
        return {*self.a.ct_uids, self.a.struct_uid, self.a.plan_uid, self.a.dose_uid}

    def everything_a(self) -> set[str]:
        return self.chain_a() | {self.b.struct_uid, self.b.plan_uid, self.b.dose_uid}


def make_qr_data(base: Path, slices: int = 5, rows: int = 64) -> QrData:
    a = make_patient(base / "a", "QRA", slices=slices, rows=rows, cols=rows, label="A1", approval="APPROVED")
    b = add_plan(base / "a", a, "B2", approval="UNAPPROVED")
    c = make_patient(base / "c", "QRC", slices=3, label="C1")
    return QrData(a, b, c)


def upload(orthanc: Orthanc, data: QrData) -> None:
    orthanc.upload([*data.a.files, *(p for p in (data.b.struct, data.b.plan, data.b.dose) if p), *data.c.files])


def stored(data_dir: Path) -> dict[str, bytes]:
    """SOP Instance UID → the stored file's bytes, from the station's index."""
    conn = sqlite3.connect(data_dir / "index.sqlite")
    try:
        rows = conn.execute("SELECT sop_uid, path FROM instances").fetchall()
    finally:
        conn.close()
    return {uid: (data_dir / "store" / rel).read_bytes() for uid, rel in rows}


def orthanc_files(orthanc: Orthanc) -> dict[str, bytes]:
    """SOP Instance UID → the file as Orthanc holds it."""
    out: dict[str, bytes] = {}
    for oid in orthanc.get("/instances"):
        uid = orthanc.get(f"/instances/{oid}/simplified-tags")["SOPInstanceUID"]
        out[uid] = bytes(orthanc.get(f"/instances/{oid}/file"))
    return out



def dataset_bytes(blob: bytes) -> tuple[str, bytes]:
    """(transfer syntax, the bytes after the file meta group): what "the same dataset" means between two stores,
    whose file meta differ (implementation UID and version, source AE)."""
    import io
    import struct

    import pydicom

    assert blob[128:132] == b"DICM" and blob[132:136] == b"\x02\x00\x00\x00", "no file meta group length"
    (length,) = struct.unpack("<I", blob[140:144])
    ts = pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=True).file_meta.TransferSyntaxUID
    return str(ts), blob[144 + length:]


class DcmQrScp:
    """DCMTK's small Q/R SCP (``dcmqrscp``): its C-FIND answers only the keys of its own index, no RTPlanLabel and
    no reference sequences, the hard case for a selective retrieve."""

    def __init__(self, base: Path, movers: dict[str, int]) -> None:
        from helpers import free_port

        self.base, self.port, self.aet = base, free_port(), "DCMQRSCP"
        self.db = base / "db"
        hosts = "\n".join(f"{ae.lower()} = ({ae}, 127.0.0.1, {port})" for ae, port in movers.items())
        self.cfg = base / "dcmqrscp.cfg"
        self.proc = None
        self.cfg_text = (f"NetworkTCPPort = {self.port}\nMaxPDUSize = 65536\nMaxAssociations = 16\n"
                         f"HostTable BEGIN\n{hosts}\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
                         f"AETable BEGIN\n{self.aet} {self.db} RW (200, 1024mb) ANY\nAETable END\n")

    def start(self) -> "DcmQrScp":
        import subprocess

        from helpers import PEER_ENV, dcmtk, echoscu, wait_for

        self.db.mkdir(parents=True, exist_ok=True)
        self.cfg.write_text(self.cfg_text)
        self.proc = subprocess.Popen([dcmtk("dcmqrscp"), "-c", str(self.cfg), "--disable-host-lookup"],
                                     env=PEER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: echoscu(self.port, aec=self.aet).returncode == 0, 20, what="dcmqrscp")
        return self

    def store(self, files: list[Path]) -> None:
        from helpers import storescu

        proc = storescu(self.port, files, aec=self.aet)
        assert proc.returncode == 0, proc.stderr

    @property
    def spec(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
