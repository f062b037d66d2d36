"""The Query/Retrieve SCU: C-FIND, C-MOVE and C-GET towards a node, with the reasons an operator can act on.

Associations come from the sender's helpers (``outbound.scu``: AE settings, precise rejection reasons) with
TCP_NODELAY; C-FIND and C-MOVE run on the sender's steady loop (fast paths), C-GET on pynetdicom's own, because its
C-STOREs arrive on the requestor's association and the steady loop never serves DIMSE messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import build_context

from ..config.nodes import NodeConfig
from ..dimse.association import nodelay, reject
from ..dimse.requestor import prepare_requestor
from ..outbound.scu import AssociationFailed, describe_failure, make_ae
from .query import FIND_MODELS, GET_MODELS, MOVE_MODELS, QueryError, model_for

log = logging.getLogger("rtstation.qr")

MAX_CONTEXTS = 128
MOVE_DESTINATION_UNKNOWN = 0xA801
RJ_CALLING_AE = (0x01, 0x01, 0x03)  # A-ASSOCIATE-RJ: rejected permanently, calling AE not recognised
PENDING = (0xFF00, 0xFF01)
# offered one per context, so the peer can send each object in the syntax it holds it in (bytes unchanged)
GET_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.90",
                "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50",
                "1.2.840.10008.1.2.1.99")
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


class RetrieveFailed(Exception):
    """The peer refused or failed a retrieve; the message says what to fix."""


@dataclass(frozen=True)
class Progress:
    """A C-MOVE/C-GET response's sub-operation counts (None where the peer left them out)."""

    remaining: int | None
    completed: int
    failed: int
    warning: int
    final: bool = False


def _connect(node: NodeConfig, station_ae: str, contexts: list[Any], roles: list[Any] | None = None,
             handlers: list[Any] | None = None, tls: Any = None, steady: bool = False) -> Any:
    """``tls``: an SSL context (``dimse.tls.client_context``) or None. ``steady``: the peer sends only responses
    (C-FIND, C-MOVE), so the sender's steady loop can run it ([network] fast_paths); a C-GET's association must
    serve the peer's C-STOREs and keeps pynetdicom's loop."""
    ae = make_ae(node, station_ae)
    ae.requested_contexts = contexts
    hs = [(evt.EVT_CONN_OPEN, lambda event: prepare_requestor(event.assoc, steady)), *(handlers or [])]
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title.strip(), ext_neg=roles or None,
                         evt_handlers=hs, tls_args=(tls, node.host) if tls is not None else None)
    if assoc.is_established:
        return assoc
    raise AssociationFailed(describe_failure(assoc, node))


def _accepted_models(assoc: Any, models: dict[str, str]) -> list[str]:
    uids = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    return [name for name, uid in models.items() if uid in uids]


def find(node: NodeConfig, station_ae: str, identifier: Dataset, level: str, tls: Any = None,
         fast_paths: bool = True) -> list[Dataset]:
    """Every answer of one C-FIND; Patient Root if the peer takes it, else Study Root."""
    assoc = _connect(node, station_ae, [build_context(uid) for uid in FIND_MODELS.values()], tls=tls,
                     steady=fast_paths)
    try:
        model = model_for(level, _accepted_models(assoc, FIND_MODELS))
        return list(_answers(assoc.send_c_find(identifier, FIND_MODELS[model]), node))
    finally:
        _end(assoc)


def _answers(responses: Iterable[tuple[Dataset, Dataset | None]], node: NodeConfig) -> Iterator[Dataset]:
    for status, ident in responses:
        code = int(getattr(status, "Status", -1)) if status else -1
        if code in PENDING and ident is not None:
            yield ident
        elif code == -1:
            raise QueryError(f"{node.describe()} sent no C-FIND response in time (association aborted or timed out)")
        elif code != 0x0000:
            comment = getattr(status, "ErrorComment", "") or ""
            raise QueryError(f"{node.describe()} refused the C-FIND with status 0x{code:04X} {comment}".strip())


def _end(assoc: Any) -> None:
    if assoc.is_established:
        assoc.release()


def _progress(status: Dataset, final: bool) -> Progress:
    def n(kw: str) -> int:
        return int(getattr(status, kw, 0) or 0)

    remaining = getattr(status, "NumberOfRemainingSuboperations", None)
    return Progress(int(remaining) if remaining is not None else None, n("NumberOfCompletedSuboperations"),
                    n("NumberOfFailedSuboperations"), n("NumberOfWarningSuboperations"), final)


def _follow(responses: Iterable[tuple[Dataset, Dataset | None]], node: NodeConfig, what: str,
            on_progress: Callable[[Progress], None], dest: str = "", dest_port: int = 0) -> Progress:
    last = Progress(None, 0, 0, 0, True)
    for status, _ in responses:
        if not status:
            raise RetrieveFailed(f"{node.describe()} sent no {what} response in time (association aborted or "
                                 "timed out)")
        code = int(status.Status)
        if code in PENDING:
            on_progress(_progress(status, False))
            continue
        last = _progress(status, True)
        on_progress(last)
        fix = (f"the peer must know this station as AE title {dest} at this host's address and port "
               f"{dest_port} (e.g. Orthanc's DicomModalities, a TPS's DICOM node list), or use --get")
        if code == MOVE_DESTINATION_UNKNOWN:
            raise RetrieveFailed(f"{node.describe()} answered 0xA801 \"move destination unknown\": it does not know "
                                 f"{dest!r}; {fix}")
        if what == "C-MOVE" and code not in (0x0000, 0xB000) and last.completed == 0:
            comment = getattr(status, "ErrorComment", "") or ""
            raise RetrieveFailed(f"{node.describe()} could not send anything to {dest} (status 0x{code:04X}"
                                 f"{' ' + comment if comment else ''}; some peers answer an unknown destination so "
                                 f"instead of 0xA801): {fix}")
        if code not in (0x0000, 0xB000):
            comment = getattr(status, "ErrorComment", "") or ""
            raise RetrieveFailed(f"{node.describe()} ended the {what} with status 0x{code:04X} {comment}".strip())
    return last


def move(node: NodeConfig, station_ae: str, identifier: Dataset, on_progress: Callable[[Progress], None],
         destination: str, port: int, tls: Any = None, fast_paths: bool = True) -> Progress:
    """One C-MOVE of ``identifier`` to ``destination`` (our own AE: a storage SCP must be listening)."""
    assoc = _connect(node, station_ae, [build_context(uid) for uid in MOVE_MODELS.values()], tls=tls,
                     steady=fast_paths)
    try:
        models = _accepted_models(assoc, MOVE_MODELS)
        if not models:
            raise RetrieveFailed(f"{node.describe()} accepts no C-MOVE (Patient or Study Root): try --get")
        return _follow(assoc.send_c_move(identifier, destination, MOVE_MODELS[models[0]]), node, "C-MOVE",
                       on_progress, destination, port)
    finally:
        _end(assoc)


def get_contexts(sop_classes: Iterable[str]) -> tuple[list[Any], list[Any]]:
    """C-GET contexts (both models, then one per storage class and transfer syntax) and the SCP role for each
    storage class; fewer syntaxes when the classes would need more than 128 contexts."""
    classes = sorted(set(sop_classes))
    if not classes:
        raise RetrieveFailed("the node's C-FIND named no SOP class for these objects and their modality implies "
                             "none: a C-GET cannot propose their storage contexts; use --move")
    if len(GET_MODELS) + len(classes) * len(UNCOMPRESSED) > MAX_CONTEXTS:
        raise RetrieveFailed(f"{len(classes)} storage classes need more than {MAX_CONTEXTS} presentation contexts "
                             "for one C-GET: retrieve fewer series at a time")
    syntaxes = GET_SYNTAXES if len(GET_MODELS) + len(classes) * len(GET_SYNTAXES) <= MAX_CONTEXTS \
        else UNCOMPRESSED
    contexts = [build_context(uid) for uid in GET_MODELS.values()]
    contexts += [build_context(c, ts) for c in classes for ts in syntaxes]
    return contexts, [build_role(c, scp_role=True) for c in classes]


def get(node: NodeConfig, station_ae: str, identifier: Dataset, sop_classes: Iterable[str],
        on_store: Callable[[Any], int], on_progress: Callable[[Progress], None], tls: Any = None) -> Progress:
    """One C-GET; ``on_store(event)`` takes each C-STORE sub-operation and returns its status. Works over TLS
    (some TPS databases refuse C-MOVE over TLS: the sub-operations come back on this association)."""
    contexts, roles = get_contexts(sop_classes)
    assoc = _connect(node, station_ae, contexts, roles, [(evt.EVT_C_STORE, on_store)], tls)
    try:
        models = _accepted_models(assoc, GET_MODELS)
        if not models:
            raise RetrieveFailed(f"{node.describe()} accepts no C-GET (Patient or Study Root): try --move")
        return _follow(assoc.send_c_get(identifier, GET_MODELS[models[0]]), node, "C-GET", on_progress)
    finally:
        _end(assoc)


def storage_scp(ae_title: str, bind: str, port: int, on_store: Callable[[Any], int],
                refuse: Callable[[str, str], str | None]) -> Any:
    """A storage SCP for C-MOVE sub-operations while no ``rtstation serve`` holds the port: every storage class,
    every transfer syntax, as the peer proposes it (the stored bytes stay the peer's). ``refuse(calling_ae, ip)``
    says why an association may not store here (the receiver's allowlist), or None."""
    from pynetdicom import ALL_TRANSFER_SYNTAXES, StoragePresentationContexts

    def on_requested(event: Any) -> None:
        rq = event.assoc.requestor
        calling, ip = str(rq.primitive.calling_ae_title).strip(), rq.address  # ae_title is set only later
        if (why := refuse(calling, ip)) is not None:
            log.warning("refused the association of %s@%s to the retrieve's storage SCP: %s", calling, ip, why)
            reject(event.assoc, *RJ_CALLING_AE)

    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 65536
    for cx in StoragePresentationContexts:
        if cx.abstract_syntax is not None:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    handlers: list[Any] = [(evt.EVT_CONN_OPEN, lambda event: nodelay(event.assoc)), (evt.EVT_REQUESTED, on_requested),
                (evt.EVT_C_STORE, on_store)]
    try:
        return ae.start_server((bind, port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise RetrieveFailed(f"cannot listen on {bind}:{port} for the C-MOVE sub-operations: "
                             f"{exc.strerror or exc} (is `rtstation serve` or another program on that port?)"
                             ) from None


__all__ = ["Progress", "RetrieveFailed", "find", "get", "move", "storage_scp"]
