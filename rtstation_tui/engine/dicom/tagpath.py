"""Tag paths for ``rtstation search``: ``(0010,0020)=Phantom-1``, ``(0008,0060)=?``, and sequence paths such as
``(300A,00B0)/(300A,00B2)=?`` (every item of every sequence on the way).

``=?`` prints the value (no filter); any other value filters, with ``*`` and ``?`` wildcards; ``=`` alone asks
for an empty value. Pure DICOM: a parsed term and a pydicom dataset in, values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

_STEP = re.compile(r"^\(\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)$")
SHOW = "?"


class TagPathError(ValueError):
    """A ``--tag`` term that is not a tag path; the message shows the form."""


@dataclass(frozen=True)
class TagTerm:
    text: str  # as the user wrote the path (for output)
    path: tuple[int, ...]
    value: str  # "?" prints; anything else filters

    @property
    def shows(self) -> bool:
        return self.value == SHOW

    @property
    def name(self) -> str:
        """``(300A,00B0)/(300A,00B2)`` → ``BeamSequence/TreatmentMachineName`` (hex where the dictionary is silent)."""
        return "/".join(keyword_for_tag(t) or f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in self.path)

    def matches(self, values: list[str]) -> bool:
        if self.shows:
            return True
        if not self.value:
            return not values or all(v == "" for v in values)
        rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.value), re.S)
        return any(rx.fullmatch(v) for v in values)


def parse_term(term: str) -> TagTerm:
    path_text, eq, value = term.partition("=")
    if not eq:
        raise TagPathError(f"--tag {term!r}: write \"(gggg,eeee)=value\" or \"(gggg,eeee)=?\" (sequence paths: "
                           "\"(300A,00B0)/(300A,00B2)=?\")")
    steps = []
    for step in path_text.strip().split("/"):
        m = _STEP.match(step.strip())
        if not m:
            raise TagPathError(f"--tag {term!r}: {step.strip()!r} is not a tag; write it as (gggg,eeee)")
        steps.append(int(m.group(1) + m.group(2), 16))
    return TagTerm(path_text.strip(), tuple(steps), value.strip())


def values_at(ds: Dataset, path: tuple[int, ...]) -> list[str]:
    """Every value at ``path`` (through every item of each sequence on the way) as text; [] if absent."""
    return list(_walk(ds, path))


def _walk(ds: Dataset, path: tuple[int, ...]) -> Iterator[str]:
    tag, rest = path[0], path[1:]
    if tag not in ds:
        return
    elem = ds[tag]
    if rest:
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item, rest)
        return
    if elem.VR == "SQ":
        yield f"<{len(elem.value or [])} items>"
    else:
        yield _text(elem.value)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    if isinstance(v, (MultiValue, list, tuple)):
        return "\\".join(_text(x) for x in v)
    return str(v).strip()
