"""``[receiver] split_enhanced = true``: classic images stored beside every Enhanced MR/CT/PET object received.

Why a thread of its own: a 300-frame object takes a second or two to split, and the sender must hear its C-STORE
success as soon as the original is safe, never after the derivation. The original is always kept as received;
what cannot be split (no functional groups, a bad file) is logged with the reason and nothing else happens.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from pathlib import Path

import pydicom

from ..derive.enhanced import CLASSIC_OF, EnhancedError, split_enhanced
from .ingest import FAILED, QUARANTINED, DerivedOrigin, Destination, ingest

log = logging.getLogger("rtstation.derive")


def splits(sop_class: str) -> bool:
    return sop_class in CLASSIC_OF


class EnhancedSplitter:
    """A queue of stored Enhanced objects and one worker that ingests their classic images."""

    def __init__(self, into: Destination) -> None:
        self._into = into
        self._queue: queue.Queue[tuple[Path, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, path: Path, calling_ae: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="split-enhanced", daemon=True)
                self._thread.start()
        self._queue.put((path, calling_ae))

    def stop(self, timeout: float = 60.0) -> None:
        """Finish what is queued, then end the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self.split(*job)
            except Exception:  # noqa: BLE001 - the worker must outlive one bad object; the original is stored
                log.exception("split_enhanced of %s failed; the original is kept", job[0])

    def split(self, path: Path, calling_ae: str) -> int:
        """Ingest the classic images of the stored file ``path``; the number stored."""
        try:
            images = split_enhanced(pydicom.dcmread(path))
        except EnhancedError as exc:
            log.warning("split_enhanced: %s not split: %s", path.name, exc)
            return 0
        source_uid = str(images[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        origin = DerivedOrigin(calling_ae=calling_ae, transform="split_enhanced", inputs=(source_uid,))
        stored = 0
        for image in images:
            tmp = self._into.store.tmp_dir / f"derive-{uuid.uuid4().hex}.dcm"
            image.save_as(tmp, enforce_file_format=True)
            result = ingest(tmp, origin, self._into)
            if result.outcome in (FAILED, QUARANTINED):
                log.error("split_enhanced: frame image %s of %s not stored: %s", image.InstanceNumber, source_uid,
                          result.reason)
            else:
                stored += 1
        log.info("split_enhanced: %d classic images stored from %s", stored, source_uid)
        return stored
