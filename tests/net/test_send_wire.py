"""The sender's stored-bytes path (``dimse/wire_send.py``): C-STOREs framed by hand from the stored file reach DCMTK
storescp (small PDUs: many fragments per object) and Orthanc byte for byte, and pynetdicom's ``send_c_store`` is
never called for them. The fallback for a peer that refuses the stored syntax (Implicit VR only) is
``test_send_syntaxes.py``, which runs with the fast paths on; stock mode is ``test_sender.py``'s ``pynetdicom_mode``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Callable

import pydicom
import pytest

from helpers import BREAST, PEER_ENV, dataset_bytes, dcmtk
from peers import Orthanc, StoreSCP
from rtstation_tui.engine.config.nodes import NodeConfig
from rtstation_tui.engine.outbound.scu import accepted_pairs, associate, close, contexts_for, store, stored_sending
from rtstation_tui.engine.outbound.verify import checked


def _facts(path: str) -> tuple[str, str, str, int]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID), Path(path).stat().st_size


def _refuse(*_a: object, **_k: object) -> None:
    pytest.fail("pynetdicom's send_c_store was used for a stored object")


def _send_by_hand(aet: str, port: int, files: list[str],
                  stock: Callable[[Any], Callable[..., Any]] = lambda _stock: _refuse) -> list[int | None]:
    """Every file over one association through ``store`` with the hand-framed path on; ``stock(send_c_store)`` is
    what pynetdicom's own send becomes (by default: it fails the test)."""
    facts = [_facts(f) for f in files]
    node = NodeConfig(name="N", ae_title=aet, host="127.0.0.1", port=port, timeout_s=10)
    assoc = associate(node, "RTSTATION", contexts_for({(c, ts) for c, _u, ts, _s in facts}))
    assoc.send_c_store = stock(assoc.send_c_store)
    statuses = []
    try:
        accepted = accepted_pairs(assoc)
        with stored_sending(assoc, fast_paths=True) as wire:
            assert wire is not None, "no hand-framed path on a plain TCP association with fast paths on"
            for f, (cls, uid, ts, size) in zip(files, facts):
                broken, offset = checked(f, size, ts)
                assert broken is None
                out = store(assoc, f, cls, ts, size, 10, accepted, sop_uid=uid, offset=offset, wire=wire)
                assert out.ok, out.error
                statuses.append(out.status)
    finally:
        close(assoc)
    assert not assoc.is_aborted, "the association ended in an abort, not a release"
    return statuses


def test_stored_bytes_framed_by_hand_reach_storescp_and_orthanc_byte_for_byte(tmp_path):
    scp = StoreSCP(tmp_path / "scp", extra=("--max-pdu", "4096")).start()
    orthanc = Orthanc(tmp_path / "orthanc").start()
    try:
        assert _send_by_hand(scp.aet, scp.port, BREAST) == [0] * len(BREAST)
        assert _send_by_hand(orthanc.aet, orthanc.dicom_port, BREAST) == [0] * len(BREAST)
        stored = {_facts(f)[1]: f for f in BREAST}
        received = {_facts(str(f))[1]: f for f in scp.files()}
        assert received.keys() == stored.keys()
        for uid, f in received.items():
            assert dataset_bytes(f) == dataset_bytes(Path(stored[uid])), f"storescp got other bytes for {uid}"
        for uid, f in stored.items():
            got = tmp_path / "o.dcm"
            got.write_bytes(orthanc.file_of(uid))
            assert dataset_bytes(got) == dataset_bytes(Path(f)), f"Orthanc holds other bytes for {uid}"
    finally:
        scp.stop()
        orthanc.stop()


def test_an_implicit_only_peer_gets_the_stored_ones_by_hand_and_the_other_decoded_on_the_same_association(tmp_path):
    """Hand-framed, then pynetdicom for the fallback (the socket handed back), then hand-framed again."""
    explicit = tmp_path / "rtss-explicit.dcm"
    rtss = next(f for f in BREAST if f.endswith("rtss.dcm"))
    subprocess.run([dcmtk("dcmconv"), "+te", rtss, str(explicit)], env=PEER_ENV, check=True, capture_output=True)
    ct, plan = (next(f for f in BREAST if f.endswith(name)) for name in ("ct.0.dcm", "rtplan.dcm"))
    scp = StoreSCP(tmp_path / "scp", extra=("+xi",)).start()
    by_pynetdicom: list[str] = []

    def counting(stock: Callable[..., Any]) -> Callable[..., Any]:
        def send(dataset: Any, *args: Any, **kwargs: Any) -> Any:
            by_pynetdicom.append(str(dataset.SOPInstanceUID))
            return stock(dataset, *args, **kwargs)
        return send

    try:
        assert _send_by_hand(scp.aet, scp.port, [ct, str(explicit), plan], counting) == [0, 0, 0]
        received = {_facts(str(f))[1]: f for f in scp.files()}
    finally:
        scp.stop()
    assert by_pynetdicom == [_facts(rtss)[1]]  # only the one the peer took in no stored syntax
    assert received.keys() == {_facts(f)[1] for f in (ct, rtss, plan)}
    for f in (ct, plan):
        assert dataset_bytes(received[_facts(f)[1]]) == dataset_bytes(Path(f))
    decoded = pydicom.dcmread(received[_facts(rtss)[1]])
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    original = pydicom.dcmread(rtss)
    assert decoded.SOPInstanceUID == original.SOPInstanceUID
    assert decoded.ROIContourSequence[0].ReferencedROINumber == original.ROIContourSequence[0].ReferencedROINumber
