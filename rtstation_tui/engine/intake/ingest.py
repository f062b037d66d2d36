"""One way in: every object the station keeps goes through ``ingest(source, origin, into)``.

Network receive (``receiver``), ``rtstation import`` and the watched folder (``importer``) all run the same steps
here, as Orthanc funnels every source through one ``DicomInstanceToStore``:

    header (``quickheader`` first, pydicom only for what it cannot read; raw datasets for file origins)
    → element-length walk (``verify_structure``) → place in the store (rename or copy) → value problems logged
    → audit record (``stored``/``duplicate``/``conflict``) → index record handed to the writer.

Broken input is quarantined with its reason (``quarantine``, also used for a broken ZIP archive). The result is an
``Ingested`` value; each caller maps it to its own reply (C-STORE status, import report counts, the watched
folder's ``after_import``). Nothing here knows about DIMSE statuses, reports or folders.

Why the origin is data: what differs between sources is *who brought the object* (audit fields, log wording, the
quarantine's reason file) and *whose file it is* (the station's own temp file is renamed into the store and moved
to quarantine; a user's file is copied and left alone). Each origin is a frozen dataclass that answers exactly
those questions, so ``ingest`` has no ``if source == ...``.

Adding an origin (planned: C-MOVE/C-GET retrieve, derived series) is a frozen dataclass subclass of ``Origin``
with its own fields, e.g.::

    @dataclass(frozen=True, kw_only=True)
    class RetrieveOrigin(Origin):
        node: str                      # the [nodes.*] entry the objects were retrieved from
        source: str = "retrieve"       # the index's and audit's ``source``
        owned: ClassVar[bool] = True   # its spool files are ours: renamed into the store, moved to quarantine
        log: ClassVar[logging.Logger] = logging.getLogger("rtstation.retrieve")

        def audit_fields(self) -> dict[str, Any]:
            return {"node": self.node}

and likewise ``DerivedOrigin(transform=..., inputs=...)``. Override ``who``/``who_conflict`` (log wording) and the
``quarantine_*`` methods where the defaults do not fit. An origin is made once per association or run; what a
sender claims per object (a C-STORE's SOP Instance UID) is passed to ``ingest`` as ``Announced``. The caller calls
``ingest`` and maps ``Ingested`` to its reply; nothing in ``ingest`` changes.

Hot path: per network C-STORE this costs what the old handler did plus one named tuple and the result (~1-2 µs of
a ~160 µs handler): no extra parse, no extra file read on success, ``quickheader`` first; indexing stays in the
indexer's thread, off the response path.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, NamedTuple, cast

from ..audit import audit, audit_object
from ..dicom.header import BadDicom, InstanceInfo, dataset_offset, read_header, value_problems
from ..dicom.lengthwalk import verify_structure, verify_structure_fd
from ..dicom.quickheader import scan_fd
from ..store.files import Placed, Store
from ..store.index import IndexRecord

MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR

Outcome = Literal["stored", "duplicate", "conflict", "quarantined", "skipped", "failed"]
STORED: Outcome = "stored"
DUPLICATE: Outcome = "duplicate"
CONFLICT: Outcome = "conflict"
QUARANTINED: Outcome = "quarantined"
SKIPPED: Outcome = "skipped"
FAILED: Outcome = "failed"


# -- origins ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Origin:
    """Who brought an object. ``session_id``: the index session (association, import run) it belongs to."""

    calling_ae: str
    session_id: int | None = None
    source: str = ""  # the index's and audit's ``source`` column
    owned: ClassVar[bool] = False  # the file is our own temp file: renamed into the store, moved to quarantine
    skips_media_index: ClassVar[bool] = True  # a DICOMDIR is an index of files, not an object to store
    log: ClassVar[logging.Logger] = logging.getLogger("rtstation.intake")
    log_prefix: ClassVar[str] = ""

    def audit_fields(self) -> dict[str, Any]:
        """Fields of the ``stored``/``duplicate``/``conflict`` records after ``source`` and ``calling_ae``."""
        return {}

    def who(self) -> str:
        """How the ``stored ... despite`` log lines name where the object came from."""
        return f"from {self.calling_ae}"

    def who_conflict(self) -> str:
        """The same for the ``conflict`` line."""
        return self.who()

    @property
    def move_bad(self) -> bool:
        """Whether a broken file is moved into quarantine (True) or copied there, leaving the source alone."""
        return self.owned

    def quarantine_name(self, announced: Announced) -> str | None:
        """A better name for the quarantined copy than the file's own (None: keep it)."""
        return None

    def quarantine_details(self, announced: Announced) -> dict[str, str]:
        """Lines of the reason file beside the quarantined copy."""
        return {"source": self.source}

    def quarantine_record(self, src: Path, dest: Path, reason: str, announced: Announced) -> dict[str, Any]:
        """Fields of the ``quarantined`` audit record."""
        return {"file": str(src), "reason": reason, "source": self.source}


@dataclass(frozen=True, kw_only=True)
class NetworkOrigin(Origin):
    """An accepted association (one value per association, not per C-STORE); the file is the spooled temp file
    pynetdicom wrote, named after nothing: the quarantine names it after the announced SOP Instance UID."""

    peer: str  # "address:port"
    assoc_id: int
    source: str = "network"
    owned: ClassVar[bool] = True
    skips_media_index: ClassVar[bool] = False  # stored as sent, as before
    log: ClassVar[logging.Logger] = logging.getLogger("rtstation.receiver")

    def audit_fields(self) -> dict[str, Any]:
        return {"peer": self.peer, "assoc_id": self.assoc_id}

    def quarantine_name(self, announced: Announced) -> str | None:
        return f"{announced.sop_uid or 'unknown'}.dcm"

    def quarantine_details(self, announced: Announced) -> dict[str, str]:
        return {"calling_ae": self.calling_ae, "peer": self.peer, "sop_instance_uid": announced.sop_uid or "unknown",
                "sop_class_uid": announced.sop_class}

    def quarantine_record(self, src: Path, dest: Path, reason: str, announced: Announced) -> dict[str, Any]:
        return {"sop_uid": announced.sop_uid or "unknown", "file": dest.name, "reason": reason,
                "source": self.source, "calling_ae": self.calling_ae, "peer": self.peer, "assoc_id": self.assoc_id}


@dataclass(frozen=True, kw_only=True)
class ImportOrigin(Origin):
    """A file given to ``rtstation import`` (or the console): copied into the store, never altered.

    ``path`` is the file as read (for a ZIP member, its extracted temp file); ``consume_bad`` is set for such temp
    files, so quarantine takes them instead of a copy."""

    path: Path
    source: str = "import"
    consume_bad: bool = False
    log: ClassVar[logging.Logger] = logging.getLogger("rtstation.import")
    log_prefix: ClassVar[str] = "import: "

    def audit_fields(self) -> dict[str, Any]:
        return {"file": str(self.path)}

    def who(self) -> str:
        return self.path.name

    def who_conflict(self) -> str:
        return f"({self.path.name})"

    @property
    def move_bad(self) -> bool:
        return self.consume_bad


@dataclass(frozen=True, kw_only=True)
class FolderOrigin(ImportOrigin):
    """A file that settled in the watched import folder: imported like ``rtstation import``, but the folder is
    consumed, so a broken file is moved into quarantine (``after_import`` then deals with the good ones)."""

    source: str = "import-folder"
    consume_bad: bool = True


@dataclass(frozen=True, kw_only=True)
class DerivedOrigin(Origin):
    """An object the station made from objects it holds (``engine/derive``: classic images split from an Enhanced
    one). The file is the station's own temp file, so it is renamed into the store; ``inputs`` are the SOP Instance
    UIDs it was made from, so the audit log says where every derived object came from."""

    transform: str  # e.g. "split_enhanced"
    inputs: tuple[str, ...]
    source: str = "derived"
    owned: ClassVar[bool] = True
    log: ClassVar[logging.Logger] = logging.getLogger("rtstation.derive")
    log_prefix: ClassVar[str] = "derive: "

    def audit_fields(self) -> dict[str, Any]:
        return {"transform": self.transform, "inputs": list(self.inputs)}

    def who(self) -> str:
        return f"({self.transform} of {', '.join(self.inputs)})"


@dataclass(frozen=True, kw_only=True)
class RetrieveOrigin(Origin):
    """An object pulled from a node by ``rtstation retrieve`` (C-MOVE sub-operation or C-GET): ``calling_ae`` is
    the node's AE title (the source the console and the rules see), ``node`` its ``[[nodes]]`` name or spec. The
    file is the station's own temp file: renamed into the store, moved to quarantine."""

    node: str
    method: str  # "C-MOVE" or "C-GET"
    source: str = "retrieve"
    owned: ClassVar[bool] = True
    log: ClassVar[logging.Logger] = logging.getLogger("rtstation.retrieve")
    log_prefix: ClassVar[str] = "retrieve: "

    def audit_fields(self) -> dict[str, Any]:
        return {"node": self.node, "method": self.method}

    def who(self) -> str:
        return f"retrieved from {self.node} ({self.method})"

    def quarantine_name(self, announced: Announced) -> str | None:
        return f"{announced.sop_uid or 'unknown'}.dcm"


# -- what the sender claims -----------------------------------------------------------------------------------
class Announced(NamedTuple):
    """What the sender said the object is before it was read: a C-STORE's Affected SOP Instance and Class UID
    (network receive, and the sub-operations of a later retrieve). A named tuple, not a dataclass: one is made per
    C-STORE on the receive path, where it costs a third as much."""

    sop_uid: str = ""
    sop_class: str = ""


NOTHING_ANNOUNCED = Announced()


# -- the result ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ingested:
    """What became of one file. ``outcome``: stored / duplicate / conflict (both versions kept; ``placed.relpath``
    is where, relative to the store root, ``info`` what) / quarantined (``reason`` says why, ``path`` is the
    quarantined copy) / skipped (``reason``) / failed (``error`` and ``stage``: "read", "place" or "quarantine";
    nothing was stored)."""

    outcome: Outcome
    info: InstanceInfo | None = None
    placed: Placed | None = None
    path: Path | None = None
    reason: str = ""
    stage: str = ""
    error: OSError | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Destination:
    """Where ingested objects go: the store, and the index writer (the Station's indexer or a batch writer)."""

    store: Store
    write: Callable[[IndexRecord], None]


# -- the one path ----------------------------------------------------------------------------------------------
def check_file(path: Path) -> InstanceInfo:
    """Header and structure of a file; BadDicom says why it cannot be stored. A file without preamble is read as
    a raw dataset (old exports); the station's spool files always have one, so the network never pays for this."""
    return inspect_file(path)[0]


def inspect_file(path: Path) -> tuple[InstanceInfo, int]:
    """``check_file`` and the file's size, from one open of the file: a plain image's header, dataset offset and
    structure come from one read of its head (``quickheader.scan_fd``), the structure walk goes on from where that
    read stopped. Anything else takes pydicom's full read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        scan = scan_fd(fd)
        if scan is not None:
            verify_structure_fd(fd, scan.offset, scan.info.transfer_syntax, scan.checked_to, scan.head)
            return scan.info, os.fstat(fd).st_size
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    return _check_full(path), size


def _check_full(path: Path) -> InstanceInfo:
    try:
        info = read_header(path)
    except BadDicom:
        if has_preamble(path):
            raise
        try:
            info = read_header(path, force=True)
        except BadDicom as exc:
            raise BadDicom(f"not DICOM: no 'DICM' marker at byte 128, and not a raw dataset either ({exc})") from None
    verify_structure(path, dataset_offset(path), info.transfer_syntax)
    return info


def has_preamble(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def ingest(source: Path, origin: Origin, into: Destination, announced: Announced = NOTHING_ANNOUNCED) -> Ingested:
    """Check, store, audit and index one file from ``origin``. Never raises for bad input or I/O errors: the
    outcome says what happened, and the caller answers its peer or user."""
    try:
        synced = into.store.begin_sync(source) if origin.owned else None  # runs while the file is checked
        info, size = inspect_file(source)
    except BadDicom as exc:
        return quarantine(source, str(exc), origin, into.store, announced)
    except OSError as exc:
        return Ingested(FAILED, stage="read", reason=str(exc.strerror or exc), error=exc)
    if origin.skips_media_index and info.sop_class == MEDIA_DIRECTORY:
        return Ingested(SKIPPED, info, reason="DICOMDIR: a media index, not an object")
    try:
        placed = into.store.place(source, info, size, synced) if origin.owned else \
            into.store.import_file(source, info)
    except OSError as exc:
        return Ingested(FAILED, info, stage="place", reason=str(exc.strerror or exc), error=exc)
    _log_placed(info, placed, origin, announced)
    audit_object(info, placed, source=origin.source, calling_ae=origin.calling_ae, **origin.audit_fields())
    into.write(IndexRecord(info, placed, origin.source, origin.calling_ae, time.time(), origin.session_id))
    return Ingested(cast(Outcome, placed.status), info, placed)  # no absolute path: a Path join costs more here


def _log_placed(info: InstanceInfo, placed: Placed, origin: Origin, announced: Announced) -> None:
    """Conflicts and odd values are stored (never lost), but the operator must see them in the log. Duplicates are
    the caller's to sum up (the receiver: one line per association; the audit log keeps each)."""
    log = origin.log
    pre = origin.log_prefix
    if placed.status == CONFLICT:
        log.warning("%sconflict: %s %s %s differs from the stored version; both kept (%s)", pre, info.modality,
                    info.sop_uid, origin.who_conflict(), placed.relpath)
    problems = value_problems(info)
    if announced.sop_uid and announced.sop_uid != info.sop_uid:
        problems.append(f"the C-STORE announced SOP Instance UID {announced.sop_uid!r}, the dataset holds "
                        f"{info.sop_uid!r}")
    if problems:
        log.warning("%sstored %s %s as %s despite: %s", pre, info.modality, origin.who(), placed.relpath,
                    "; ".join(problems))


def quarantine(source: Path, reason: str, origin: Origin, store: Store,
               announced: Announced = NOTHING_ANNOUNCED) -> Ingested:
    """Keep a file that cannot be stored, with its reason beside it, and audit it. Never deletes anything."""
    try:
        dest = store.quarantine(source, reason, move=origin.move_bad, name=origin.quarantine_name(announced),
                                details=origin.quarantine_details(announced))
    except OSError as exc:
        return Ingested(FAILED, stage="quarantine", reason=reason, error=exc)
    audit("quarantined", **origin.quarantine_record(source, dest, reason, announced))
    return Ingested(QUARANTINED, path=dest, reason=reason)
