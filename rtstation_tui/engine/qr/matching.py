"""C-FIND attribute matching (DICOM Part 4 C.2.2.2) for the station's own Query/Retrieve SCP.

Single value, universal (empty), wildcards ``*``/``?`` (not for UIDs), lists of UIDs (``\\``-separated), date/time
ranges (``A-B``, ``A-``, ``-B``); person names match case-insensitively, as Orthanc and most archives do.
Sequence keys are return keys only (an item's values are not matched). Pure functions: the SCP and tests use them.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.multival import MultiValue

MULTI = (list, tuple, MultiValue)

RANGE_VRS = {"DA", "TM", "DT"}


def is_universal(value: Any) -> bool:
    return value is None or str(value).strip() in ("", "*")


def matches(key_value: Any, vr: str, actual: Any) -> bool:
    """Whether ``actual`` (the stored value; multi-valued as a list) matches the identifier's ``key_value``."""
    if is_universal(key_value):
        return True
    wanted = _text(key_value)
    values = [_text(v) for v in actual] if isinstance(actual, MULTI) else [_text(actual)]
    if vr == "UI":
        uids = {u.strip() for u in wanted.split("\\")}
        return any(v.strip() in uids for v in values)
    if vr in RANGE_VRS and "-" in wanted:
        return any(_in_range(wanted, v, vr) for v in values)
    if vr == "PN":
        return any(_wild(wanted.upper(), v.upper()) for v in values)
    return any(_wild(wanted, v) for v in values)


def _text(v: Any) -> str:
    if isinstance(v, MULTI):
        return "\\".join(str(x) for x in v)
    return "" if v is None else str(v).strip()


def _wild(pattern: str, value: str) -> bool:
    """Wildcards ``*`` and ``?``; every other character (``[`` too: DICOM has no classes) is literal."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.S) is not None


def _in_range(wanted: str, value: str, vr: str) -> bool:
    """``low-high`` inclusive; each bound compared with the value cut to the bound's precision (TM ``1200``)."""
    low, _, high = (part.strip() for part in wanted.partition("-"))
    if not value:
        return False
    return (not low or value[:len(low)] >= low) and (not high or value[:len(high)] <= high)
