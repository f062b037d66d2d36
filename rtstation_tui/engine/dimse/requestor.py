"""The association loop of our own outgoing associations (the sender), without pynetdicom's response-stealing race.

Kept apart from ``acceptor`` (the receive side) but pinned the same way: every internal touched here is in
``manifest.py`` and ``tests/unit/test_dimse_manifest.py`` fails when one changes.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from types import MethodType
from typing import Any

import pynetdicom
from pynetdicom.pdu import A_ABORT_RQ

from .association import association_ended, nodelay
from .manifest import PYNETDICOM_VERSION

REQUESTOR_WAIT = 0.01  # s: how often an outgoing association's loop looks for aborts and timeouts
DUL_SEND_DELAY = 0.00005  # s: the DUL loop's idle sleep on our outgoing associations (pynetdicom: 1 ms)


_ABORT_SOURCES = {0: "the peer's application (service-user)", 1: "reserved source 1",
                  2: "the peer's DICOM stack (service-provider)"}
_ABORT_REASONS = {0: "no reason given", 1: "unrecognised PDU", 2: "unexpected PDU", 4: "unrecognised PDU parameter",
                  5: "unexpected PDU parameter", 6: "invalid PDU parameter value"}


@dataclass(frozen=True)
class PeerAbort:
    """An A-ABORT the peer sent us (PS3.8 9.3.8): who aborted and why, in words."""

    source: int
    reason: int

    def describe(self) -> str:
        who = _ABORT_SOURCES.get(self.source, f"source {self.source}")
        why = _ABORT_REASONS.get(self.reason, f"reason {self.reason}") if self.source == 2 else "no reason given"
        return f"the peer aborted the association (A-ABORT from {who}: {why})"


_PEER_ABORTS: weakref.WeakKeyDictionary[Any, PeerAbort] = weakref.WeakKeyDictionary()


def note_peer_abort(event: Any) -> None:
    """``EVT_PDU_RECV`` handler of outgoing associations: remember an A-ABORT from the peer, so the sender reports
    an abort (with source and reason) instead of a missing response or a timeout."""
    pdu = event.pdu
    if isinstance(pdu, A_ABORT_RQ):
        _PEER_ABORTS[event.assoc] = PeerAbort(int(pdu.source), int(pdu.reason_diagnostic))


def peer_abort(assoc: Any) -> PeerAbort | None:
    """The A-ABORT the peer sent on ``assoc``, if it sent one."""
    return _PEER_ABORTS.get(assoc)


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
