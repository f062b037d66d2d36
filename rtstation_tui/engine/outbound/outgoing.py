"""Transformed copies for one send attempt: built from the stored files, sent, then deleted.

Why here and like this: the store keeps the originals, always (files are the truth, and the index is rebuilt from
``data_dir/store``). Copies live in ``data_dir/tmp/outgoing/job-N`` only while an attempt runs; the folder goes
when the attempt ends, and a crash leaves it in ``tmp``, which the store empties at the next start. Nothing
transformed ever lands in the store or the index. Each attempt rebuilds the copies: the transform is deterministic
(same key, same UIDs), so a retry sends the very objects the peer may already have.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config.model import Config
from ..transforms.files import read_objects, write_objects
from ..transforms.base import TransformError, apply_chain
from ..transforms.registry import build_chain
from .queue import ItemRow


def outgoing_dir(data_dir: Path, job_id: int) -> Path:
    return Path(data_dir) / "tmp" / "outgoing" / f"job-{job_id}"


@dataclass(frozen=True)
class Copies:
    """One attempt's copies: item seq → the file to send, and → the (SOP Class, SOP Instance) UIDs it carries
    (storage commitment asks the node about what it holds, which a chain such as anonymize renamed)."""

    paths: dict[int, str]
    uids: dict[int, tuple[str, str]]


def prepare(config: Config, job_id: int, spec: str, items: Sequence[ItemRow]) -> Copies:
    """The transformed copy of each item. TransformError when a transform of the chain refuses the objects
    (the chain is applied whole, in memory, before anything is written: never half a bundle)."""
    chain = build_chain(spec, config)
    folder = outgoing_dir(config.data_dir, job_id)
    discard(folder)
    objects = apply_chain(chain, read_objects(i.path for i in items))
    if len(objects) != len(items):  # the queue has one row per stored instance: never drop or invent silently
        raise TransformError(f"{spec} made {len(objects)} objects of {len(items)}; a send job needs one for each")
    paths = write_objects(objects, folder, fsync=False)  # throw-away copies: nothing to make durable
    uids = {item.seq: (str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")))
            for item, ds in zip(items, objects)}
    return Copies({item.seq: str(path) for item, path in zip(items, paths)}, uids)


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
