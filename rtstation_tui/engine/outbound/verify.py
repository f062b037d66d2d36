"""A stored file is checked before it is forwarded: present, the size it had when stored, and every element length
inside the file (``verify_structure``, well under a millisecond per image).

Why: the store can be damaged behind the station's back (a disk error, a script, a restore that truncated files).
Forwarding a truncated object would hand the peer a broken copy under a valid SOP Instance UID; refusing it, with
its path named, lets an operator restore it and send again."""

from __future__ import annotations

import os
from pathlib import Path

from ..dicom.header import BadDicom, dataset_offset
from ..dicom.lengthwalk import verify_structure


def damage(path: str, stored_size: int, transfer_syntax: str) -> str | None:
    """Why the stored file at ``path`` must not be forwarded, or None when it is whole."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return f"the stored file {path} is gone; not forwarded"
    except OSError as exc:
        return f"cannot read the stored file {path}: {exc.strerror or exc}; not forwarded"
    if stored_size and size != stored_size:
        return (f"the stored file {path} is {size} bytes, it was {stored_size} when stored: damaged behind the "
                f"station's back; not forwarded (restore it, then send again)")
    try:
        verify_structure(path, dataset_offset(Path(path)), transfer_syntax)
    except BadDicom as exc:
        return f"the stored file {path} is damaged ({exc}); not forwarded"
    except OSError as exc:
        return f"cannot read the stored file {path}: {exc.strerror or exc}; not forwarded"
    return None
