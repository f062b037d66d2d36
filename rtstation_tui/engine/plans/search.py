"""``rtstation search``: which files hold which tag values, in any folder or in the store.

Over a folder every file is read (header only, pixel data never); files that are not DICOM are counted, not
errors. Over the store the index answers what it holds (PatientID, Modality, SOP Class, study/series/instance
UIDs): a search made only of those terms is one SQL query and never opens a file; other terms read only the
files the indexed terms let through.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pydicom
from pydicom.errors import InvalidDicomError

from ..dicom.tagpath import TagTerm, values_at
from ..store.index import Index

INDEXED = {0x00100020: "patient_id", 0x00080060: "modality", 0x00080016: "sop_class", 0x0020000D: "study_uid",
           0x0020000E: "series_uid", 0x00080018: "sop_uid"}


@dataclass(frozen=True)
class Hit:
    path: str
    values: dict[str, list[str]]  # term path text -> values found (every item of sequences)


@dataclass
class Search:
    terms: tuple[TagTerm, ...]
    hits: list[Hit] = field(default_factory=list)
    scanned: int = 0
    not_dicom: int = 0
    used_index: bool = False

    def stats(self) -> dict[str, dict[str, int]]:
        """Per term, how many matching files hold each value (a file counts once per value)."""
        out: dict[str, dict[str, int]] = {}
        for t in self.terms:
            c: Counter[str] = Counter()
            for h in self.hits:
                c.update(set(h.values.get(t.text, [])) or {"(absent)"})
            out[t.text] = dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        return out

    def dirs(self) -> list[str]:
        return sorted({os.path.dirname(h.path) for h in self.hits})


def files_under(root: Path, pattern: str = "*") -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if fnmatch.fnmatch(name, pattern):
                yield Path(dirpath) / name


def check(terms: tuple[TagTerm, ...], path: Path, result: Search) -> None:
    result.scanned += 1
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, AttributeError, KeyError):
        result.not_dicom += 1
        return
    values = {t.text: values_at(ds, t.path) for t in terms}
    if all(t.matches(values[t.text]) for t in terms):
        result.hits.append(Hit(str(path), values))


def search_folder(root: Path, terms: tuple[TagTerm, ...], pattern: str = "*") -> Search:
    result = Search(terms)
    for path in files_under(root, pattern):
        check(terms, path, result)
    return result


def _indexed(t: TagTerm) -> str | None:
    return INDEXED.get(t.path[0]) if len(t.path) == 1 else None


def search_store(index: Index, store_root: Path, terms: tuple[TagTerm, ...], pattern: str = "*") -> Search:
    """The index narrows (exact values in SQL, wildcards on its rows); other terms read the remaining files."""
    result = Search(terms, used_index=True)
    where, params = [], []
    for t in terms:
        col = _indexed(t)
        if col is None or t.shows:
            continue
        if "*" in t.value or "?" in t.value:  # GLOB has DICOM's * and ?; a literal [ is written [[]
            where.append(f"{col} GLOB ?")
            params.append(t.value.replace("[", "[[]"))
        else:
            where.append(f"{col} = ?")
            params.append(t.value)
    cols = ", ".join(sorted(set(INDEXED.values())))
    q = f"SELECT path, {cols} FROM instances" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY path"
    rest = tuple(t for t in terms if _indexed(t) is None)
    for row in index.conn.execute(q, params):
        if not fnmatch.fnmatch(os.path.basename(row["path"]), pattern):
            continue
        values = {t.text: [row[col]] for t in terms if (col := _indexed(t)) is not None}
        if not all(t.matches(values[t.text]) for t in terms if t.text in values):
            continue
        path = store_root / row["path"]
        if not rest:
            result.scanned += 1
            result.hits.append(Hit(str(path), values))
            continue
        before = len(result.hits)
        check(rest, path, result)
        if len(result.hits) > before:
            hit = result.hits[-1]
            result.hits[-1] = Hit(hit.path, {**values, **hit.values})
    return result


def as_json(result: Search, stats: bool, dirs_only: bool) -> object:
    if stats:
        return {"files": len(result.hits), "scanned": result.scanned, "stats": result.stats()}
    if dirs_only:
        return result.dirs()
    return [{"path": h.path, "values": h.values} for h in result.hits]


def terms_text(values: dict[str, list[str]], terms: Iterable[TagTerm]) -> str:
    return "  ".join(f"{t.name}={'|'.join(values.get(t.text, [])) or '(absent)'}" for t in terms)
