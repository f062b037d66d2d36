"""Association-level steps we perform ourselves on pynetdicom associations, in both modes or for both loops.

Why a module of its own: the acceptor loop (``acceptor.py``) and the requestor loop (``requestor.py``) end an
association the same way (``association_ended``), and the receiver's logged reject (``reject``) and TCP_NODELAY
(``nodelay``) run whatever the mode. Each step copies a sequence of pynetdicom 3.0.4 that ``manifest.py`` pins.
"""

from __future__ import annotations

import socket
from typing import Any

from pynetdicom import evt
from pynetdicom.association import LOGGER as ASSOC_LOG


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
