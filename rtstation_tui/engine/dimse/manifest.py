"""Every pynetdicom internal the project touches, in one list: what it is, what we rely on, where, and its source hash.

Why: ``engine/dimse/`` replaces or reads private parts of pynetdicom 3.0.4 (association and DUL loops, PDU reading,
C-STORE decoding, temp files, the TLS server's accept path, ``_config`` settings). A pynetdicom upgrade can change
any of them silently. ``tests/unit/test_dimse_manifest.py`` hashes each entry's source, checks that each attribute
and setting still exists, and scans our code so that a private use not listed here (or outside ``engine/dimse/``)
fails the suite. DEVELOPERS.md, "Upgrading pynetdicom", says what to do when an entry fails.

Kinds:
    replaced  we install our own function in its place (per association, never in site-packages)
    copied    our code repeats its steps (or extends it in a subclass): re-read it when it changes
    called    we call it
    attribute a private attribute we read or write (its owner's ``__init__`` is pinned too)
    setting   a ``pynetdicom._config`` value we set or read
    import    an internal module, or a name imported from one

``fast_path``: used only when ``[network] fast_paths`` is on; with it off (``RTSTATION_STOCK_PYNETDICOM=1``) none of
those run, so an upgrade that breaks one has a fallback. The others (TLS server, logged reject, settings) run in both
modes. ``digest``: sha256[:16] of ``inspect.getsource`` of the named function or class (None: no source, e.g. an
attribute).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

PYNETDICOM_VERSION = "3.0.4"


@dataclass(frozen=True)
class Internal:
    name: str  # dotted path from the package: pynetdicom.dul.DULServiceProvider.run_reactor
    kind: str
    relied_on: str
    used_in: tuple[str, ...]  # our modules in engine/dimse/
    digest: str | None = None
    fast_path: bool = True

    @property
    def last(self) -> str:
        return self.name.rsplit(".", 1)[1]


_A, _ST, _AS, _RQ, _W = "acceptor.py", "acceptor_store.py", "association.py", "requestor.py", "cstore_wire.py"
_WS = "wire_send.py"
_DUL, _ASSOC, _DIMSE = "pynetdicom.dul.DULServiceProvider", "pynetdicom.association.Association", \
    "pynetdicom.dimse.DIMSEServiceProvider"
_CS = "pynetdicom.dimse_primitives.C_STORE"
_CFG = "pynetdicom._config"
_SRV = "pynetdicom.transport.AssociationServer"

INTERNALS: tuple[Internal, ...] = (
    # -- the DUL (connection) thread of incoming associations ----------------------------------------------------
    Internal(f"{_DUL}.__init__", "copied", "sets the queues, timers, _recv_pdu, _kill_thread and _run_loop_delay we "
             "use or swap", (_A,), "c82dafa9438ddf70"),
    Internal(f"{_DUL}.run_reactor", "replaced", "the DUL loop; ours (dul_reactor) keeps its order of checks, with "
             "select() where it sleeps; installed through _target before the thread starts. The sender relies on the "
             "stock loop reading the socket only through self._is_transport_event() and sleeping _run_loop_delay",
             (_A, _WS), "e3a10eb3a0931e48"),
    Internal(f"{_DUL}._target", "attribute", "threading.Thread's target: set to our loop before start()", (_A,)),
    Internal(f"{_DUL}._read_pdu_data", "replaced", "reads one PDU and queues Evt10 etc.; ours reads it with one "
             "recv_into and slices P-DATA values", (_A,), "19f2d4e38c13c835"),
    Internal(f"{_DUL}._decode_pdu", "called", "decodes every PDU but P-DATA-TF for us", (_A,), "fc71dd1bf853e1ce"),
    Internal(f"{_DUL}._is_transport_event", "called", "one look at the socket per loop; the sender replaces it on the "
             "instance (nothing to read) while it owns the socket", (_A, _WS), "8725ed03bb8fbdef"),
    Internal(f"{_DUL}._process_recv_primitive", "called", "sends what the association queued", (_A,),
             "4c0ebbb3e646e35e"),
    Internal(f"{_DUL}.stop_dul", "replaced", "wrapped: rings our wake-up socket first", (_A,), "28a7e0be126e7b30"),
    Internal(f"{_DUL}._idle_timer", "attribute", "network timeout timer, restarted on transport events (and by the "
             "sender as its data moves)", (_A, _WS)),
    Internal(f"{_DUL}._kill_thread", "attribute", "the DUL loop's stop flag", (_A,)),
    Internal(f"{_DUL}._recv_pdu", "attribute", "queue of decoded PDUs the state machine takes", (_A,)),
    Internal(f"{_DUL}._run_loop_delay", "attribute", "idle sleep of the stock DUL loop; shortened on our outgoing "
             "associations, lengthened while the sender owns the socket", (_RQ, _WS)),
    Internal("pynetdicom.transport.AssociationSocket._is_connected", "attribute", "whether the socket may be "
             "select()ed", (_A,)),
    Internal("pynetdicom.transport.AssociationSocket.connect", "copied", "on a failed connect it logs 'Association "
             "request failed: unable to connect to remote' and 'TCP Initialisation Error: {exc}' (then the TLS "
             "traceback) on pynetdicom.transport, in the DUL thread; connlog folds exactly those lines",
             ("connlog.py",), "aeeeae413bd339dc", fast_path=False),
    Internal("pynetdicom.acse.ACSE._negotiate_as_requestor", "copied", "triggers EVT_REQUESTED in the association's "
             "thread before waiting, then logs 'Association Rejected' + 'Result: '/'Reason: ', 'Association Aborted', "
             "'No accepted presentation contexts' or the ACSE timeout on pynetdicom.acse in that thread; connlog folds "
             "those lines of our own requests", ("connlog.py",), "507959152c5896c6", fast_path=False),
    Internal("pynetdicom.fsm.DT_2", "copied", "the state machine hands P-DATA to dimse.receive_primitive", (_A,),
             "9ec543394e0b49eb"),
    Internal("pynetdicom.transport.RequestHandler.handle", "copied", "EVT_CONN_OPEN fires before the association's "
             "threads start, so replacing per association is race-free", (_A,), "034823fb4df3a874"),
    Internal("pynetdicom.utils.make_target", "called", "wraps our DUL loop as pynetdicom wraps its own", (_A,),
             "81bc7a65ab49454a"),
    # -- the association thread --------------------------------------------------------------------------------
    Internal(f"{_ASSOC}.__init__", "copied", "sets _handlers, _accepted_cx, _kill, _is_paused, _reactor_checkpoint, "
             "_dul_ready, _sent_release", (_A, _AS, _RQ), "eb07516b8009ad8f"),
    Internal(f"{_ASSOC}._run_reactor", "replaced", "the association loop: ours block on a doorbell (acceptor) or never "
             "take DIMSE messages (requestor); association_ended copies its endings (release, abort, DUL gone, "
             "network timeout)", (_A, _AS, _RQ), "f28838c5559e462a"),
    Internal(f"{_ASSOC}._serve_request", "replaced", "wrapped twice: in both modes (association.answer_unserved) "
             "requests we do not serve get 0x0211 at once; with fast paths our C-STOREs are served by us; the rest "
             "by it", (_A, _ST, _AS), "2f24c1759cdf6c8c", fast_path=False),
    Internal(f"{_ASSOC}.kill", "replaced", "wrapped: rings the doorbell first", (_A,), "8f9713666a7f4cff"),
    Internal(f"{_ASSOC}._abort_nonblocking", "called", "abort() inside a handler, as its attempt() context does",
             (_ST,), "d348dba35ea17ee1"),
    Internal(f"{_ASSOC}._abort_blocking", "called", "abort() restored after the handler", (_ST,), "10b43ef8c63c6764"),
    Internal(f"{_ASSOC}._handlers", "attribute", "bound handlers: per-PDU/per-message handlers switch fast paths off",
             (_A, _ST)),
    Internal(f"{_ASSOC}._accepted_cx", "attribute", "accepted presentation contexts by id", (_ST,)),
    Internal(f"{_ASSOC}._sent_release", "attribute", "a release was sent: requests are no longer served",
             (_ST, _AS), fast_path=False),
    Internal(f"{_ASSOC}._is_paused", "attribute", "the loop's pause handshake with send_*() and handlers",
             (_A, _AS, _RQ, _ST)),
    Internal(f"{_ASSOC}._kill", "attribute", "the association loop's stop flag", (_A, _RQ)),
    Internal(f"{_ASSOC}._reactor_checkpoint", "attribute", "the event send_*() clears to pause the loop",
             (_A, _AS, _RQ)),
    Internal(f"{_ASSOC}._dul_ready", "attribute", "set by the DUL loop once it runs", (_A,)),
    Internal(f"{_DIMSE}.receive_primitive", "replaced", "P-DATA to DIMSE messages; ours takes C-STORE-RQs", (_A, _ST),
             "5f99c86b14a15cef"),
    Internal("pynetdicom.dimse_messages.DIMSEMessage.decode_msg", "copied", "how a chunked C-STORE-RQ is spooled: "
             "NamedTemporaryFile looked up at call time, write() then file.flush() per fragment, file meta first",
             (_ST, "spool.py"), "f51c777e841a76be"),
    Internal("pynetdicom.service_class.StorageServiceClass.SCP", "copied", "EVT_C_STORE with the request, temp file "
             "closed and unlinked after the handler, status validated", (_ST, "spool.py"), "63afca7fc6c6e7ee"),
    Internal(f"{_CS}", "import", "subclassed (_FastStore): a C-STORE-RQ we decoded", (_ST,), "300fd21fcdfe594b"),
    Internal(f"{_CS}._dataset_path", "attribute", "what event.dataset_path returns", (_ST,)),
    Internal(f"{_CS}._dataset_file", "attribute", "the temp file; the spool failure travels on it", (_ST, "spool.py")),
    Internal(f"{_CS}._context_id", "attribute", "presentation context of the request", (_ST,)),
    Internal(f"{_CS}._affected_sop_class_uid", "attribute", "where the AffectedSOPClassUID setter stores its UID; set "
             "directly for UIDs our parser already checked", (_ST,)),
    Internal(f"{_CS}._affected_sop_instance_uid", "attribute", "the same for AffectedSOPInstanceUID", (_ST,)),
    Internal("pynetdicom.fsm.DT_1", "copied", "Sta6 + Evt9: encode the P-DATA primitive as one P-DATA-TF and send it; "
             "our C-STORE response goes straight to the socket when nothing is queued before it", (_ST,),
             "82e5c5d4114534fa"),
    Internal("pynetdicom.fsm.StateMachine.do_action", "copied", "Sta6 + Evt10 is DT-2 and stays Sta6: the P-DATA lane "
             "of read_pdu skips it (and its EVT_FSM_TRANSITION) unless a handler wants those events", (_A,),
             "9a883f44c7f31641"),
    Internal("pynetdicom.dul.LOGGER", "import", "log as pynetdicom does for DUL errors", (_A, _ST)),
    Internal("pynetdicom.pdu.A_ABORT_RQ", "import", "the abort sent when the DUL loop fails; recognised with its "
             "source and reason when a peer aborts our outgoing association", (_A, _RQ),
             "ad54d2859b2b4d65"),
    Internal("pynetdicom.pdu.P_DATA_TF", "import", "built by hand from one PDU body", (_W,), "6fdbc751c92b9874"),
    Internal("pynetdicom.pdu_items.PresentationDataValueItem", "import", "built by hand, value a memoryview", (_W,),
             "93b5c1a17ae3c443"),
    Internal("pynetdicom.pdu_primitives.A_ASSOCIATE", "import", "recognised on the to-user queue", (_A,),
             "c076f97d6c05831a"),
    Internal("pynetdicom.pdu_primitives.P_DATA", "import", "built for pynetdicom's own decoder and our responses",
             (_ST,), "19c1aa5d5ee978f7"),
    Internal("pynetdicom.dimse_primitives.C_STORE.__init__", "copied", "the attributes our requests set", (_ST,),
             "d6deffe2538504c1"),
    # -- settings and temp files ---------------------------------------------------------------------------------
    Internal(_CFG, "import", "process-wide settings: set in settings.py only, read by the fast path",
             ("settings.py", _ST), fast_path=False),
    Internal(f"{_CFG}.STORE_RECV_CHUNKED_DATASET", "setting", "True: datasets streamed to temp files",
             ("settings.py", _ST), fast_path=False),
    Internal(f"{_CFG}.UNRESTRICTED_STORAGE_SERVICE", "setting", "True: any SOP class is storage",
             ("settings.py", _ST), fast_path=False),
    Internal(f"{_CFG}.LOG_HANDLER_LEVEL", "setting", '"none": no per-PDU debug handlers', ("settings.py",),
             fast_path=False),
    Internal(f"{_CFG}.STORE_SEND_CHUNKED_DATASET", "setting", "True: send_c_store(path) streams the file",
             ("settings.py",), fast_path=False),
    Internal("pynetdicom.dimse_messages", "import", "module whose NamedTemporaryFile the spool guard replaces",
             ("spool.py",)),
    Internal("pynetdicom.dimse_messages.NamedTemporaryFile", "replaced", "module global used by decode_msg: ours "
             "frees the file and records the failure on disk full (stock again with fast paths off)", ("spool.py",)),
    # -- association reject (both modes) ---------------------------------------------------------------------------
    Internal("pynetdicom.acse.ACSE._negotiate_as_acceptor", "copied", "its reject sequence: send_reject, "
             "EVT_REJECTED, kill", (_AS,), "fffd360957c42a8e", fast_path=False),
    Internal("pynetdicom.acse.ACSE.send_reject", "called", "sends the A-ASSOCIATE-RJ, sets is_rejected", (_AS,),
             "700998293bbcb6c9", fast_path=False),
    # -- the TLS server (both modes: a correctness fix) ----------------------------------------------------------
    Internal("pynetdicom.transport.ThreadedAssociationServer", "import", "subclassed by HandshakeInThreadServer",
             ("tls.py",), "dbf94911169aa5f2", fast_path=False),
    Internal(f"{_SRV}.get_request", "replaced", "overridden: accept without the inline TLS handshake", ("tls.py",),
             "925a4f3a3042f6e4", fast_path=False),
    Internal(f"{_SRV}.process_request", "copied", "extended: connection cap and counting", ("tls.py",),
             "4fa44ac5b54b4498", fast_path=False),
    Internal("pynetdicom.transport.ThreadedAssociationServer.process_request_thread", "copied", "extended: the "
             "handshake runs first, in this thread", ("tls.py",), "9e76e9b9c8a3d8b1", fast_path=False),
    Internal("pynetdicom.ae.ApplicationEntity.make_server", "called", "takes server_class and ssl_context",
             ("tls.py",), "6569298ac5cf837c", fast_path=False),
    Internal("pynetdicom.ae.ApplicationEntity.start_server", "copied", "what start_server(block=False) does after "
             "make_server", ("tls.py",), "d3868a2df83d3cc0", fast_path=False),
    Internal("pynetdicom.ae.ApplicationEntity._servers", "attribute", "servers ae.shutdown() stops", ("tls.py",),
             fast_path=False),
    # -- the Query/Retrieve SCP's C-STOREs send stored files (both modes: bytes as stored) ------------------------
    Internal("pynetdicom.service_class.QueryRetrieveServiceClass._get_scp", "called", "sends each yielded Dataset "
             "with self.assoc.send_c_store(dataset, msg_id=...) on the requestor's association (our per-association "
             "send_c_store swaps the stand-in for the stored file)", ("stored_send.py",), "8ca1538e3e56c4f7",
             fast_path=False),
    Internal("pynetdicom.service_class.QueryRetrieveServiceClass._move_scp", "called", "passes the destination's "
             "third item to self.ae.associate(**kwargs) (contexts, evt_handlers) and sends each yielded Dataset with "
             "store_assoc.send_c_store", ("stored_send.py",), "5c14d1be3d737bef", fast_path=False),
)

BY_NAME = {i.name: i for i in INTERNALS}


def resolve(name: str) -> Any:
    """The object a dotted name points at (the longest importable module prefix, then attributes); raises
    AttributeError or ImportError when pynetdicom no longer has it. Instance attributes cannot be resolved here."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def source_digest(obj: Any) -> str:
    """sha256[:16] of an object's source, as pinned in ``Internal.digest``."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def current_digests() -> dict[str, str]:
    """The digests the installed pynetdicom has for every pinned entry (to paste after an upgrade has been read)."""
    return {i.name: source_digest(resolve(i.name)) for i in INTERNALS if i.digest is not None}


if __name__ == "__main__":  # python -m rtstation_tui.engine.dimse.manifest: what changed since the pin
    for item in INTERNALS:
        if item.digest is not None and (now := source_digest(resolve(item.name))) != item.digest:
            print(f"{item.name}: pinned {item.digest}, installed {now}")
