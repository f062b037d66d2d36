"""Safe file names from DICOM values.

Why: PatientID, StudyInstanceUID and Modality come from the network. A PatientID of ``../../etc`` or one holding
``/``, NUL or 300 characters must still give one readable file-name component inside the store, and two different
IDs must never share a component. Anything changed or shortened gets a short hash of the original appended.
"""

from __future__ import annotations

import hashlib
import re

MAX_COMPONENT = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._^=+-]")


def safe_component(value: str | None, empty: str = "_empty") -> str:
    """One path component: only ``[A-Za-z0-9._^=+-]``, never starting with a dot, at most ~80 characters."""
    original = value if value is not None else ""
    text = original.strip()
    if not text:
        return f"{empty}-{_digest(original)}" if original else empty
    cleaned = _UNSAFE.sub("_", text)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned == text and len(cleaned) <= MAX_COMPONENT:
        return cleaned
    return f"{cleaned[:MAX_COMPONENT]}-{_digest(original)}"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]
