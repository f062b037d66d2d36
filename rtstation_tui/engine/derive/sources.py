"""Where a derivation's inputs come from: the station's store (through its index) or files the user names.

Why images are found by series and not by ContourImageSequence: the overlay series copies *every* image of the
referenced series, those without contours too, and some planning systems list UIDs there that no image has.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..plans.bundle import bundle_for

RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


class SourceError(ValueError):
    """Inputs that cannot be found or read, named."""


@dataclass(frozen=True)
class ContourInputs:
    """A structure set and, per referenced series present, its images (series UID → datasets)."""

    structure_set: Dataset
    series: dict[str, list[Dataset]]


def referenced_series(structure_set: Dataset) -> list[str]:
    """Series UIDs the structure set's contours are drawn on (RTReferencedSeriesSequence), in order."""
    out: list[str] = []
    for fr in structure_set.get("ReferencedFrameOfReferenceSequence", []) or []:
        for st in fr.get("RTReferencedStudySequence", []) or []:
            for se in st.get("RTReferencedSeriesSequence", []) or []:
                if "SeriesInstanceUID" in se and str(se.SeriesInstanceUID) not in out:
                    out.append(str(se.SeriesInstanceUID))
    return out


def read(path: Path, header_only: bool = False) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise SourceError(f"{path}: not a readable DICOM file ({exc})") from None


def _latest(conn: sqlite3.Connection, where: str, arg: str) -> list[str]:
    """Relative paths of the newest non-conflicting version of each instance matching ``where``."""
    rows = conn.execute(f"SELECT sop_uid, version, path FROM instances WHERE {where} AND conflict=0 "  # noqa: S608
                        "ORDER BY sop_uid, version", (arg,)).fetchall()
    newest = {r["sop_uid"]: r["path"] for r in rows}
    return list(newest.values())


def structure_set_of_plan(conn: sqlite3.Connection, plan_uid: str) -> str:
    bundle = bundle_for(conn, plan_uid)
    uids = sorted({m.sop_uid for m in bundle.members if m.modality == "RTSTRUCT"}) if bundle else []
    if not uids:
        raise SourceError(f"plan {plan_uid} has no structure set in the store")
    if len(uids) > 1:
        raise SourceError(f"plan {plan_uid} references {len(uids)} structure sets ({', '.join(uids)}); "
                          "name one with --structure-set")
    return uids[0]


def from_store(conn: sqlite3.Connection, store_root: Path, structure_set_uid: str) -> ContourInputs:
    """The structure set ``structure_set_uid`` and the stored images of the series it references."""
    paths = _latest(conn, "sop_uid=?", structure_set_uid)
    if not paths:
        raise SourceError(f"no structure set {structure_set_uid} in the store")
    rs = read(store_root / paths[0])
    if str(rs.get("SOPClassUID", "")) != RTSTRUCT_CLASS:
        raise SourceError(f"{structure_set_uid} is a {rs.get('Modality', '?')} object, not an RTSTRUCT")
    series = {uid: [read(store_root / p) for p in _latest(conn, "series_uid=?", uid)]
              for uid in referenced_series(rs)}
    return _present(rs, {k: v for k, v in series.items() if v})


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise SourceError(f"{p}: no such file or folder")
    return out


def from_files(rtstruct: Path, images: Iterable[Path]) -> ContourInputs:
    """An RTSTRUCT file and image files or folders; files of other series (or not DICOM) are left aside."""
    rs = read(rtstruct)
    if str(rs.get("SOPClassUID", "")) != RTSTRUCT_CLASS:
        raise SourceError(f"{rtstruct}: a {rs.get('Modality', '?')} object, not an RTSTRUCT")
    wanted = set(referenced_series(rs))
    series: dict[str, list[Dataset]] = {}
    for f in _files(images):
        try:
            head = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        uid = str(head.get("SeriesInstanceUID", ""))
        if uid in wanted:
            series.setdefault(uid, []).append(read(f))
    return _present(rs, series)


def _present(rs: Dataset, series: dict[str, list[Dataset]]) -> ContourInputs:
    if not series:
        raise SourceError(f"none of the images of series {', '.join(referenced_series(rs)) or '(none listed)'} "
                          f"referenced by structure set {rs.get('SOPInstanceUID', '?')} were found")
    return ContourInputs(rs, series)
