"""The fast receive path (engine/dimse/acceptor.py, cstore_wire.py): byte-exact wire encodings, and behaviour on a
live association (active, C-ECHO, cleanup after an abort mid-dataset).

The pynetdicom internals these replace are pinned in engine/dimse/manifest.py and checked by
tests/unit/test_dimse_manifest.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import create_file_meta, encode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket

from helpers import free_port, station_toml, wait_for, write_config
from waiting import until
from rtstation_tui.engine.dimse import acceptor as netfast, cstore_wire
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.station import Station
from rtstation_tui.synthetic import make_ct


def _acceptor() -> tuple[Association, socket.socket]:
    ae = AE("TEST")
    assoc = Association(ae, "acceptor")
    ours, theirs = socket.socketpair()
    assoc.set_socket(AssociationSocket(assoc, client_socket=ours))
    return assoc, theirs


def test_accelerate_replaces_exactly_the_pinned_attributes(tmp_path):
    assoc, peer = _acceptor()
    for obj, name in [(assoc.dul, "_target"), (assoc.dul, "_read_pdu_data"), (assoc.dul, "stop_dul"),
                      (assoc.dul, "to_provider_queue"), (assoc.dul, "to_user_queue"), (assoc, "_run_reactor"),
                      (assoc, "_serve_request"), (assoc, "kill"), (assoc.dimse, "receive_primitive"),
                      (assoc.dimse, "msg_queue"), (assoc, "_abort_nonblocking"), (assoc, "_abort_blocking"),
                      (assoc, "_reactor_checkpoint"), (assoc, "_dul_ready"), (assoc.dul, "_idle_timer"),
                      (assoc.dul, "artim_timer"), (assoc.dul, "_recv_pdu"), (assoc.dul, "_kill_thread")]:
        assert hasattr(obj, name), f"{type(obj).__name__}.{name} is gone"
    assert netfast.accelerate(assoc, tmp_path)
    assert isinstance(assoc.dimse.msg_queue, netfast._RingQueue)
    assert assoc._run_reactor.__self__.__class__ is netfast._Accelerator
    assert not netfast.accelerate(Association(AE("X"), "requestor"), tmp_path)
    peer.close()


@pytest.mark.parametrize("sop", ["1.2.3.4", "1.2.840.10008.5.1.4.1.1.481.5", "1.2.826.0.1.3680043.8.498.12345"])
@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.4.90"])
def test_file_meta_is_byte_for_byte_what_pynetdicom_writes(sop, ts):
    buf = BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, create_file_meta(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid=sop,
                                               transfer_syntax=ts))
    assert cstore_wire.file_meta("1.2.840.10008.5.1.4.1.1.2", sop, ts) == buf.getvalue()


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xC000, 0xC211])
@pytest.mark.parametrize("sop", ["1.2.3", "1.2.840.10008.5.1.4.1.1.481.50"])
def test_store_response_is_byte_for_byte_what_pynetdicom_encodes(status, sop):
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo, rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = 7, "1.2.840.10008.1", sop
    rsp.Status = status
    msg = C_STORE_RSP()
    msg.primitive_to_message(rsp)
    assert cstore_wire.store_response("1.2.840.10008.1", sop, 7, status) == encode(msg.command_set, True, True)


@pytest.mark.parametrize("sop", ["1.2.3", "1.2.840.10008.5.1.4.1.1.481.50"])
def test_store_request_is_byte_for_byte_what_pynetdicom_encodes(sop):
    rq = C_STORE()
    rq.MessageID, rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = 65535, "1.2.840.10008.5.1.4.1.1.2", sop
    rq.Priority = 2
    rq.DataSet = BytesIO(b"\0\0")
    msg = C_STORE_RQ()
    msg.primitive_to_message(rq)
    assert cstore_wire.store_request("1.2.840.10008.5.1.4.1.1.2", sop, 65535) == encode(msg.command_set, True, True)


@pytest.mark.parametrize("status,comment", [(0x0000, None), (0xB000, None), (0xA900, "does not match"),
                                            (0xC211, "odd")])
def test_store_response_as_pynetdicom_encodes_it_is_read_by_hand(status, comment):
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo, rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = 9, "1.2.840.10008.1", "1.2.3"
    rsp.Status = status
    if comment:
        rsp.ErrorComment = comment
    msg = C_STORE_RSP()
    msg.primitive_to_message(rsp)
    got = cstore_wire.parse_store_response(encode(msg.command_set, True, True))
    assert got == cstore_wire.StoreResponse(9, status, comment or "")
    request = cstore_wire.store_request("1.2.840.10008.5.1.4.1.1.2", "1.2.3", 1)
    assert cstore_wire.parse_store_response(request) is None  # a request is not a response


def _command(primitive: object, message: type) -> bytes:
    msg = message()
    msg.primitive_to_message(primitive)
    return encode(msg.command_set, True, True)


def test_store_request_parsed_as_pynetdicom_decodes_it_and_others_refused():
    rq = C_STORE()
    rq.MessageID, rq.Priority = 513, 1
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.45"
    rq.MoveOriginatorApplicationEntityTitle, rq.MoveOriginatorMessageID = "MOVER", 9
    rq.DataSet = BytesIO(b"\x08\x00\x18\x00\x02\x00\x00\x00\x31\x00")
    parsed = cstore_wire.parse_store_request(_command(rq, C_STORE_RQ))
    assert parsed == cstore_wire.StoreRequest(513, 1, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.45", "MOVER", 9)
    echo = C_ECHO()
    echo.MessageID, echo.AffectedSOPClassUID = 1, "1.2.840.10008.1.1"
    assert cstore_wire.parse_store_request(_command(echo, C_ECHO_RQ)) is None
    assert cstore_wire.parse_store_request(b"\x00\x00\x00\x01\x02") is None  # truncated
    bad_uid = _command(rq, C_STORE_RQ).replace(b"1.2.3.45", b"1.2.3.x5")
    assert cstore_wire.parse_store_request(bad_uid) is None


async def _station(tmp_path: Path) -> tuple[Station, int]:
    port = free_port()
    station = Station(load_config(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port))))
    await station.start()
    return station, port


async def test_live_association_runs_the_fast_path_and_echo_store_release_work(tmp_path):
    station, port = await _station(tmp_path)
    try:
        ct = make_ct(tmp_path / "ct.dcm", _Patient(), "1.2.826.0.1.3680043.8.498.1", "1.2.3.9", "1.2.3.10", 0, 8, 8,
                     "FAST^PATH")
        ae = AE("FASTSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2")
        assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", port, ae_title="RTSTATION")
        assert assoc.is_established
        [server_side] = station.receiver._server.active_associations
        assert server_side._run_reactor.__self__.__class__ is netfast._Accelerator
        assert (await asyncio.to_thread(assoc.send_c_echo)).Status == 0
        assert (await asyncio.to_thread(assoc.send_c_store, ct)).Status == 0
        await asyncio.to_thread(assoc.release)
        stored = await until(lambda: list((tmp_path / "var" / "store").rglob("*.dcm")), what="stored file")
        assert stored[0].read_bytes()[132:].endswith(ct.read_bytes()[-128:])
        assert not list((tmp_path / "var" / "tmp").iterdir())
    finally:
        await station.stop()


async def test_abort_in_the_middle_of_a_dataset_leaves_no_temp_file(tmp_path):
    station, port = await _station(tmp_path)
    try:
        ae = AE("ABORTSCU")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2")
        assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", port, ae_title="RTSTATION")
        assert assoc.is_established
        rq = C_STORE()
        rq.MessageID, rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = 1, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"
        rq.DataSet = BytesIO(b"")
        cx_id = assoc.accepted_contexts[0].context_id
        first_half = P_DATA()
        first_half.presentation_data_value_list = [[cx_id, b"\x03" + _command(rq, C_STORE_RQ)],
                                                   [cx_id, b"\x00" + b"\x08\x00\x16\x00" + b"\x00" * 5000]]
        assoc.dul.send_pdu(first_half)
        tmp = tmp_path / "var" / "tmp"
        await until(lambda: list(tmp.iterdir()), what="the partial temp file")
        await asyncio.to_thread(assoc.abort)
        await until(lambda: not list(tmp.iterdir()), what="the partial temp file to be removed")
        assert not list((tmp_path / "var" / "store").rglob("*.dcm"))
    finally:
        await station.stop()


class _Patient:
    patient_id, study_uid = "FAST1", "1.2.3.8"


async def test_store_arriving_before_the_accepted_handler_returns_waits_for_it(tmp_path, monkeypatch):
    """A C-STORE may land while EVT_ACCEPTED handlers still run (its session is opened in SQLite there): it must
    be served after them, never answered out of order or dropped."""
    station, port = await _station(tmp_path)
    slow_open = station.index.open_session

    def open_session(*args, **kwargs):
        import time
        time.sleep(0.5)
        return slow_open(*args, **kwargs)

    monkeypatch.setattr(station.index, "open_session", open_session)
    events: list = []
    station.subscribe(events.extend)
    try:
        ct = make_ct(tmp_path / "ct.dcm", _Patient(), "1.2.826.0.1.3680043.8.498.2", "1.2.3.9", "1.2.3.10", 0, 8, 8,
                     "SLOW^ACCEPT")
        ae = AE("EARLYSCU")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2")
        ae.dimse_timeout = 10
        assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", port, ae_title="RTSTATION")
        assert assoc.is_established
        assert (await asyncio.to_thread(assoc.send_c_store, ct)).Status == 0
        await asyncio.to_thread(assoc.release)
        closed = await _closed(events, 1)
        assert closed[0].instances == 1 and not closed[0].aborted
    finally:
        await station.stop()


async def test_quick_successive_associations_all_end_released(tmp_path):
    """The fast DUL sends the A-RELEASE-RP at once: the peer's close must not be logged as an abort."""
    station, port = await _station(tmp_path)
    events: list = []
    station.subscribe(events.extend)
    try:
        ae = AE("QUICKSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        for _ in range(15):
            assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", port, ae_title="RTSTATION")
            assert (await asyncio.to_thread(assoc.send_c_echo)).Status == 0
            await asyncio.to_thread(assoc.release)
        closed = await _closed(events, 15)
        assert [c.aborted for c in closed] == [False] * 15
    finally:
        await station.stop()


async def _closed(events: list, n: int) -> list:
    from rtstation_tui.engine.events import AssociationClosed

    for _ in range(500):
        found = [e for e in events if isinstance(e, AssociationClosed)]
        if len(found) >= n:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{n} associations did not close; events: {events}")


def test_sender_associations_never_take_responses_off_the_dimse_queue(tmp_path):
    """pynetdicom's own loop races send_c_store() for the response (30 s DIMSE timeouts under load); ours never
    touches the queue: a response parked there stays for the send_*() call that waits for it."""
    from peers import StoreSCP

    from rtstation_tui.engine.config.nodes import NodeConfig
    from rtstation_tui.engine.outbound.scu import associate, close, contexts_for

    scp = StoreSCP(tmp_path / "scp").start()
    try:
        node = NodeConfig(name="scp", ae_title=scp.aet, host="127.0.0.1", port=scp.port)
        assoc = associate(node, "RTSTATION", contexts_for([("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2")]))
        rsp = C_STORE()
        rsp.MessageIDBeingRespondedTo, rsp.Status = 1, 0
        assoc.dimse.msg_queue.put((1, rsp))
        time.sleep(0.2)  # not a synchronisation: the stock loop would have taken it within ~1 ms
        assert assoc.dimse.msg_queue.get_nowait() == (1, rsp)
        assert assoc._run_reactor.__func__.__name__ == "_requestor_reactor"
        ct = make_ct(tmp_path / "ct.dcm", _Patient(), "1.2.826.0.1.3680043.8.498.3", "1.2.3.9", "1.2.3.10", 0, 8, 8,
                     "SCU^LOOP")
        assert assoc.send_c_store(ct).Status == 0
        close(assoc)
    finally:
        scp.stop()


def test_steady_requestor_only_takes_requestors():
    from rtstation_tui.engine.dimse.requestor import steady_requestor

    assert not steady_requestor(Association(AE("X"), "acceptor"))
    assert steady_requestor(Association(AE("X"), "requestor"))
