"""Every stored object reaches a peer that accepts only Implicit VR Little Endian (DCMTK ``storescp +xi``):
Explicit VR Little and Big Endian, JPEG-LS, JPEG Lossless and JPEG Baseline, UIDs kept and pixels equal; an object
that cannot be decoded fails alone, with its reason, and the rest of the job is delivered."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pydicom
from pydicom.uid import ImplicitVRLittleEndian

from helpers import PEER_ENV, dcmtk, rtstation
from peers import StoreSCP
from test_sender import configure, job_items, node

EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_LS = "1.2.840.10008.1.2.4.80"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def convert(tool: str, args: list[str], src: Path, dst: Path) -> Path:
    proc = subprocess.run([dcmtk(tool), *args, str(src), str(dst)], env=PEER_ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{tool} {args} failed: {proc.stderr}"
    return dst


def eight_bit(src: Path, dst: Path) -> Path:
    """An 8-bit copy of a synthetic CT (JPEG Baseline takes 8-bit samples only)."""
    ds = pydicom.dcmread(src)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes((i * 7) & 0xFF for i in range(ds.Rows * ds.Columns))
    ds.save_as(dst, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return dst


def mixed_syntax_patient(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A synthetic plan whose objects are stored in six transfer syntaxes: folder, {SOP Instance UID: file}."""
    from rtstation_tui.synthetic import make_patient

    p = make_patient(tmp_path / "made", "SYNTAX1", slices=5, rows=32, cols=32, label="TS1")
    out = tmp_path / "in"
    out.mkdir()
    ct = p.ct
    files = [convert("dcmconv", ["+te"], ct[0], out / "ct-explicit.dcm"),
             convert("dcmconv", ["+tb"], ct[1], out / "ct-big.dcm"),
             convert("dcmcjpls", [], ct[2], out / "ct-jpegls.dcm"),
             convert("dcmcjpeg", ["+e1"], ct[3], out / "ct-jpeg-lossless.dcm"),
             convert("dcmcjpeg", ["+eb"], eight_bit(ct[4], tmp_path / "ct8.dcm"), out / "ct-jpeg-baseline.dcm"),
             convert("dcmconv", ["+tb"], p.plan, out / "rp-big.dcm"),
             convert("dcmconv", ["+te"], p.struct, out / "rs-explicit.dcm"),
             convert("dcmconv", ["+tb"], p.dose, out / "rd-big.dcm")]
    return out, {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}


def import_and_send_ts1(tmp_path: Path, folder: Path, name: str, spec: str) -> None:
    """Import the mixed-syntax plan and send it to one peer; the job must end done."""
    config = configure(tmp_path, node(name, spec, retry="1x1s"))
    rtstation("import", str(folder), config=config)
    out = rtstation("send", "--plan", "TS1", "--to", name, "--wait", "--json", config=config, check=False)
    [job] = json.loads(out.stdout)
    assert job["state"] == "done", (job, [(i["sop_uid"], i["error"]) for i in job_items(config)])


def implicit_only_scp(tmp_path: Path) -> StoreSCP:
    return StoreSCP(tmp_path / "scp", extra=("+xi",)).start()


def test_every_stored_syntax_reaches_an_implicit_only_peer_with_uids_and_pixels_kept(tmp_path):
    folder, sources = mixed_syntax_patient(tmp_path)
    syntaxes = {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID) for f in sources.values()}
    assert {EXPLICIT_BE, JPEG_LS, JPEG_LOSSLESS, JPEG_BASELINE} <= syntaxes
    scp = implicit_only_scp(tmp_path)
    try:
        import_and_send_ts1(tmp_path, folder, "IMPLICIT", scp.spec)
    finally:
        scp.stop()
    received = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in scp.files()}
    assert received.keys() == sources.keys()
    for sop, src in sources.items():
        got, original = received[sop], pydicom.dcmread(src)
        assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert (got.SOPClassUID, got.SeriesInstanceUID, got.StudyInstanceUID, got.FrameOfReferenceUID) == (
            original.SOPClassUID, original.SeriesInstanceUID, original.StudyInstanceUID,
            original.FrameOfReferenceUID), f"UIDs changed for {src.name}"
        if "PixelData" in original:
            assert (got.pixel_array == original.pixel_array).all(), f"pixels differ for {src.name}"
    plan = received[next(s for s, f in sources.items() if f.name == "rp-big.dcm")]
    original_plan = pydicom.dcmread(folder / "rp-big.dcm")
    assert plan.BeamSequence[0].BeamName == original_plan.BeamSequence[0].BeamName
    assert plan.FractionGroupSequence[0].NumberOfFractionsPlanned == (
        original_plan.FractionGroupSequence[0].NumberOfFractionsPlanned)


def corrupt_jpeg_ls(tmp_path: Path, src: Path) -> Path:
    """A JPEG-LS CT whose compressed frame is garbage of the same length: structurally valid, not decodable."""
    bad = convert("dcmcjpls", [], src, tmp_path / "in" / "ct-broken-jpegls.dcm")
    ds = pydicom.dcmread(bad)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    frame = ds.PixelData
    start = frame.index(b"\xff\xd8")  # SOI of the one frame, after the basic offset table
    ds.PixelData = frame[:start] + b"\x00" * (len(frame) - start)
    ds.save_as(bad, enforce_file_format=True)
    return bad


def test_one_undecodable_object_fails_alone_with_its_reason_and_the_rest_is_delivered(tmp_path):
    folder, sources = mixed_syntax_patient(tmp_path)
    bad = corrupt_jpeg_ls(tmp_path, next(iter((tmp_path / "made" / "CT").glob("*.dcm"))))
    bad_uid = pydicom.dcmread(bad, stop_before_pixels=True).SOPInstanceUID
    scp = implicit_only_scp(tmp_path)
    try:
        config = configure(tmp_path, node("IMPLICIT", scp.spec, retry="3x1s"))
        rtstation("import", str(folder), config=config)
        sops = [bad_uid, *sources]
        out = rtstation("send", *[a for s in sops for a in ("--sop", s)], "--to", "IMPLICIT", "--wait", "--json",
                        config=config, check=False)
        [job] = json.loads(out.stdout)
        items = {i["sop_uid"]: i for i in job_items(config)}
    finally:
        scp.stop()
    assert job["state"] == "failed" and job["failed"] == 1 and job["done"] == len(sources), job
    assert job["attempts"] == 0, "a permanent failure was retried"
    assert "1 of 9 instances cannot be sent" in job["error"]
    assert items[bad_uid]["state"] == "failed" and "cannot decode JPEG-LS Lossless" in items[bad_uid]["error"]
    assert {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in scp.files()} == set(sources)


def test_every_stored_syntax_reaches_an_orthanc_that_accepts_only_implicit_vr(tmp_path):
    from peers import Orthanc

    folder, sources = mixed_syntax_patient(tmp_path)
    orthanc = Orthanc(tmp_path / "orthanc", accepted=(ImplicitVRLittleEndian,)).start()
    try:
        import_and_send_ts1(tmp_path, folder, "ORTHANC", orthanc.spec)
        for sop, src in sources.items():
            got_path = tmp_path / "o.dcm"
            got_path.write_bytes(orthanc.file_of(sop))
            got, original = pydicom.dcmread(got_path), pydicom.dcmread(src)
            assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian, src.name
            assert (got.SeriesInstanceUID, got.StudyInstanceUID) == (original.SeriesInstanceUID,
                                                                     original.StudyInstanceUID)
            if "PixelData" in original:
                assert (got.pixel_array == original.pixel_array).all(), f"pixels differ for {src.name}"
    finally:
        orthanc.stop()
