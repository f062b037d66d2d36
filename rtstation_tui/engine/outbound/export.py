"""A rule's ``export``: the ready bundle copied into a folder (or one ZIP) named from the plan, e.g.
``/exports/{calling_ae}/{patient_id}/{plan_label}`` → ``/exports/ECLIPSE/PAT1/PROST_1/``.

Why like this:
- Each field's value becomes one sanitized path component (``store/paths.safe_component``): a plan label
  ``../../etc`` or ``A/B`` never leaves the export root or makes folders of its own; the literal parts are the
  operator's and stay as written (the config check refuses relative templates and ``..``).
- Atomic: the copy is written into a hidden sibling, fsynced, then renamed into place; a folder that was there
  (the bundle exported before, now with more objects) is swapped out and removed only after. A reader never sees
  half an export, and a crash leaves a ``.rtstation-part-*`` sibling, never a short folder under the final name.
- Without transforms the files are the stored bytes (copied, not re-encoded); with the rule's ``transforms`` they
  are the transformed copies, made exactly as a send makes them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config.model import Config
from ..config.rules import RuleConfig
from ..config.transforms import encode_chain
from ..store.paths import safe_component
from ..transforms.base import apply_chain
from ..transforms.files import read_objects, write_objects
from ..transforms.registry import build_chain


@dataclass(frozen=True)
class Exported:
    path: str  # the folder or the .zip
    files: int


def export_path(template: str, fields: dict[str, str]) -> Path:
    """The template with each field's value as one safe path component."""
    return Path(template.format(**{k: safe_component(v) for k, v in fields.items()}))


def export_fields(rule: RuleConfig, plan_uid: str, patient_id: str, patient_name: str, label: str,
                  sources: Sequence[str]) -> dict[str, str]:
    return {"calling_ae": sources[0] if sources else "", "patient_id": patient_id, "patient_name": patient_name,
            "plan_label": label, "plan_uid": plan_uid, "rule": rule.name, "tag": rule.tag or "",
            "date": time.strftime("%Y%m%d")}


def export_bundle(config: Config, rule: RuleConfig, files: Sequence[Path], target: Path) -> Exported:
    """Write ``files`` (stored paths, in bundle order) to ``target`` as the rule says; OSError / TransformError."""
    assert rule.export is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".rtstation-part-{target.name}-", dir=target.parent))
    try:
        staged = work / "bundle"
        written = _stage(config, rule, files, staged)
        if rule.export_format == "zip":
            final = target.with_name(target.name + ".zip")
            part = work / "bundle.zip"
            _zip(written, part)
            os.replace(part, final)
        else:
            final = target
            _swap_in(staged, final, work)
        _fsync_dir(final.parent)
        return Exported(str(final), len(written))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stage(config: Config, rule: RuleConfig, files: Sequence[Path], folder: Path) -> list[Path]:
    if rule.transforms:
        objects = apply_chain(build_chain(encode_chain(rule.transforms), config), read_objects(files))
        return write_objects(objects, folder)
    folder.mkdir(parents=True)
    out = []
    for src in files:
        dst = folder / Path(src).name
        n = 1
        while dst.exists():  # two versions of one instance (a conflict in the store): both go out
            n += 1
            dst = folder / f"{Path(src).stem}~{n}{Path(src).suffix}"
        shutil.copyfile(src, dst)
        with open(dst, "rb") as fh:
            os.fsync(fh.fileno())
        out.append(dst)
    return out


def _zip(files: list[Path], part: Path) -> None:
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
    with open(part, "rb") as fh:
        os.fsync(fh.fileno())


def _swap_in(staged: Path, final: Path, work: Path) -> None:
    """``staged`` becomes ``final``; an existing ``final`` is moved into ``work`` first (removed with it)."""
    if final.exists():
        os.rename(final, work / "previous")
    os.rename(staged, final)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
