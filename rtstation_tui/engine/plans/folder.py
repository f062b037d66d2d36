"""``rtstation show --path DIR``: the reference-chain tree of any folder, without importing it.

Why through a throw-away index: the bundles are built from the index (``bundle.patient_view``), and the listing
must have the very shape of ``show --json``. The headers are read once into a temporary ``index.sqlite`` (paths
relative to the folder); nothing is copied and the folder is never written to.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ..dicom.header import BadDicom, read_header
from ..store.files import Placed
from ..store.index import Index, IndexRecord
from .listing import patients_json
from .search import files_under


def folder_json(root: Path, pattern: str = "*") -> tuple[list[dict[str, Any]], list[str]]:
    """(the ``show --json`` listing of ``root``, the files that are not readable DICOM)."""
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rtstation-show-") as tmp:
        index = Index(Path(tmp))
        records = []
        for path in files_under(root, pattern):
            try:
                info = read_header(path)
            except (BadDicom, OSError):
                skipped.append(str(path))
                continue
            rel = str(path.relative_to(root))
            records.append(IndexRecord(info, Placed("stored", rel, path.stat().st_size), "folder", "", time.time()))
        index.add(records)
        try:
            return patients_json(index.conn), skipped
        finally:
            index.close()
