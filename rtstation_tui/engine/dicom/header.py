"""Header parsing of received and imported files: identity, references, plan facts. Never pixel data.

Why a dedicated module: the receive path can afford one header read per instance (~0.5 ms) and nothing more, so
everything the index, the bundles and the rules need is pulled out here, once, into plain dataclasses.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .sopclass import modality_for_sop_class

DEFER = 1024  # bytes: larger values (contour points, LUTs) are skipped, not read
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Hostile or sloppy values are stored as they came and reported once, specifically, by value_problems(); pydicom's
# own validation warnings would go to stderr (outside the log) and cost time on every header read.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")


class BadDicom(Exception):
    """The file is not DICOM or cannot be read; the message is the quarantine reason."""


@dataclass(frozen=True)
class Ref:
    """One reference from this object to another: ``kind`` is plan, struct, image, series or instance."""

    kind: str
    uid: str
    sop_class: str = ""


@dataclass(frozen=True)
class Beam:
    number: int | None
    name: str
    radiation: str
    energy: str
    mu: float | None
    machine: str


@dataclass(frozen=True)
class PlanInfo:
    label: str
    name: str
    approval: str
    machines: tuple[str, ...]
    beams: tuple[Beam, ...]
    fractions: int | None
    ion: bool
    intent: str = ""


@dataclass(frozen=True)
class InstanceInfo:
    sop_uid: str
    sop_class: str
    modality: str
    transfer_syntax: str
    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    frame_of_ref: str = ""
    instance_number: int | None = None
    series_description: str = ""
    description: str = ""
    refs: tuple[Ref, ...] = ()
    plan: PlanInfo | None = None
    has_meta: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def read_header(path: str | os.PathLike[str], *, force: bool = False) -> InstanceInfo:
    """Parse the header of a Part-10 file (or, with ``force``, a raw dataset). Raises BadDicom with a reason.

    Plain images take the pydicom-free path of ``quickheader`` (same result, several times cheaper)."""
    if not force:
        from .quickheader import quick_info  # imported here: quickheader builds on this module's dataclasses

        info = quick_info(path)
        if info is not None:
            return info
    return read_header_pydicom(path, force=force)


def read_header_pydicom(path: str | os.PathLike[str], *, force: bool = False) -> InstanceInfo:
    """``read_header`` through pydicom, for every kind of object."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=DEFER, force=force)
        return info_from_dataset(ds)
    except BadDicom:
        raise
    except RecursionError:
        raise BadDicom("sequences nested too deeply to parse (hostile or broken input)") from None
    except InvalidDicomError as exc:
        raise BadDicom(f"not a DICOM file: {exc}") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise BadDicom(f"cannot parse DICOM header: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # pydicom raises assorted errors on hostile input; the reason must reach the log
        raise BadDicom(f"cannot parse DICOM header: {type(exc).__name__}: {exc}") from None


def value_problems(info: InstanceInfo) -> list[str]:
    """What is wrong with the identifying values of an object we nevertheless store (it is what the sender sent,
    and the store sanitizes every path component): for the log line that tells the operator why a patient folder
    looks odd. Empty list: nothing to report."""
    problems = []
    pid = info.patient_id
    if not pid.strip():
        problems.append("empty PatientID")
    else:
        if _CONTROL.search(pid):
            problems.append(f"PatientID {_show(pid)} holds control characters")
        if "/" in pid or "\\" in pid or pid.startswith("."):
            problems.append(f"PatientID {_show(pid)} looks like a path")
        if len(pid) > 64:
            problems.append(f"PatientID is {len(pid)} characters long (at most 64 allowed)")
    for what, value in (("SOP Instance UID", info.sop_uid), ("SOP Class UID", info.sop_class),
                        ("Study Instance UID", info.study_uid), ("Series Instance UID", info.series_uid)):
        if value and not _valid_uid(value):
            problems.append(f"{what} {_show(value)} is not a valid UID")
    return problems


@functools.lru_cache(maxsize=1024)
def _valid_uid(value: str) -> bool:
    """Cached: the class, study and series UIDs repeat for every instance of a series, and this runs on the
    receive path once per C-STORE."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def _show(value: str, limit: int = 40) -> str:
    """A value for a log line: repr (so control characters show), cut to ``limit`` characters."""
    return repr(value[:limit]) + (f"... ({len(value)} characters)" if len(value) > limit else "")


def info_from_dataset(ds: Dataset) -> InstanceInfo:
    meta = getattr(ds, "file_meta", None)
    sop_class = _s(ds.get("SOPClassUID")) or _s(meta.get("MediaStorageSOPClassUID") if meta else None)
    sop_uid = _s(ds.get("SOPInstanceUID")) or _s(meta.get("MediaStorageSOPInstanceUID") if meta else None)
    if not sop_class or not sop_uid:
        raise BadDicom("no SOP Class UID or SOP Instance UID: not a storable DICOM object")
    ts = _s(meta.get("TransferSyntaxUID")) if meta is not None and "TransferSyntaxUID" in meta else ""
    if not ts:
        ts = _guess_ts(ds)
    modality = _s(ds.get("Modality")) or modality_for_sop_class(sop_class)
    plan = plan_info(ds) if modality == "RTPLAN" or "RTPlanLabel" in ds else None
    return InstanceInfo(
        sop_uid=sop_uid,
        sop_class=sop_class,
        modality=modality,
        transfer_syntax=ts,
        patient_id=_s(ds.get("PatientID")),
        patient_name=_s(ds.get("PatientName")),
        study_uid=_s(ds.get("StudyInstanceUID")),
        series_uid=_s(ds.get("SeriesInstanceUID")),
        frame_of_ref=_s(ds.get("FrameOfReferenceUID")),
        instance_number=_int(ds.get("InstanceNumber")),
        series_description=_s(ds.get("SeriesDescription")),
        description=_describe(ds, modality),
        refs=tuple(_dedupe(references(ds, modality))),
        plan=plan,
        has_meta=meta is not None and len(meta) > 0,
    )


def _guess_ts(ds: Dataset) -> str:
    implicit = getattr(ds, "is_implicit_VR", None)
    little = getattr(ds, "is_little_endian", True)
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2"


def references(ds: Dataset, modality: str) -> Iterable[Ref]:
    """Every reference that matters for the chain; unknown kinds of objects give their generic references."""
    for item in _seq(ds, "ReferencedRTPlanSequence"):
        yield Ref("plan", _s(item.get("ReferencedSOPInstanceUID")), _s(item.get("ReferencedSOPClassUID")))
    for item in _seq(ds, "ReferencedStructureSetSequence"):
        yield Ref("struct", _s(item.get("ReferencedSOPInstanceUID")), _s(item.get("ReferencedSOPClassUID")))
    if modality == "RTSTRUCT":
        yield from _struct_refs(ds)
    elif modality == "REG" or "ReferencedSeriesSequence" in ds or "RegistrationSequence" in ds:
        yield from _generic_refs(ds)


def _struct_refs(ds: Dataset) -> Iterable[Ref]:
    for frame in _seq(ds, "ReferencedFrameOfReferenceSequence"):
        for study in _seq(frame, "RTReferencedStudySequence"):
            for series in _seq(study, "RTReferencedSeriesSequence"):
                if series.get("SeriesInstanceUID"):
                    yield Ref("series", _s(series.get("SeriesInstanceUID")))
                for img in _seq(series, "ContourImageSequence"):
                    yield Ref("image", _s(img.get("ReferencedSOPInstanceUID")), _s(img.get("ReferencedSOPClassUID")))
    for roi in _seq(ds, "ROIContourSequence"):
        for contour in _seq(roi, "ContourSequence"):
            for img in _seq(contour, "ContourImageSequence"):
                yield Ref("image", _s(img.get("ReferencedSOPInstanceUID")), _s(img.get("ReferencedSOPClassUID")))


def _generic_refs(ds: Dataset) -> Iterable[Ref]:
    """Registrations and others: referenced series and instances wherever they sit (two levels deep is enough)."""
    def walk(d: Dataset, depth: int) -> Iterable[Ref]:
        if depth > 4:
            return
        for elem in d:
            if elem.VR != "SQ":
                continue
            for item in elem.value:
                uid = _s(item.get("ReferencedSOPInstanceUID"))
                if uid:
                    yield Ref("instance", uid, _s(item.get("ReferencedSOPClassUID")))
                if elem.keyword in ("ReferencedSeriesSequence", "RTReferencedSeriesSequence") and item.get("SeriesInstanceUID"):
                    yield Ref("series", _s(item.get("SeriesInstanceUID")))
                yield from walk(item, depth + 1)
    yield from walk(ds, 0)


def plan_info(ds: Dataset) -> PlanInfo:
    ion = "IonBeamSequence" in ds
    mu_by_beam: dict[int, float] = {}
    fractions = None
    groups = _seq(ds, "FractionGroupSequence")
    if groups:
        fractions = _int(groups[0].get("NumberOfFractionsPlanned"))
        for ref in _seq(groups[0], "ReferencedBeamSequence"):
            num, mu = _int(ref.get("ReferencedBeamNumber")), _float(ref.get("BeamMeterset"))
            if num is not None and mu is not None:
                mu_by_beam[num] = mu
    beams = []
    for b in _seq(ds, "IonBeamSequence" if ion else "BeamSequence"):
        number = _int(b.get("BeamNumber"))
        cps = _seq(b, "IonControlPointSequence" if ion else "ControlPointSequence")
        energy = _s(cps[0].get("NominalBeamEnergy")) if cps else ""
        beams.append(Beam(number, _s(b.get("BeamName")), _s(b.get("RadiationType")), energy,
                          mu_by_beam.get(number) if number is not None else None, _s(b.get("TreatmentMachineName"))))
    machines = tuple(dict.fromkeys(b.machine for b in beams if b.machine))
    return PlanInfo(
        label=_s(ds.get("RTPlanLabel")),
        name=_s(ds.get("RTPlanName")),
        approval=_s(ds.get("ApprovalStatus")) or "",
        machines=machines,
        beams=tuple(beams),
        fractions=fractions,
        ion=ion,
        intent=_s(ds.get("PlanIntent")),
    )


def _describe(ds: Dataset, modality: str) -> str:
    if modality == "RTDOSE":
        parts = [_s(ds.get("DoseType")), _s(ds.get("DoseSummationType")), _s(ds.get("DoseUnits"))]
        return " ".join(p for p in parts if p)
    if modality == "RTSTRUCT":
        label = _s(ds.get("StructureSetLabel"))
        return f"{label} ({len(_seq(ds, 'StructureSetROISequence'))} ROIs)" if label else ""
    if modality == "RTIMAGE":
        return _s(ds.get("RTImageLabel"))
    return _s(ds.get("SeriesDescription"))


def _seq(ds: Dataset, keyword: str) -> list[Dataset]:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed sequence must not stop the rest of the header
        return []
    return list(value) if value else []


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\x00 ")
    return str(value).strip("\x00 ")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _dedupe(refs: Iterable[Ref]) -> list[Ref]:
    seen: dict[tuple[str, str], Ref] = {}
    for r in refs:
        if r.uid and (r.kind, r.uid) not in seen:
            seen[(r.kind, r.uid)] = r
    return list(seen.values())


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def dataset_offset(path: str | os.PathLike[str]) -> int:
    """Byte offset where the dataset starts (after preamble and file meta); 0 for a raw dataset.

    Walks the group-0002 elements itself (always Explicit VR Little Endian) so that a file whose meta lacks a
    group length still compares correctly."""
    with open(path, "rb") as fh:
        head = fh.read(132)
        if len(head) < 132 or head[128:132] != b"DICM":
            return 0
        pos = 132
        while True:
            hdr = fh.read(8)
            if len(hdr) < 8 or int.from_bytes(hdr[0:2], "little") != 0x0002:
                return pos
            vr = hdr[4:6]
            if vr in _LONG_VRS:
                length = int.from_bytes(fh.read(4), "little")
                pos += 12 + length
            else:
                length = int.from_bytes(hdr[6:8], "little")
                pos += 8 + length
            fh.seek(pos)
