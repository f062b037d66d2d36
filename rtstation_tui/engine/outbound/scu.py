"""The DICOM client side: associations to nodes, C-ECHO, C-STORE of stored files.

Presentation contexts come from the files actually sent: one per (SOP class, stored transfer syntax) so the stored
bytes go out unchanged, plus an uncompressed fallback per SOP class whose syntax is not plain Little Endian, used
only when the peer refuses the first (then the object is decoded, keeping every UID). Private and Ion plan SOP
classes are proposed as they are. One association per destination per thread; TCP_NODELAY on every socket.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable

import pydicom
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context

from ..config.nodes import NodeConfig
from ..dimse.requestor import prepare_requestor
from ..dimse.settings import apply_send_settings

log = logging.getLogger("rtstation.sender")

IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
UNCOMPRESSED = (EXPLICIT, IMPLICIT)
MAX_CONTEXTS = 128
WARNING_STATUSES = {0x0001, 0xB000, 0xB006, 0xB007}
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
    """Could not establish an association; the message says why in words an operator can act on."""


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    node: str
    rtt_ms: float | None
    message: str


def _on_conn_open(fast_paths: bool, event: Any) -> None:
    prepare_requestor(event.assoc, fast_paths)  # TCP_NODELAY; with fast paths our steady association loop


def make_ae(node: NodeConfig, station_ae: str) -> AE:
    ae = AE(ae_title=(node.calling_ae_title or station_ae).strip())
    ae.maximum_pdu_size = 65536
    ae.acse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    return ae


def contexts_for(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    """Presentation contexts for (SOP class, transfer syntax) pairs; raises ValueError past 128."""
    contexts: list[Any] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for sop_class, ts in pairs:
        wanted = [(sop_class, (ts,))]
        if ts not in UNCOMPRESSED:
            wanted.append((sop_class, UNCOMPRESSED))
        for cls, syntaxes in wanted:
            if (cls, syntaxes) not in seen:
                seen.add((cls, syntaxes))
                contexts.append(build_context(cls, list(syntaxes)))
    if len(contexts) > MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} presentation contexts needed, at most {MAX_CONTEXTS} per association")
    return contexts


def associate(node: NodeConfig, station_ae: str, contexts: list[Any], ssl_context: Any = None,
              fast_paths: bool = True) -> Any:
    """An established association, or AssociationFailed with the precise reason. ``fast_paths``: ``[network]
    fast_paths`` (False: pynetdicom's own association loop)."""
    ae = make_ae(node, station_ae)
    ae.requested_contexts = contexts
    tls_args = (ssl_context, node.host) if ssl_context is not None else None
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title.strip(), tls_args=tls_args,
                         evt_handlers=[(evt.EVT_CONN_OPEN, partial(_on_conn_open, fast_paths))])
    if assoc.is_established:
        return assoc
    raise AssociationFailed(describe_failure(assoc, node))


def describe_failure(assoc: Any, node: NodeConfig) -> str:
    """Rejected (with the peer's reason), refused at TCP level, timed out, or aborted: each says what to fix."""
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        result, source, diag = rsp.result, rsp.result_source, rsp.diagnostic
        kind = "permanently" if result == 1 else "for now"
        return f"association rejected {kind}: {_RJ_REASONS.get((source, diag), f'reason {source}/{diag}')}"
    tcp = probe_tcp(node)
    if tcp is not None:
        return tcp
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
    if (sop_class, ts) in accepted:
        return _outcome(assoc.send_c_store(path))
    fallback = next((u for u in UNCOMPRESSED if (sop_class, u) in accepted), None)
    if fallback is None:
        return StoreOutcome(False, None, f"the peer accepts no transfer syntax for SOP class {sop_class} "
                            f"({pydicom.uid.UID(sop_class).name})", permanent=True)
    try:
        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False)  # the RT references must stay valid
    except Exception as exc:  # no codec, corrupt pixel data: this instance cannot go to this peer
        return StoreOutcome(False, None, f"cannot decode {pydicom.uid.UID(ts).name} for a peer that accepts only "
                            f"uncompressed data: {exc}", permanent=True)
    return _outcome(assoc.send_c_store(ds))


def _outcome(rsp: Any) -> StoreOutcome:
    if rsp is None or not hasattr(rsp, "Status"):
        return StoreOutcome(False, None, "no C-STORE response (timeout, abort or connection lost)")
    status = int(rsp.Status)
    if status == 0 or status in WARNING_STATUSES:
        return StoreOutcome(True, status, "" if status == 0 else f"warning status 0x{status:04X}")
    comment = str(getattr(rsp, "ErrorComment", "") or "")
    return StoreOutcome(False, status, f"failure status 0x{status:04X}{': ' + comment if comment else ''}")
