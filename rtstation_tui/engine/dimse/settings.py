"""Process-wide pynetdicom settings, and the switch between our fast paths and pynetdicom's stock loops.

Why here: ``pynetdicom._config`` is a private module; every setting the receiver and the sender depend on is set in
this one place (and listed in ``manifest.py``), so nothing outside ``engine/dimse/`` imports it.

Why a switch: the fast paths (``acceptor.py``, ``requestor.py``, the hand-parsed C-STORE in ``cstore_wire.py``, the
spool guard in ``spool.py``) replace private pynetdicom 3.0.4 internals. When pynetdicom is upgraded and one of them
no longer fits, ``[network] fast_paths = false`` (or ``RTSTATION_STOCK_PYNETDICOM=1``, which wins over the file)
runs pynetdicom's own loops and temp files, slower but tested (``tests/net/test_stock_pynetdicom.py``). What stays
in both modes because it is a correctness fix, not a speed-up: TCP_NODELAY, chunked receive and send, the TLS
handshake in the connection's thread (``tls.py``) and the logged association reject (``association.reject``).
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
