"""Reading stored objects for a transform and writing its output, atomically, never into the store.

Why atomic: a half-written de-identified file looks like a whole one to the next reader (a PACS import, a research
upload); temp name + fsync + ``os.replace`` in the target folder means a crash leaves a ``.part`` or nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import pydicom
from pydicom.dataset import Dataset

from ..store.paths import safe_component


def read_objects(paths: Iterable[Path | str]) -> list[Dataset]:
    """Whole datasets, pixel data as stored bytes (never decoded)."""
    return [pydicom.dcmread(str(p)) for p in paths]


def output_name(ds: Dataset) -> str:
    modality = safe_component(str(ds.get("Modality", "OT") or "OT"))
    return f"{modality}.{safe_component(str(ds.SOPInstanceUID))}.dcm"


def write_objects(objects: Sequence[Dataset], outdir: Path, fsync: bool = True) -> list[Path]:
    """One file per dataset in ``outdir`` (created), named by modality and the new SOP Instance UID."""
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for ds in objects:
        target = outdir / output_name(ds)
        n = 1
        while target in written:  # two versions of one instance (a conflict in the store): both go out
            n += 1
            target = outdir / output_name(ds).replace(".dcm", f"~{n}.dcm")
        part = target.with_name(target.name + ".part")
        try:
            with open(part, "wb") as fh:
                pydicom.dcmwrite(fh, ds, enforce_file_format=True)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        written.append(target)
    return written
