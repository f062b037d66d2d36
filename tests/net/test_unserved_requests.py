"""[HARDEN2] 15: requests the station does not serve are answered at once, in both pynetdicom modes.

Before: a C-FIND or N-ACTION on a storage presentation context raised inside pynetdicom's storage SCP, nothing was
answered and the peer waited for its DIMSE timeout; a Modality Worklist C-FIND context was accepted (pynetdicom
took it for storage) and every query then failed. Now the context is refused at negotiation, and an unserved request
on an accepted context gets 0x0211 (unrecognised operation) at once, the association staying usable."""

from __future__ import annotations

import subprocess
import time

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from helpers import BREAST, PEER_ENV, Serve, dcmtk, station_toml, stored_files, write_config

CT = "1.2.840.10008.5.1.4.1.1.2"
MWL = "1.2.840.10008.5.1.4.31"


def test_worklist_context_is_refused_at_negotiation(tmp_path, port, pynetdicom_mode):
    server = Serve(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port)),
                   tmp_path / "serve.log").start()
    try:
        started = time.monotonic()
        proc = subprocess.run([dcmtk("findscu"), "-W", "-aec", "RTSTATION", "-to", "10", "-td", "30", "-k",
                               "PatientName=*", "127.0.0.1", str(port)], env=PEER_ENV, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode != 0 and "No Acceptable Presentation Contexts" in proc.stderr, proc.stderr
        assert time.monotonic() - started < 5
        ae = AE(ae_title="PYSCU")
        ae.add_requested_context(MWL)
        ae.add_requested_context(CT)
        assoc = ae.associate("127.0.0.1", port, ae_title="RTSTATION")
        try:
            assert [(cx.abstract_syntax, cx.result) for cx in assoc.rejected_contexts] == [(MWL, 0x03)]
            assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [CT]
        finally:
            assoc.release()
    finally:
        server.kill()


def test_find_and_action_on_a_storage_context_are_answered_at_once(tmp_path, port, pynetdicom_mode):
    server = Serve(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port)),
                   tmp_path / "serve.log").start()
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CT)
    ae.dimse_timeout = 20
    assoc = ae.associate("127.0.0.1", port, ae_title="RTSTATION")
    try:
        assert assoc.is_established
        query = Dataset()
        query.PatientName, query.QueryRetrieveLevel = "*", "PATIENT"
        started = time.monotonic()
        statuses = [status for status, _ in assoc.send_c_find(query, CT)]
        assert statuses and statuses[0].get("Status") == 0x0211, f"no 0x0211 answer: {statuses}"
        assert time.monotonic() - started < 5, "the C-FIND waited for the DIMSE timeout"
        info = Dataset()
        info.PatientID = "1"
        started = time.monotonic()
        status, _ = assoc.send_n_action(info, 1, CT, "1.2.3.4")
        assert status.get("Status") == 0x0211, f"no 0x0211 answer: {status}"
        assert time.monotonic() - started < 5, "the N-ACTION waited for the DIMSE timeout"
        assert assoc.is_established, "the association stays usable"
        ct = next(p for p in BREAST if dcmread(p, stop_before_pixels=True).SOPClassUID == CT)
        assert assoc.send_c_store(ct).Status == 0x0000
    finally:
        assoc.release()
        server.kill()
    assert len(stored_files(tmp_path / "var")) == 1
    assert "answered C-FIND from PYSCU@127.0.0.1 on the CT Image Storage context with 0x0211" in server.text()
    assert "answered N-ACTION from PYSCU@127.0.0.1" in server.text()
