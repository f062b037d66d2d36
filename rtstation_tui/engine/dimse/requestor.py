"""The association loop of our own outgoing associations (the sender), without pynetdicom's response-stealing race.

Kept apart from ``acceptor`` (the receive side) but pinned the same way: every internal touched here is in
``manifest.py`` and ``tests/unit/test_dimse_manifest.py`` fails when one changes.
"""

from __future__ import annotations

import time
from types import MethodType
from typing import Any

import pynetdicom

from .association import association_ended, nodelay
from .manifest import PYNETDICOM_VERSION

REQUESTOR_WAIT = 0.01  # s: how often an outgoing association's loop looks for aborts and timeouts
DUL_SEND_DELAY = 0.00005  # s: the DUL loop's idle sleep on our outgoing associations (pynetdicom: 1 ms)


def prepare_requestor(assoc: Any, fast_paths: bool) -> None:
    """``EVT_CONN_OPEN`` of an outgoing association: TCP_NODELAY always; with fast paths also our steady loop and a
    short DUL sleep.

    Why the sleep: the DUL thread sleeps ``_run_loop_delay`` whenever a loop found nothing (1 ms by default) and
    each C-STORE waits for it twice. Our associations live only while they send, so a short sleep costs little CPU
    and most of the time. Stock mode keeps pynetdicom's loop and delay untouched."""
    nodelay(assoc)
    # pynetdicom's own loop can steal C-STORE responses under load (30 s stalls); another version: stock as a whole
    if fast_paths and steady_requestor(assoc):
        assoc.dul._run_loop_delay = DUL_SEND_DELAY


def steady_requestor(assoc: Any) -> bool:
    """For our own outgoing associations (the sender): an association loop that never takes DIMSE messages.

    Why: pynetdicom's loop runs beside ``send_c_store()`` and pauses through a flag handshake with a window
    between ``_reactor_checkpoint.wait()`` and ``_is_paused = False``; under load it wins the race, takes the
    C-STORE response off the queue, logs "Received unexpected C-STORE service message" and the sender waits out
    the DIMSE timeout (30 s per hit in ``make bench`` at load 3; pynetdicom issues #435, #842, #875). A storage
    SCU's peer sends it nothing but responses, which belong to the waiting ``send_*()`` call, so this loop only
    watches for release requests, aborts, the DUL's end and the network timeout. Call from ``EVT_CONN_OPEN``."""
    if pynetdicom.__version__ != PYNETDICOM_VERSION or not assoc.is_requestor:
        return False
    assoc._run_reactor = MethodType(_requestor_reactor, assoc)
    return True


def _requestor_reactor(a: Any) -> None:
    """``Association._run_reactor`` for requestors, minus serving DIMSE messages; always "paused" for send_*()."""
    a._is_paused = True
    while not a._kill:
        a._reactor_checkpoint.wait()
        if association_ended(a):
            return
        time.sleep(REQUESTOR_WAIT)
