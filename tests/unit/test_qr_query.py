"""[QR] pure parts: C-FIND identifiers from command-line terms, the SCP's matching rules, answers as rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from rtstation_tui.engine.qr.matching import matches
from rtstation_tui.engine.qr.query import QueryError, Terms, build_identifier, model_for, row


def test_identifier_has_the_levels_return_keys_and_the_matching_keys() -> None:
    ds = build_identifier(Terms("series", patient="QR*", modality="RTPLAN", study_date="20260101-",
                                tags=("(300A,0002)=A*", "(300C,0002)")))
    assert ds.QueryRetrieveLevel == "SERIES" and ds.PatientID == "QR*" and ds.Modality == "RTPLAN"
    assert ds.StudyDate == "20260101-" and ds.RTPlanLabel == "A*"
    assert "SeriesInstanceUID" in ds and ds.SeriesInstanceUID in (None, "")
    assert ds["ReferencedRTPlanSequence"].VR == "SQ"


@pytest.mark.parametrize("terms, says", [
    (Terms("nowhere"), "--level 'nowhere'"),
    (Terms("study", study_date="2026-01-01"), "--study-date"),
    (Terms("study", tags=("0010,0020=x",)), "(gggg,eeee)=value"),
    (Terms("study", tags=("(0009,0010)=x",)), "not in the DICOM dictionary"),
    (Terms("patient", modality="CT"), "--modality needs"),
])
def test_bad_terms_say_what_is_allowed(terms: Terms, says: str) -> None:
    with pytest.raises(QueryError, match=says.replace("(", r"\(").replace(")", r"\)")):
        build_identifier(terms)


def test_patient_root_first_study_root_when_only_that() -> None:
    assert model_for("image", ["patient", "study"]) == "patient"
    assert model_for("image", ["study"]) == "study"
    with pytest.raises(QueryError, match="no PATIENT level"):
        model_for("patient", ["study"])


@pytest.mark.parametrize("key, vr, value, expected", [
    ("", "LO", "anything", True), ("QR*", "LO", "QRA", True), ("QR?", "LO", "QRAB", False),
    ("Q[1]*", "LO", "Q[1]x", True), ("doe^*", "PN", "DOE^JOHN", True), ("1.2\\1.3", "UI", "1.3", True),
    ("1.2", "UI", "1.2.3", False), ("20260101-", "DA", "20260102", True), ("-20251231", "DA", "20260101", False),
    ("20260101-20260131", "DA", "20260115", True), ("1200-1300", "TM", "125959.123", True),
    ("CT", "CS", ["CT", "RTPLAN"], True),
])
def test_matching(key: str, vr: str, value: object, expected: bool) -> None:
    assert matches(key, vr, value) is expected


def test_rows_drop_query_bookkeeping_and_keep_sequences() -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel, ds.RetrieveAETitle, ds.PatientID = "IMAGE", "ORTHANC", "QRA"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    ds.ReferencedRTPlanSequence = [item]
    assert row(ds) == {"PatientID": "QRA", "ReferencedRTPlanSequence": [{"ReferencedSOPInstanceUID": "1.2.3"}]}


def test_a_structure_set_naming_only_contour_images_finds_their_series(tmp_path: Path) -> None:
    from rtstation_tui.engine.config.model import Config
    from rtstation_tui.engine.config.nodes import NodeConfig
    from rtstation_tui.engine.qr.remote import RemoteInstance, RemotePatient, RemoteSeries
    from rtstation_tui.engine.qr.retrieve import Retriever
    from rtstation_tui.engine.store.files import Store
    from rtstation_tui.engine.store.index import Index

    def series(uid: str, modality: str, sops: list[str]) -> RemoteSeries:
        return RemoteSeries("1.9", uid, modality, tuple(RemoteInstance(s, "", uid, "1.9", modality) for s in sops))

    remote = RemotePatient("P", [series("1.1", "CT", ["1.1.1", "1.1.2"]), series("1.2", "CT", ["1.2.1"]),
                                 series("1.3", "RTSTRUCT", ["1.1.1"])])
    r = Retriever(Config(), NodeConfig(name="n", ae_title="N", host="127.0.0.1"), Store(tmp_path), Index(tmp_path),
                  lambda u, p: None, lambda t: None)
    assert r._series_holding(remote, {"1.1.2"}) == {"1.1"}
    assert r._series_holding(remote, set()) == set()


def test_retrieve_wants_one_exact_patient_id(tmp_path: Path) -> None:
    from helpers import rtstation

    proc = rtstation("--data-dir", str(tmp_path), "retrieve", "--from", "A@127.0.0.1:9", "--patient", "QR*",
                     check=False)
    assert proc.returncode == 2 and "one exact PatientID" in proc.stderr
