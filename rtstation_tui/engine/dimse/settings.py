"""Process-wide pynetdicom settings, and the switch between our fast paths and pynetdicom's stock loops.

Why here: ``pynetdicom._config`` is a private module; every setting the receiver and the sender depend on is set in
this one place (and listed in ``manifest.py``), so nothing outside ``engine/dimse/`` imports it.

Why a switch: the fast paths (``acceptor.py``, ``requestor.py``, the hand-parsed C-STORE in ``cstore_wire.py``, the
spool guard in ``spool.py``) replace private pynetdicom 3.0.4 internals. When pynetdicom is upgraded and one of them
no longer fits, ``[network] fast_paths = false`` (or ``RTSTATION_STOCK_PYNETDICOM=1``, which wins over the file)
runs pynetdicom's own loops and temp files, slower but tested (``tests/net/test_stock_pynetdicom.py``). What stays
in both modes because it is a correctness fix, not a speed-up: TCP_NODELAY, chunked receive and send, the TLS
handshake in the connection's thread, the connection caps (``tls.py``), the PDU rules (``pduguard.py``), the logged
association reject (``association.reject``), the answer to unserved requests (``association.answer_unserved``)
and the refusal of non-storage contexts at negotiation (``_refuse_known_services``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pynetdicom
from pynetdicom import _config

from . import spool
from .manifest import PYNETDICOM_VERSION

log = logging.getLogger("rtstation.dimse")


def apply_receive_settings(tmp_dir: Path, fast_paths: bool) -> None:
    """What the receiver needs of pynetdicom, process-wide. ``fast_paths`` False: pynetdicom's own temp files."""
    _config.STORE_RECV_CHUNKED_DATASET = True  # stream each dataset to a temp file, never into memory
    _config.UNRESTRICTED_STORAGE_SERVICE = True  # private and unknown SOP classes are storage too
    _config.LOG_HANDLER_LEVEL = "none"  # its per-PDU debug handlers cost ~3% and flood the log
    _refuse_known_services()
    tempfile.tempdir = str(tmp_dir)  # chunked temp files on the store's filesystem: os.replace, not copy
    if fast_paths and pynetdicom.__version__ == PYNETDICOM_VERSION:  # else acceptor.accelerate warns
        spool.install()  # a disk that fills mid-transfer gives 0xA700, not a silently vanished association
    else:
        spool.uninstall()
        log.warning("stock pynetdicom loops ([network] fast_paths = false or RTSTATION_STOCK_PYNETDICOM=1): "
                    "slower receive and send; a disk that fills during a transfer ends that association instead "
                    "of answering 0xA700")


def apply_send_settings() -> None:
    """What the sender needs of pynetdicom, process-wide (the same in both modes)."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # send_c_store(path) streams the stored bytes, never decodes them
    _config.LOG_HANDLER_LEVEL = "none"  # its per-PDU debug handlers cost time on every message; we log ourselves


def _refuse_known_services() -> None:
    """Make every non-storage SOP class pydicom knows known to pynetdicom's negotiation too, so that it is refused
    (abstract syntax not supported) instead of accepted as storage.

    Why: with ``UNRESTRICTED_STORAGE_SERVICE`` pynetdicom accepts as storage every proposed SOP class whose pydicom
    keyword is not a name in ``pynetdicom.sop_class``; for Modality Worklist pydicom says
    ``ModalityWorklistInformationModelFind`` and pynetdicom ``ModalityWorklistInformationFind``, so a worklist
    C-FIND context was accepted and every query then failed (same for General Purpose Worklist, Storage Commitment
    Pull, Colour Palette Q/R, UPS trials...). Retired and trial *storage* classes stay storage. The station
    answers only the Query/Retrieve models the receiver adds ([QR]: Patient and Study Root), accepted through the
    normal negotiation; every other query service is refused at negotiation, the honest answer."""
    from pydicom.uid import UID, UID_dictionary
    from pynetdicom import sop_class

    for uid, (name, kind, *_rest) in UID_dictionary.items():
        keyword = UID(uid).keyword
        if kind != "SOP Class" or not keyword or hasattr(sop_class, keyword):
            continue
        if "Storage" in name and "Storage Commitment" not in name:
            continue
        setattr(sop_class, keyword, sop_class.SOPClass(uid))
