"""The DICOM client side: associations to nodes, C-ECHO, C-STORE of stored files.

Presentation contexts come from the files actually sent: one per (SOP class, stored transfer syntax) so the stored
bytes go out unchanged, plus an uncompressed fallback context per pair (Implicit VR Little Endian, which every SCP
must accept, and Explicit VR Little Endian where the stored syntax is neither), used only when the peer refuses
the first (then the object is re-encoded by ``transcode``, keeping every UID). One object that cannot go fails
alone with its reason; the job goes on. Private and Ion plan SOP
classes are proposed as they are. One association per destination per thread; TCP_NODELAY on every socket.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator

import pydicom
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context

from ..config.nodes import NodeConfig
from ..dimse.connlog import connect_error, done_with, fold_connect_errors, ours
from ..dimse.requestor import note_peer_abort, peer_abort, prepare_requestor
from ..dicom.header import dataset_offset
from ..dimse.settings import apply_send_settings
from .transcode import CannotTranscode, uncompressed_little_endian

log = logging.getLogger("rtstation.sender")

IMPLICIT, EXPLICIT, DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"
UNCOMPRESSED = (EXPLICIT, IMPLICIT)
MAX_CONTEXTS = 128
WARNING_STATUSES = {0x0001, 0xB000, 0xB006, 0xB007}
# Failure statuses worth another try later: out of resources (0xA7xx), processing failure, resource limitation,
# duplicate invocation, cancel. Any other failure (0xA9xx dataset does not match the SOP class, 0xCxxx cannot
# understand, 0x0122 SOP class not supported, 0x0124 not authorised, ...) is final for that instance and node:
# the same bytes would be refused again.
TRANSIENT_STATUSES = frozenset({0x0110, 0x0210, 0x0213, 0xFE00})
VERIFICATION = "1.2.840.10008.1.1"

apply_send_settings()  # chunked send of stored files; pynetdicom's per-PDU debug handlers off

_RJ_REASONS = {
    (1, 1): "no reason given", (1, 2): "application context not supported",
    (1, 3): "calling AE title not recognised (add ours to the peer's allowed list)",
    (1, 7): "called AE title not recognised (wrong AE title for this node?)",
    (2, 1): "no reason given", (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion", (3, 2): "local limit exceeded (too many associations)",
}


class AssociationFailed(Exception):
    """Could not establish an association; the message says why in words an operator can act on. ``permanent``:
    the peer rejected it permanently (A-ASSOCIATE-RJ result 1): retrying on a schedule cannot help until someone
    changes a configuration (``rtstation queue retry`` then tries again)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_transient(status: int) -> bool:
    """Whether a C-STORE failure status may succeed on a later attempt (see TRANSIENT_STATUSES)."""
    return status in TRANSIENT_STATUSES or status & 0xFF00 == 0xA700


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    node: str
    rtt_ms: float | None
    message: str


def _on_conn_open(fast_paths: bool, event: Any) -> None:
    prepare_requestor(event.assoc, fast_paths)  # TCP_NODELAY; with fast paths our steady association loop


def make_ae(node: NodeConfig, station_ae: str) -> AE:
    fold_connect_errors()  # a failed connection: one line of ours with the reason, not pynetdicom's two ERRORs
    ae = AE(ae_title=(node.calling_ae_title or station_ae).strip())
    ae.maximum_pdu_size = 65536
    ae.acse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    return ae


def contexts_for(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    """Presentation contexts for (SOP class, transfer syntax) pairs: each stored syntax as it is, then the
    uncompressed fallbacks while there is room (128 per association); ValueError when the stored syntaxes alone
    need more."""
    ordered = sorted(set(pairs))
    wanted = [(cls, (ts,)) for cls, ts in ordered] + [(cls, fallback_syntaxes(ts)) for cls, ts in ordered]
    contexts: list[Any] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for n, (cls, syntaxes) in enumerate(wanted):
        if not syntaxes or (cls, syntaxes) in seen:
            continue
        if len(contexts) == MAX_CONTEXTS:
            if n < len(ordered):
                raise ValueError(f"{len(ordered)} (SOP class, transfer syntax) pairs need more than "
                                 f"{MAX_CONTEXTS} presentation contexts, the most one association carries")
            log.warning("no room for every uncompressed fallback context: %d pairs", len(ordered))
            break
        seen.add((cls, syntaxes))
        contexts.append(build_context(cls, list(syntaxes)))
    return contexts


def fallback_syntaxes(ts: str) -> tuple[str, ...]:
    """The uncompressed syntaxes proposed beside a stored one, in a context of their own: every SCP must accept
    Implicit VR Little Endian, so an object in any other syntax (Explicit VR Little or Big Endian, compressed)
    can still go, re-encoded; one stored as Implicit VR Little Endian needs nothing else."""
    if ts == IMPLICIT:
        return ()
    return (IMPLICIT,) if ts == EXPLICIT else UNCOMPRESSED


def associate(node: NodeConfig, station_ae: str, contexts: list[Any], ssl_context: Any = None,
              fast_paths: bool = True) -> Any:
    """An established association, or AssociationFailed with the precise reason. ``fast_paths``: ``[network]
    fast_paths`` (False: pynetdicom's own association loop)."""
    ae = make_ae(node, station_ae)
    ae.requested_contexts = contexts
    tls_args = (ssl_context, node.host) if ssl_context is not None else None
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title.strip(), tls_args=tls_args,
                         evt_handlers=[(evt.EVT_CONN_OPEN, partial(_on_conn_open, fast_paths)),
                                       (evt.EVT_REQUESTED, ours), (evt.EVT_PDU_RECV, note_peer_abort)])
    done_with(assoc)
    if assoc.is_established:
        return assoc
    permanent = bool(assoc.is_rejected and assoc.acceptor.primitive.result == 1)
    raise AssociationFailed(describe_failure(assoc, node), permanent=permanent)


def describe_failure(assoc: Any, node: NodeConfig) -> str:
    """Rejected (with the peer's reason), refused at TCP level, timed out, or aborted: each says what to fix."""
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        result, source, diag = rsp.result, rsp.result_source, rsp.diagnostic
        kind = "permanently" if result == 1 else "for now"
        return f"association rejected {kind}: {_RJ_REASONS.get((source, diag), f'reason {source}/{diag}')}"
    pynetdicom_said = connect_error(assoc)  # taken in any case: the reason is this association's alone
    tcp = probe_tcp(node)
    if tcp is not None:
        return tcp
    if pynetdicom_said is not None:  # TCP connects, the connection still failed: TLS (certificate, protocol)
        return f"cannot connect to {node.host}:{node.port}: {pynetdicom_said}"
    aborted = peer_abort(assoc)
    if aborted is not None:
        return f"{aborted.describe()}; it may refuse our AE title or every proposed SOP class"
    if assoc.is_aborted:
        return "the peer aborted the association (it may refuse our AE title or every proposed SOP class)"
    return "TCP connects but no DICOM association was established (not a DICOM port, or TLS expected?)"


def probe_tcp(node: NodeConfig) -> str | None:
    """Why TCP itself fails (refused, timed out, unknown host), or None when it connects."""
    timeout = min(node.timeout_s, 10)
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"connection refused: nothing listening on {node.host}:{node.port}"
    except socket.timeout:
        return f"no answer within {timeout:.0f} s: host down or firewalled"
    except socket.gaierror as exc:
        return f"cannot resolve host {node.host!r}: {exc.strerror}"
    except OSError as exc:
        return str(exc.strerror or exc)


def echo(node: NodeConfig, station_ae: str, ssl_context: Any = None, fast_paths: bool = True) -> EchoResult:
    start = time.perf_counter()
    try:
        assoc = associate(node, station_ae, [build_context(VERIFICATION)], ssl_context, fast_paths)
    except AssociationFailed as exc:
        log.warning("C-ECHO %s (%s): %s", node.name, node.describe(), exc)  # pynetdicom's own lines are folded
        return EchoResult(False, node.name, None, str(exc))
    try:
        status = assoc.send_c_echo()
        rtt = (time.perf_counter() - start) * 1000
        if status is not None and getattr(status, "Status", None) == 0:
            return EchoResult(True, node.name, rtt, f"C-ECHO OK in {rtt:.1f} ms")
        if status is None:
            return EchoResult(False, node.name, None, "no C-ECHO response (timeout or abort)")
        return EchoResult(False, node.name, None, f"C-ECHO answered with status 0x{status.Status:04X}")
    finally:
        close(assoc)


def close(assoc: Any, timeout: float = 5.0) -> None:
    """Release (or abort) and make sure pynetdicom's DUL thread ends: it is not a daemon, and if the association's
    daemon thread does not get to stop it, the process cannot exit (seen as a rare hang after ``send --wait``)."""
    try:
        if assoc.is_established:
            assoc.release()
        if assoc.is_established:
            assoc.abort()
    finally:
        assoc.dul.join(timeout)
        if assoc.dul.is_alive():
            assoc.dul.kill_dul()
            assoc.dul.join(timeout)


@dataclass(frozen=True)
class StoreOutcome:
    ok: bool  # delivered (success or warning)
    status: int | None  # None: no response (the association is gone)
    error: str = ""
    permanent: bool = False  # retrying cannot help (no context, cannot decode)


def accepted_pairs(assoc: Any) -> set[tuple[str, str]]:
    return {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}


def store(assoc: Any, path: str, sop_class: str, ts: str, size: int, timeout_s: float,
          accepted: set[tuple[str, str]]) -> StoreOutcome:
    """C-STORE one stored file: its own bytes if the peer took its syntax, else decoded to an uncompressed one."""
    assoc.dimse_timeout = timeout_s + size / 1e6  # dimse_timeout covers the whole transfer: ~1 MB/s worst case
    started = time.monotonic()
    if (sop_class, ts) in accepted:
        try:
            with evenly_framed(path, ts) as sendable:
                return _outcome(assoc, assoc.send_c_store(sendable), started)
        except (OSError, ValueError) as exc:  # the stored file vanished or is not what the index says
            if not assoc.is_established:
                return StoreOutcome(False, None, f"association lost while sending {path}: {exc}")
            return StoreOutcome(False, None, f"cannot send the stored file {path}: {exc}", permanent=True)
    fallback = next((u for u in UNCOMPRESSED if (sop_class, u) in accepted), None)
    if fallback is None:
        return StoreOutcome(False, None, f"the peer accepts no transfer syntax for SOP class {sop_class} "
                            f"({pydicom.uid.UID(sop_class).name})", permanent=True)
    try:
        ds = uncompressed_little_endian(path)  # every UID kept: the RT references must stay valid
    except CannotTranscode as exc:  # no codec, corrupt pixel data: this instance cannot go to this peer
        return StoreOutcome(False, None, str(exc), permanent=True)
    except OSError as exc:
        return StoreOutcome(False, None, f"cannot read the stored file {path}: {exc.strerror or exc}",
                            permanent=True)
    try:
        return _outcome(assoc, assoc.send_c_store(ds), started)
    except ValueError as exc:  # pynetdicom found no context for it or could not encode it: this object alone
        return StoreOutcome(False, None, f"cannot send it re-encoded as {pydicom.uid.UID(fallback).name}: {exc}",
                            permanent=True)


@contextmanager
def evenly_framed(path: str, ts: str) -> Iterator[str]:
    """The file to send for ``path``: itself, or for a deflated dataset of odd length a padded temp copy.

    Why: PS3.5 A.5 pads a deflate stream with one trailing NUL to an even length, and every PDV must be even;
    files written by other software sometimes are not, and DCMTK and Orthanc then abort the association ("Odd
    Fragment Length"). The stored file is left as it was (it is what was imported); the NUL after the deflate
    stream's last block is ignored by every inflater."""
    if ts != DEFLATED or (os.path.getsize(path) - dataset_offset(Path(path))) % 2 == 0:
        yield path
        return
    fd, padded = tempfile.mkstemp(suffix=".dcm", prefix="rtstation-padded-")
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.write(b"\0")
        yield padded
    finally:
        os.unlink(padded)


def _outcome(assoc: Any, rsp: Any, started: float) -> StoreOutcome:
    if rsp is None or not hasattr(rsp, "Status"):
        return StoreOutcome(False, None, _no_response(assoc, time.monotonic() - started))
    status = int(rsp.Status)
    if status == 0 or status in WARNING_STATUSES:
        return StoreOutcome(True, status, "" if status == 0 else f"warning status 0x{status:04X}")
    comment = str(getattr(rsp, "ErrorComment", "") or "")
    permanent = not is_transient(status)
    final = " (final: the peer refuses this object, it is not retried)" if permanent else ""
    return StoreOutcome(False, status, f"failure status 0x{status:04X}{': ' + comment if comment else ''}{final}",
                        permanent=permanent)


def _no_response(assoc: Any, waited: float) -> str:
    """Why a C-STORE got no response: the peer's A-ABORT (with its source and reason), the connection, or our
    DIMSE timeout: an operator acts differently on each."""
    aborted = peer_abort(assoc)
    if aborted is not None:
        return aborted.describe()
    if waited >= assoc.dimse_timeout * 0.95:
        return f"no C-STORE response within {assoc.dimse_timeout:.0f} s (timeout); the association was aborted"
    return "no C-STORE response: the connection was lost (closed by the peer or the network)"
