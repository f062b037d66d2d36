"""C-FIND identifiers from command-line terms, and answers as plain rows.

Why a module of its own: the same identifiers serve ``rtstation find``, the selective retrieve's queries and the
tests, and the rules for building them (which keys a level returns, how a ``--tag`` names an element, which
information model a level needs) are DICOM facts, not network code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import Tag

LEVELS = ("patient", "study", "series", "image")
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
FIND_MODELS = {"patient": PATIENT_ROOT_FIND, "study": STUDY_ROOT_FIND}
MOVE_MODELS = {"patient": PATIENT_ROOT_MOVE, "study": STUDY_ROOT_MOVE}
GET_MODELS = {"patient": PATIENT_ROOT_GET, "study": STUDY_ROOT_GET}

# What each level asks back (empty return keys), on top of the unique keys of the levels above it
RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "patient": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "NumberOfPatientRelatedStudies"),
    "study": ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID",
              "AccessionNumber", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"),
    "series": ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "NumberOfSeriesRelatedInstances"),
    "image": ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Modality",
              "InstanceNumber"),
}
LEVEL_VALUE = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "image": "IMAGE"}
_TAG = re.compile(r"^\(\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)\s*(?:=(.*))?$")
_DATE_RANGE = re.compile(r"^(\d{8})?-?(\d{8})?$")


class QueryError(ValueError):
    """A query term that cannot become a C-FIND identifier; the message names the term and what is allowed."""


@dataclass(frozen=True)
class Terms:
    """What the user asked for; ``tags``: ``(gggg,eeee)=value`` strings (empty value: a return key)."""

    level: str = "study"
    patient: str | None = None
    name: str | None = None
    modality: str | None = None
    study_date: str | None = None
    tags: tuple[str, ...] = ()


def parse_tag(term: str) -> tuple[int, str]:
    """``(300A,0002)=B1*`` → (0x300A0002, "B1*"); ``(0008,0060)`` or ``(0008,0060)=`` → a return key."""
    m = _TAG.match(term.strip())
    if not m:
        raise QueryError(f"--tag {term!r}: write it as \"(gggg,eeee)=value\", e.g. \"(300A,0002)=B1*\"")
    tag = int(m.group(1) + m.group(2), 16)
    if keyword_for_tag(tag) == "":
        raise QueryError(f"--tag {term!r}: {m.group(1)},{m.group(2)} is not in the DICOM dictionary (private "
                         "and unknown elements cannot be queried)")
    return tag, (m.group(3) or "").strip()


def check_date_range(value: str) -> str:
    """``20260101``, ``20260101-``, ``-20261231``, ``20260101-20261231``: the DA range matching of Part 4 C.2.2.2.5."""
    if not value or not _DATE_RANGE.match(value) or value == "-":
        raise QueryError(f"--study-date {value!r}: use YYYYMMDD, YYYYMMDD-, -YYYYMMDD or YYYYMMDD-YYYYMMDD")
    return value


def build_identifier(terms: Terms) -> Dataset:
    """The identifier for ``terms``: matching keys set, the level's return keys empty."""
    if terms.level not in LEVELS:
        raise QueryError(f"--level {terms.level!r}: choose from {', '.join(LEVELS)}")
    ds = Dataset()
    ds.QueryRetrieveLevel = LEVEL_VALUE[terms.level]
    for kw in RETURN_KEYS[terms.level]:
        setattr(ds, kw, None)
    if terms.patient is not None:
        ds.PatientID = terms.patient
    if terms.name is not None:
        ds.PatientName = terms.name
    if terms.modality is not None:
        key = "ModalitiesInStudy" if terms.level in ("patient", "study") else "Modality"
        if terms.level == "patient":
            raise QueryError("--modality needs --level study, series or image")
        setattr(ds, key, terms.modality)
    if terms.study_date is not None:
        ds.StudyDate = check_date_range(terms.study_date)
    for term in terms.tags:
        tag, value = parse_tag(term)
        vr = dictionary_VR(tag)
        ds.add_new(Tag(tag), vr, None if vr == "SQ" and not value else (value or None))
    return ds


def model_for(level: str, offered: Iterable[str]) -> str:
    """Patient Root where the peer takes it, else Study Root (which has no PATIENT level)."""
    offered = set(offered)
    if "patient" in offered:
        return "patient"
    if "study" in offered and level != "patient":
        return "study"
    if "study" in offered:
        raise QueryError("the peer offers only Study Root, which has no PATIENT level: use --level study")
    raise QueryError("the peer accepts neither Patient Root nor Study Root C-FIND")


def row(ds: Dataset) -> dict[str, Any]:
    """An answer as a JSON-able row: keyword → text (sequences as lists of rows), query bookkeeping left out."""
    out: dict[str, Any] = {}
    for elem in ds:
        if elem.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle") or not elem.keyword:
            continue
        if elem.VR == "SQ":
            out[elem.keyword] = [row(item) for item in elem.value]
        elif elem.value is None or elem.value == "":
            out[elem.keyword] = ""
        elif elem.VM > 1:
            out[elem.keyword] = "\\".join(str(v) for v in elem.value)
        else:
            out[elem.keyword] = str(elem.value)
    return out
