"""Association-level steps we perform ourselves on pynetdicom associations, in both modes or for both loops.

Why a module of its own: the acceptor loop (``acceptor.py``) and the requestor loop (``requestor.py``) end an
association the same way (``association_ended``), and the receiver's logged reject (``reject``), TCP_NODELAY
(``nodelay``) and the answer to requests we do not serve (``answer_unserved``) run whatever the mode. Each step
copies a sequence of pynetdicom 3.0.4 that ``manifest.py`` pins.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from pynetdicom import evt
from pynetdicom.association import LOGGER as ASSOC_LOG

from ..config.acl import normal_ip

log = logging.getLogger("rtstation.receiver")


def nodelay(assoc: Any) -> None:
    """TCP_NODELAY on the association's socket: pynetdicom leaves Nagle on, and each C-STORE then stalls ~40 ms
    on the peer's delayed ACK. Call from ``EVT_CONN_OPEN``."""
    sock = assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reject(assoc: Any, result: int, source: int, diagnostic: int) -> None:
    """Refuse an association from an ``EVT_REQUESTED`` handler, as pynetdicom's ``ACSE.negotiate_as_acceptor``
    refuses one itself: A-ASSOCIATE-RJ, ``EVT_REJECTED``, then the association ends.

    Why by hand: pynetdicom's own checks (``require_calling_aet``) match AE titles only and cannot log who was
    refused from where and why; ours (calling AE with host/CIDR, called AE, our association limit) run in
    ``EVT_REQUESTED``, which has no way to say "reject" but doing it."""
    assoc.acse.send_reject(result, source, diagnostic)
    assoc.is_rejected = True
    evt.trigger(assoc, evt.EVT_REJECTED, {})
    assoc.kill()


def association_ended(a: Any) -> bool:
    """One look at whether the association is over (release asked, abort, connection gone, network timeout); if so
    it is ended the way pynetdicom's ``_run_reactor`` ends it and True is returned. Shared by both loops we run
    (``acceptor.assoc_reactor`` and ``requestor._requestor_reactor``)."""
    if a.is_established and a.acse.is_release_requested():
        # EVT_RELEASED before the A-RELEASE-RP is queued (pynetdicom: after): the DUL sends it at once now, and the
        # peer's closing (EVT_CONN_CLOSE) must not overtake EVT_RELEASED
        a.is_released, a.is_established = True, False
        evt.trigger(a, evt.EVT_RELEASED, {})
        a.acse.send_release(is_response=True)
        ASSOC_LOG.info("Association Released")
        a.kill()
        return True
    if a.acse.is_aborted():
        ASSOC_LOG.info("Association Aborted" + (" (A-P-ABORT)" if a.acse.is_aborted("a-p-abort") else ""))
        a.dul.receive_pdu(wait=False)
        a.is_aborted, a.is_established = True, False
        evt.trigger(a, evt.EVT_ABORTED, {})
        a.kill()
        return True
    if not a.dul.is_alive():
        a.kill()
        return True
    if a.dul.idle_timer_expired():
        ASSOC_LOG.error("Network timeout reached")
        if a.network_timeout_response == "A-RELEASE":
            a._is_paused = True
            a._reactor_checkpoint.wait()
            a.release()
            a._is_paused = False
        else:
            a.abort()
        a.kill()
        return True
    return False


# A-DIMSE request the station does not serve on its context: C-FIND, C-GET, C-MOVE, N-*, C-ECHO outside Verification,
# C-STORE on Verification. Status 0x0211 "Unrecognized operation" (PS3.7 Annex C): not agreed for this context.
STATUS_UNRECOGNISED_OPERATION = 0x0211
VERIFICATION = "1.2.840.10008.1.1"


QR_REQUESTS = frozenset({"C_FIND", "C_GET", "C_MOVE", "C_CANCEL"})
# requests the receiver's other services handle on their own contexts: [QR], and [ACTIONS]' Storage Commitment
# reports (N-EVENT-REPORT on the Push Model context)
SERVICE_REQUESTS = QR_REQUESTS | {"N_EVENT_REPORT"}


def answer_unserved(assoc: Any, services: frozenset[str] = frozenset()) -> None:
    """Wrap the association's ``_serve_request`` (both modes; call from ``EVT_CONN_OPEN`` before the fast loops are
    installed, which then call this in turn) so that a request we do not serve is answered at once with
    0x0211 instead of reaching pynetdicom's storage SCP, which raises ValueError/AttributeError and aborts after the
    peer has waited for its DIMSE timeout (~31 s for a C-FIND or N-ACTION on a storage context). ``services``: the
    abstract syntaxes of the receiver's other services ([QR]'s C-FIND/C-GET/C-MOVE models), whose C-FIND, C-GET,
    C-MOVE and C-CANCEL requests go to their handlers."""
    stock = assoc._serve_request

    def serve(msg: Any, context_id: int) -> None:
        cx = next((c for c in assoc.accepted_contexts if c.context_id == context_id), None)
        kind = type(msg).__name__
        served = cx is not None and ((kind == "C_ECHO" and cx.abstract_syntax == VERIFICATION) or
                                     (kind == "C_STORE" and cx.abstract_syntax != VERIFICATION) or
                                     (kind in SERVICE_REQUESTS and cx.abstract_syntax in services))
        if served or cx is None or not msg.is_valid_request or assoc._sent_release:
            stock(msg, context_id)  # pynetdicom's own answer (abort on an unknown context, ignore, serve)
            return
        _refuse_request(assoc, msg, context_id, str(cx.abstract_syntax))

    assoc._serve_request = serve


def _refuse_request(assoc: Any, msg: Any, context_id: int, abstract_syntax: str) -> None:
    from pydicom.uid import UID

    name = type(msg).__name__.replace("_", "-")
    rsp = type(msg)()
    rsp.MessageIDBeingRespondedTo = msg.MessageID
    rsp.Status = STATUS_UNRECOGNISED_OPERATION
    sop_class = getattr(msg, "AffectedSOPClassUID", None) or getattr(msg, "RequestedSOPClassUID", None)
    instance = getattr(msg, "AffectedSOPInstanceUID", None) or getattr(msg, "RequestedSOPInstanceUID", None)
    if sop_class:
        rsp.AffectedSOPClassUID = sop_class
    if instance and hasattr(rsp, "AffectedSOPInstanceUID"):
        rsp.AffectedSOPInstanceUID = instance
    for attr in ("ActionTypeID", "EventTypeID"):
        if getattr(msg, attr, None) is not None:
            setattr(rsp, attr, getattr(msg, attr))
    context = UID(abstract_syntax).name or abstract_syntax
    log.warning("answered %s from %s@%s on the %s context with 0x0211 (unrecognised operation): this station "
                "stores objects and answers C-ECHO only", name, str(assoc.requestor.ae_title).strip(),
                normal_ip(str(assoc.requestor.address)), context)
    assoc.dimse.send_msg(rsp, context_id)
