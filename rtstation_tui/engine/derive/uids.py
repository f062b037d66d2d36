"""UIDs of derived objects, fixed by what they were derived from.

Why deterministic: deriving the same thing twice must name the same objects (the store then keeps one copy and a
receiver sees a duplicate), never a second series that looks like new data.
"""

from __future__ import annotations

from pydicom.uid import generate_uid

DERIVED_SERIES_NUMBER_OFFSET = 1000  # a new series number near the source's, that no scanner uses for acquisitions


def derived_uid(*parts: str) -> str:
    """A UID under pydicom's root made from a hash of ``parts``."""
    return str(generate_uid(entropy_srcs=["rtstation derive", *parts]))
