"""Transformed copies for one send attempt: built from the stored files, sent, then deleted.

Why here and like this: the store keeps the originals, always (files are the truth, and the index is rebuilt from
``data_dir/store``). Copies live in ``data_dir/tmp/outgoing/job-N`` only while an attempt runs; the folder goes
when the attempt ends, and a crash leaves it in ``tmp``, which the store empties at the next start. Nothing
transformed ever lands in the store or the index. Each attempt rebuilds the copies: the transform is deterministic
(same key, same UIDs), so a retry sends the very objects the peer may already have.

Chains that add or split objects (``seg``, ``classic``: N stored instances in, M objects out) settle the job's rows
when the copies are made (``JobQueue.settle``): a derived object gets a row of its own, keyed by its deterministic
SOP Instance UID, so the next attempt finds it with its state and sends only what the peer did not acknowledge; a
stored instance the chain replaced becomes an ``input`` row. An output that is the stored object itself (what
``seg`` and ``classic`` pass through) is sent from the stored file, byte for byte, not from a rewritten copy.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pydicom.dataset import Dataset

from ..config.model import Config
from ..config.transforms import reads_bundle
from ..transforms.base import Made, apply_chain_mapped, derives
from ..transforms.files import read_objects, write_objects
from ..transforms.registry import build_chain
from .queue import INPUT, QUEUED, SENDING, ItemRow, JobQueue, JobRow, NewItem

log = logging.getLogger("rtstation.sender")


def outgoing_dir(data_dir: Path, job_id: int) -> Path:
    return Path(data_dir) / "tmp" / "outgoing" / f"job-{job_id}"


def prepare(config: Config, queue: JobQueue, job: JobRow) -> dict[int, str]:
    """Item seq → the file to send, for each row of ``job`` still to send. TransformError when a transform of the
    chain refuses the objects (the chain is applied whole, in memory, before anything is written or settled:
    never half a bundle, never a partial set without the reason)."""
    chain = build_chain(job.transform, config)
    folder = outgoing_dir(config.data_dir, job.id)
    discard(folder)
    rows = queue.items(job.id)
    # a bundle-wide chain (overlay, seg) needs every stored instance of the job, delivered or not; the others only
    # what is still to send (``input``: an Enhanced image whose classic frames are made again)
    wanted = None if reads_bundle(job.transform) else (QUEUED, SENDING, INPUT)
    inputs = [r for r in rows if not r.derived and (wanted is None or r.state in wanted)]
    objects = read_objects(r.path for r in inputs)
    made = apply_chain_mapped(chain, objects)
    standing, new = _match(made, inputs, objects)
    if derives(chain):
        written = write_objects(new, folder / "derived", fsync=False)  # throw-away copies: nothing to make durable
        replaced = [r.seq for r in inputs if r.seq not in standing]
        seq_of = queue.settle(job.id, replaced, [_new_item(ds, path) for ds, path in zip(new, written)])
        derived_paths = {seq_of[str(ds.SOPInstanceUID)]: str(path) for ds, path in zip(new, written)}
        kinds = sorted({str(ds.get("Modality", "") or "?") for ds in new})
        log.info("job %d: %s made %d derived objects (%s)%s", job.id, job.transform, len(new), ", ".join(kinds),
                 f"; {len(replaced)} stored instances replaced by them" if replaced else "")
    else:
        derived_paths = {}
    todo = {r.seq for r in queue.items(job.id, [QUEUED, SENDING])}
    out = {seq: path for seq, path in derived_paths.items() if seq in todo}
    changed = [(seq, ds) for seq, (ds, same) in standing.items() if seq in todo and not same]
    paths = write_objects([ds for _, ds in changed], folder, fsync=False)
    out.update({seq: str(path) for (seq, _), path in zip(changed, paths)})
    stored = {r.seq: r.path for r in inputs}
    out.update({seq: stored[seq] for seq, (_, same) in standing.items() if seq in todo and same})
    # the UIDs each stored instance goes out under (anonymize renames them): storage commitment asks about those
    queue.record_sent(job.id, {seq: (str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")))
                               for seq, (ds, _) in standing.items() if seq in todo})
    return out


def _match(made: list[Made], inputs: list[ItemRow], objects: list[Dataset]
           ) -> tuple[dict[int, tuple[Dataset, bool]], list[Dataset]]:
    """Outputs standing for a stored row (seq → dataset, and whether it is that stored object itself), and the new
    ones (derived; a second output for one row is new too)."""
    standing: dict[int, tuple[Dataset, bool]] = {}
    new: list[Dataset] = []
    for m in made:
        if m.source is None or inputs[m.source].seq in standing:
            new.append(m.dataset)
        else:
            standing[inputs[m.source].seq] = (m.dataset, m.dataset is objects[m.source])
    return standing, new


def _new_item(ds: Dataset, path: Path) -> NewItem:
    return NewItem(str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(ds.get("Modality", "") or ""), str(path),
                   path.stat().st_size, str(ds.file_meta.TransferSyntaxUID))


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
