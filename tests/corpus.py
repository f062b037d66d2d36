"""Hostile and broken input, generated: every file the station must survive, with what must happen to it.

Why generated: the cases are about structure (a length that lies, a cut, an encoding), so a few lines of pydicom and
byte surgery make them reproducibly, with fixed UIDs, and nothing private is committed. ``build(outdir)`` writes
the files for ``rtstation import``; ``network_file(case, outdir)`` wraps a case's bytes in just enough file meta for
pynetdicom's raw sender (``STORE_SEND_CHUNKED_DATASET``), which puts the dataset bytes on the wire unchanged.

Run ``python tests/corpus.py`` to (re)write ``tests/data/corpus/``; the tests build it themselves.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pydicom.config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

CORPUS_DIR = Path(__file__).parent / "data" / "corpus"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
PRIVATE_CLASS = "1.2.246.352.70.1.70"  # Varian's private "RT Beams Delivery Instruction"-like class: kept as is
IMPLICIT, EXPLICIT, BIG = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"


def uid(name: str) -> str:
    return str(generate_uid(entropy_srcs=["rtstation corpus", name]))


@dataclass(frozen=True)
class Case:
    """One corpus file and what must become of it (``stored``, ``conflict`` or ``quarantined``)."""

    name: str
    make: Callable[[], bytes]
    outcome: str
    log: str  # a specific line (fragment) the receiver or importer must log
    sop_uid: str = ""  # what the SCU announces (network); for stored cases, what the dataset holds
    sop_class: str = RT_PLAN
    ts: str = IMPLICIT
    has_meta: bool = True  # False: the file is a raw dataset (or not DICOM at all)


def plan(name: str, **values: object) -> Dataset:
    """A small RTPLAN of its own patient; ``values`` override any element (hostile ones included)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RT_PLAN, uid(name), "RTPLAN"
    ds.PatientID, ds.PatientName = f"CORPUS_{name}", f"CORPUS^{name}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(name + "study"), uid(name + "series")
    ds.FrameOfReferenceUID = uid(name + "for")
    ds.RTPlanLabel, ds.RTPlanName, ds.ApprovalStatus = name[:16], "corpus plan", "UNAPPROVED"
    beam = Dataset()
    beam.BeamNumber, beam.BeamName, beam.TreatmentMachineName, beam.RadiationType = 1, "G0", "TrueBeam1", "PHOTON"
    ds.BeamSequence = Sequence([beam])
    ds.PlanIntent = "CURATIVE"
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


def encode(ds: Dataset, ts: str = IMPLICIT, meta: bool = True) -> bytes:
    """Part-10 bytes (or a raw dataset with ``meta=False``) in ``ts``, hostile values written as they are."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = pydicom.config.settings.writing_validation_mode
        pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
        try:
            if meta:
                buf.write(file_meta(str(ds.SOPClassUID), str(ds.SOPInstanceUID), ts))
            ds.save_as(buf, implicit_vr=ts == IMPLICIT, little_endian=ts != BIG, enforce_file_format=False)
        finally:
            pydicom.config.settings.writing_validation_mode = old
    return buf.getvalue()


def file_meta(sop_class: str, sop_uid: str, ts: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = sop_class, sop_uid, ts
    meta.ImplementationClassUID = uid("implementation")
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue()


def truncated() -> bytes:
    data = encode(plan("truncated"))
    return data[: len(data) - 40]  # cut inside the beam sequence


def huge_length() -> bytes:
    """A valid plan followed by an element (0009,0010 LO-ish in implicit VR) claiming ~4 GB."""
    return encode(plan("huge")) + struct.pack("<HHI", 0x0011, 0x1010, 0xFFFFFFF0) + b"tiny"


def deep_nesting(depth: int = 2000) -> bytes:
    """Undefined-length sequences nested ``depth`` deep (a private tag after the plan, implicit VR): a parser that
    recurses per level must fail cleanly, not take the receiver down."""
    level = struct.pack("<HHI", 0x7FE1, 0x1010, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return encode(plan("deep")) + level * depth + close * depth


def uid_1000() -> bytes:
    """A 1,000-character SOP Instance UID in the dataset; the file meta (and so the C-STORE) announces a valid one,
    as pynetdicom refuses to put an over-long UID in a command."""
    ds = plan("x", SOPInstanceUID="1." + "2" * 998)
    return file_meta(RT_PLAN, uid("uid_1000"), IMPLICIT) + encode(ds, meta=False)


HOSTILE_IDS = {
    "pid_slash": "../../etc/passwd",
    "pid_dotdot": "..",
    "pid_nul": "A\x00B",
    "pid_control": "ID\x1b[31m\x07\r\n",
    "pid_1000": "P" * 1000,
}


def cases() -> list[Case]:
    out = [
        Case("truncated.dcm", truncated, "quarantined", "truncated", uid("truncated")),
        Case("not_dicom.txt", lambda: b"This is a shopping list, not DICOM.\n" * 20, "quarantined",
             "not", uid("not_dicom"), has_meta=False),
        Case("no_meta.dcm", lambda: encode(plan("no_meta"), meta=False), "stored", "", uid("no_meta"),
             has_meta=False),
        Case("big_endian.dcm", lambda: encode(plan("big_endian"), BIG), "stored", "", uid("big_endian"), ts=BIG),
        Case("invalid_uids.dcm", lambda: encode(plan("x", SOPInstanceUID="1.2.abc.04.999..", StudyInstanceUID="xx")),
             "stored", "not a valid UID", "1.2.abc.04.999.."),
        Case("empty_patient_id.dcm", lambda: encode(plan("empty_pid", PatientID="")), "stored", "empty PatientID",
             uid("empty_pid")),
        Case("uid_slash.dcm", lambda: encode(plan("x", SOPInstanceUID="../../1.2/3", SeriesInstanceUID="1/2")),
             "stored", "not a valid UID", "../../1.2/3"),
        Case("uid_control.dcm", lambda: encode(plan("x", SOPInstanceUID="1.2\x00.3\x1b[2J\r\n.4")), "stored",
             "not a valid UID", "1.2\x00.3\x1b[2J\r\n.4"),
        Case("uid_1000.dcm", uid_1000, "stored", "the C-STORE announced SOP Instance UID", uid("uid_1000")),
        Case("study_dotdot.dcm", lambda: encode(plan("study_dotdot", StudyInstanceUID="..")), "stored",
             "Study Instance UID '..' is not a valid UID", uid("study_dotdot")),
        Case("huge_length.dcm", huge_length, "quarantined", "declares 4294967280 bytes", uid("huge")),
        Case("empty_dataset.dcm", lambda: file_meta(RT_PLAN, uid("empty"), IMPLICIT), "quarantined", "empty dataset",
             uid("empty")),
        Case("deep_nesting.dcm", deep_nesting, "quarantined", "nested too deeply", uid("deep")),
        Case("private_class.dcm", lambda: encode(plan("private", SOPClassUID=PRIVATE_CLASS, Modality="RTPLAN")),
             "stored", "", uid("private"), sop_class=PRIVATE_CLASS),
        Case("duplicate_a.dcm", lambda: encode(plan("dup", RTPlanName="first")), "stored", "", uid("dup")),
        Case("duplicate_b.dcm", lambda: encode(plan("dup", RTPlanName="second version")), "conflict",
             "both kept", uid("dup")),
    ]
    for name, value in HOSTILE_IDS.items():
        out.append(Case(f"{name}.dcm", lambda v=value, n=name: encode(plan(n, PatientID=v)), "stored",
                        "PatientID", uid(name)))
    return out


def build(outdir: Path = CORPUS_DIR) -> dict[str, Path]:
    """Write every case into ``outdir`` (import form); returns name → path."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in cases():
        path = outdir / case.name
        with warnings.catch_warnings():  # pydicom warns about every hostile value we set on purpose
            warnings.simplefilter("ignore")
            path.write_bytes(case.make())
        paths[case.name] = path
    return paths


def network_file(case: Case, path: Path, outdir: Path) -> Path:
    """The case as pynetdicom's raw sender needs it: file meta naming class/instance/TS, then the payload."""
    if case.has_meta:
        return path
    outdir.mkdir(parents=True, exist_ok=True)
    wrapped = outdir / case.name
    wrapped.write_bytes(file_meta(case.sop_class, case.sop_uid, case.ts) + path.read_bytes())
    return wrapped


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR
    for name, p in build(target).items():
        print(f"{p} ({p.stat().st_size} bytes)")
