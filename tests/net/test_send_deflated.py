"""An odd-length deflated dataset (a file whose deflate stream was not padded, as PS3.5 A.5 requires) is framed
correctly when sent: DCMTK aborted the association ("Odd Fragment Length") and the job was retried forever.
HARDEN2 item 17, sending side."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from helpers import rtstation
from peers import StoreSCP
from test_sender import configure, job_items, node


def odd_deflated(src: Path, dst: Path) -> Path:
    """``src`` re-written as Deflated Explicit VR Little Endian with an odd-length, unpadded deflate stream."""
    ds = pydicom.dcmread(src)
    for n in range(64):
        ds.StudyDescription = "X" * (2 * n)  # changes the stream's length until it is odd
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_dataset(fp, ds)
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        stream = deflate.compress(fp.getvalue()) + deflate.flush()
        if len(stream) % 2:
            break
    assert len(stream) % 2 == 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    dst.write_bytes(buf.getvalue() + stream)
    return dst


def test_an_odd_length_deflated_file_is_sent_padded_and_the_peer_stores_it(tmp_path):
    from rtstation_tui.synthetic import make_patient

    p = make_patient(tmp_path / "p", "DEFL1", slices=1, rows=8, cols=8, label="DEFL")
    src = odd_deflated(p.plan, tmp_path / "rp-deflated.dcm")
    scp = StoreSCP(tmp_path / "scp", extra=("+xd",)).start()  # accepts (and prefers) Deflated
    try:
        config = configure(tmp_path, node("DEFLATE", scp.spec, retry="1x1s"))
        rtstation("import", str(src), config=config)
        out = rtstation("send", "--sop", p.plan_uid, "--to", "DEFLATE", "--wait", "--json", config=config,
                        check=False)
        [job] = json.loads(out.stdout)
        assert job["state"] == "done", (job, job_items(config))
    finally:
        scp.stop()
    [got] = scp.files()
    received, original = pydicom.dcmread(got), pydicom.dcmread(src)
    assert received.SOPInstanceUID == original.SOPInstanceUID
    assert received.StudyDescription == original.StudyDescription
    assert received.BeamSequence[0].BeamName == original.BeamSequence[0].BeamName
    [stored] = (tmp_path / "var" / "store").rglob("*.dcm")
    assert stored.read_bytes() == src.read_bytes()  # the store keeps exactly what was imported
