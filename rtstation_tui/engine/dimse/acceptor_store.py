"""The DIMSE layer of the fast acceptor loops: C-STORE-RQs decoded by hand as their fragments arrive, served where
the last one lands, answered with a hand-encoded C-STORE-RSP.

Why a module of its own: ``acceptor.py`` owns the transport and the two loops (DUL thread, association thread);
this owns what happens to DIMSE messages in between. ``_Accelerator`` (in ``acceptor.py``) inherits ``StoreService``
and provides the state it uses. Everything here falls back to pynetdicom's own code for anything unusual; the
internals relied on are in ``manifest.py``.
"""

from __future__ import annotations

import queue
import threading
from io import BytesIO
from pathlib import Path
from typing import Any, Callable

from pydicom.uid import UID
from pynetdicom import _config, evt
from pynetdicom.association import LOGGER as ASSOC_LOG
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import LOGGER as DUL_LOG
from pynetdicom.pdu_primitives import P_DATA

from . import cstore_wire


class _FastStore(C_STORE):
    """A C-STORE-RQ decoded here: its dataset is already in a temp file of ours."""


class StoreService:
    """C-STORE handling bound onto one association's DIMSE provider (``receive_primitive``) and association
    (``_serve_request``); the rest of each message's life stays pynetdicom's."""

    assoc: Any
    dimse: Any
    tmp_dir: Path
    cmd: bytearray
    pending: tuple[int, _FastStore, cstore_wire.TempDataset] | None  # C-STORE whose dataset is arriving
    stock_busy: bool  # pynetdicom's own decoder holds a partial message
    reactor_running: threading.Event  # negotiation done, EVT_ACCEPTED handlers returned
    _stock_receive: Callable[[Any], None]
    _stock_serve: Callable[[Any, int], None]

    # -- on the DUL thread, from the state machine ------------------------------------------------------------
    def receive_primitive(self, primitive: P_DATA) -> None:
        """``DIMSEServiceProvider.receive_primitive``: C-STORE-RQs here, every other message to pynetdicom."""
        for context_id, data in primitive.presentation_data_value_list:
            self.receive_pdv(context_id, data)

    def receive_pdv(self, context_id: int, data: Any) -> None:
        """One presentation data value (control byte + fragment), from ``receive_primitive`` or straight from the
        PDU reader (``acceptor.read_pdu``'s P-DATA lane)."""
        if self.stock_busy:
            self._to_stock(context_id, data)
            return
        control = data[0]
        if control & 1:  # command fragment
            if self.pending is not None:
                DUL_LOG.error("Command received before the previous C-STORE dataset ended; dataset dropped")
                self.pending[2].discard()
                self.pending = None
            self.cmd += data[1:]
            if control & 2:
                cmd = bytes(self.cmd)
                self.cmd.clear()
                if not self._start_store(context_id, cmd):
                    self._to_stock(context_id, b"\x03" + cmd)
        elif self.pending is None:
            self._to_stock(context_id, data)
        else:
            self.pending[2].write(data[1:])
            if control & 2:
                cx_id, request, tmp = self.pending
                self.pending = None
                tmp.close()
                if self.reactor_running.is_set() and self.dimse.msg_queue.empty():
                    self.serve_request(request, cx_id)  # here, on the DUL thread: no hand-offs
                else:  # EVT_ACCEPTED handlers may still be running: the association thread serves it after them
                    self.dimse.msg_queue.put((cx_id, request))

    def _to_stock(self, context_id: int, data: Any) -> None:
        p = P_DATA()
        p.presentation_data_value_list = [[context_id, bytes(data)]]
        self._stock_receive(p)
        self.stock_busy = self.dimse.message is not None

    def _start_store(self, context_id: int, cmd: bytes) -> bool:
        if not _config.STORE_RECV_CHUNKED_DATASET or self.assoc._handlers.get(evt.EVT_DIMSE_RECV):
            return False
        cx = self.assoc._accepted_cx.get(context_id)
        rq = cstore_wire.parse_store_request(cmd)
        if cx is None or rq is None:
            return False
        req = _FastStore()
        try:
            req.MessageID, req.Priority = rq.message_id, rq.priority
            # what the setters would store, without their validation: parse_store_request accepts only plain UIDs
            # (digits and dots, at most 64 characters), which pynetdicom's validation passes too; str.__new__
            # makes the same UID without pydicom's own checks in UID.__new__ (~10 µs each)
            req._affected_sop_class_uid = str.__new__(UID, rq.sop_class)
            req._affected_sop_instance_uid = str.__new__(UID, rq.sop_instance)
            if rq.move_originator_aet is not None:
                req.MoveOriginatorApplicationEntityTitle = rq.move_originator_aet
            if rq.move_originator_id is not None:
                req.MoveOriginatorMessageID = rq.move_originator_id
        except (ValueError, TypeError):
            return False  # pynetdicom decodes it again and refuses it in its own words
        tmp = cstore_wire.TempDataset(self.tmp_dir)  # out of space: recorded for the handler (0xA700), not raised
        tmp.write(cstore_wire.file_meta(rq.sop_class, rq.sop_instance, str(cx.transfer_syntax[0])))
        req.DataSet = BytesIO()  # pynetdicom's chunked mode leaves it empty too; is_valid_request wants one
        req._context_id = context_id
        req._dataset_path = Path(tmp.name)
        req._dataset_file = tmp  # type: ignore[assignment]
        self.pending = (context_id, req, tmp)
        return True

    # -- on the association thread (or the DUL thread, see receive_primitive) -------------------------------------
    def _discard_queued(self) -> None:
        """Datasets received but never handed to the handler (the association ended first): never acknowledged."""
        while True:
            try:
                _, msg = self.dimse.msg_queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(msg, _FastStore) and isinstance(msg._dataset_file, cstore_wire.TempDataset):
                msg._dataset_file.discard()

    def serve_request(self, msg: Any, context_id: int) -> None:
        """``Association._serve_request`` + ``StorageServiceClass.SCP`` for our C-STOREs; the rest: stock."""
        a = self.assoc
        if type(msg) is not _FastStore or not _config.UNRESTRICTED_STORAGE_SERVICE:
            self._stock_serve(msg, context_id)
            return
        tmp = msg._dataset_file
        cx = a._accepted_cx.get(context_id)
        if a._sent_release or cx is None:
            tmp.discard()
            self._stock_serve(msg, context_id)  # logs and ignores, or aborts, as pynetdicom does
            return
        self.dimse.cancel_req = {}
        a._is_paused = True
        a.abort = a._abort_nonblocking  # as pynetdicom's ``attempt`` context does around the handler
        try:
            status: Any = evt.trigger(a, evt.EVT_C_STORE, {"request": msg, "context": cx.as_tuple})
        except Exception as exc:
            ASSOC_LOG.error("Exception in handler bound to 'evt.EVT_C_STORE'")
            ASSOC_LOG.exception(exc)
            status = 0xC211
        finally:
            a.abort = a._abort_blocking
            tmp.discard()
            a._is_paused = False
        self.dimse.cancel_req = {}
        if not a.is_established:
            return
        if not isinstance(status, int) or not 0 <= status <= 0xFFFF:
            self._stock_response(msg, context_id, status)
            return
        rsp = cstore_wire.store_response(msg.AffectedSOPClassUID, msg.AffectedSOPInstanceUID, msg.MessageID, status)
        if self._send_lane():
            a.dul.socket.send(cstore_wire.p_data_tf_bytes(context_id, 0x03, rsp))
            return
        p = P_DATA()
        p.presentation_data_value_list = [[context_id, b"\x03" + rsp]]
        a.dul.send_pdu(p)

    def _send_lane(self) -> bool:
        """Whether the response may go straight to the socket: on the DUL thread, established (Sta6: Evt9 is always
        DT-1, which encodes the P-DATA-TF and sends it), nothing queued before it, nobody listening to the per-PDU
        events this skips. Otherwise it takes pynetdicom's queue and state machine."""
        dul = self.assoc.dul
        handlers = self.assoc._handlers
        return (threading.get_ident() == dul.ident and dul.state_machine.current_state == "Sta6"
                and dul.to_provider_queue.empty() and dul.socket is not None
                and not handlers.get(evt.EVT_PDU_SENT) and not handlers.get(evt.EVT_FSM_TRANSITION))

    def _stock_response(self, msg: Any, context_id: int, status: Any) -> None:
        """A status Dataset (or nonsense) from the handler: let pynetdicom build the response as it would."""
        from pynetdicom.service_class import StorageServiceClass

        rsp = C_STORE()
        rsp.MessageID = msg.MessageID
        rsp.MessageIDBeingRespondedTo = msg.MessageID
        rsp.AffectedSOPInstanceUID = msg.AffectedSOPInstanceUID
        rsp.AffectedSOPClassUID = msg.AffectedSOPClassUID
        rsp = StorageServiceClass(self.assoc).validate_status(status, rsp)
        self.dimse.send_msg(rsp, context_id)
