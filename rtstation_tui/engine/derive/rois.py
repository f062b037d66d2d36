"""The ROIs of a structure set, which of them the user selected, and how they map onto at most 16 overlay groups.

Why patterns are globs unless marked ``re:``: ROI names come from many planning systems (``PTV_70``, ``PTV 70 Gy``,
``ptv-boost``) and a case-insensitive glob covers most needs in a command line; a regular expression is there for
the rest.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass

from pydicom.dataset import Dataset

from .rasterize import CLOSED_TYPES

log = logging.getLogger(__name__)

MAX_OVERLAY_GROUPS = 16


class SelectionError(ValueError):
    """A selection that cannot be applied: a bad pattern, or nothing left to draw."""


@dataclass(frozen=True)
class Roi:
    """One ROI of a structure set, with what the derived objects show of it."""

    number: int
    name: str
    interpreted_type: str  # RT ROI Interpreted Type, upper case, "" when absent
    color: tuple[int, int, int] | None
    generation: str  # ROIGenerationAlgorithm: AUTOMATIC, SEMIAUTOMATIC, MANUAL or ""


@dataclass(frozen=True)
class RoiSelection:
    """Which ROIs to draw: names matching any ``include`` (all when empty) and no ``exclude``, with an interpreted
    type in ``types`` (any when empty). Patterns are case-insensitive globs, or regular expressions after ``re:``."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def __str__(self) -> str:
        """In words, for errors: ``names PTV*, CTV; not *z*; types PTV``."""
        parts = [f"names {', '.join(self.include)}" if self.include else "all names"]
        parts += [f"not {', '.join(self.exclude)}"] * bool(self.exclude)
        parts += [f"types {', '.join(self.types)}"] * bool(self.types)
        return "; ".join(parts)


@dataclass(frozen=True)
class RoiGroup:
    """The ROIs drawn into one mask (one overlay plane / one SEG segment)."""

    label: str
    rois: tuple[Roi, ...]


def list_rois(structure_set: Dataset) -> list[Roi]:
    """Every ROI of the structure set with closed contours, in ROI number order."""
    types = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "").upper()
             for o in structure_set.get("RTROIObservationsSequence", []) or [] if "ReferencedROINumber" in o}
    colors: dict[int, tuple[int, int, int]] = {}
    with_contours: set[int] = set()
    for rc in structure_set.get("ROIContourSequence", []) or []:
        n = int(rc.ReferencedROINumber)
        if any(str(c.get("ContourGeometricType", "")).upper() in CLOSED_TYPES and c.get("ContourData")
               for c in rc.get("ContourSequence", []) or []):
            with_contours.add(n)  # markers (POINT) and open contours have no inside to draw
        col = rc.get("ROIDisplayColor")
        if col is not None and len(col) == 3:
            colors[n] = (int(col[0]), int(col[1]), int(col[2]))
    out = []
    for item in structure_set.get("StructureSetROISequence", []) or []:
        n = int(item.ROINumber)
        if n in with_contours:
            out.append(Roi(n, str(item.get("ROIName", "") or f"ROI {n}"), types.get(n, ""), colors.get(n),
                           str(item.get("ROIGenerationAlgorithm", "") or "").upper()))
    return sorted(out, key=lambda r: r.number)


def _matcher(pattern: str):  # type: ignore[no-untyped-def]
    if pattern.lower().startswith("re:"):
        try:
            rx = re.compile(pattern[3:], re.IGNORECASE)
        except re.error as exc:
            raise SelectionError(f"ROI pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return lambda name: rx.search(name) is not None
    return lambda name: fnmatch.fnmatchcase(name.lower(), pattern.lower())


def select_rois(rois: list[Roi], selection: RoiSelection) -> list[Roi]:
    """The ROIs the selection keeps; an empty result is an error naming what was there to choose from."""
    inc = [_matcher(p) for p in selection.include]
    exc = [_matcher(p) for p in selection.exclude]
    types = {t.upper() for t in selection.types}
    kept = [r for r in rois
            if (not inc or any(m(r.name) for m in inc)) and not any(m(r.name) for m in exc)
            and (not types or r.interpreted_type in types)]
    if not kept:
        listing = ", ".join(f"{r.name} ({r.interpreted_type or 'no type'})" for r in rois) or "none with contours"
        raise SelectionError(f"no ROI matches the selection ({selection}); the structure set has: {listing}")
    return kept


def group_rois(rois: list[Roi], merge: bool, limit: int = MAX_OVERLAY_GROUPS) -> list[RoiGroup]:
    """One group for all (``merge``) or one per ROI; past ``limit`` groups the rest are merged into the last one,
    with a warning naming them (an image has at most 16 overlay planes)."""
    if not rois:
        return []
    if merge:
        return [RoiGroup(" + ".join(r.name for r in rois), tuple(rois))]
    if len(rois) <= limit:
        return [RoiGroup(r.name, (r,)) for r in rois]
    head, tail = rois[:limit - 1], rois[limit - 1:]
    log.warning("more than %d ROIs selected: %s share the last overlay group", limit,
                ", ".join(r.name for r in tail))
    return [*(RoiGroup(r.name, (r,)) for r in head), RoiGroup(" + ".join(r.name for r in tail), tuple(tail))]
