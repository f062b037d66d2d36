"""The pydicom-free header read of plain images gives exactly what pydicom gives, or steps aside (None)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from helpers import DATA
from rtstation_tui.engine.dicom.header import read_header, read_header_pydicom
from rtstation_tui.engine.dicom.quickheader import quick_info
from rtstation_tui.synthetic import make_ct_bulk, make_patient

ALL_TEST_FILES = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))


def _pydicom(path: Path):
    try:
        return read_header_pydicom(path)
    except Exception as exc:  # noqa: BLE001 - a broken file: the quick read must have stepped aside
        return exc


@pytest.mark.parametrize("path", ALL_TEST_FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_quick_read_equals_pydicom_or_steps_aside(path):
    quick = quick_info(path)
    if quick is not None:
        assert quick == _pydicom(path)


def test_plain_images_take_the_quick_path_and_rt_objects_do_not(tmp_path):
    patient = make_patient(tmp_path / "p", "QH1", slices=3)
    for ct in patient.ct:
        assert quick_info(ct) == read_header_pydicom(ct)
    for rt in (patient.struct, patient.plan, patient.dose):
        assert quick_info(rt) is None and read_header(rt) == read_header_pydicom(rt)
    assert quick_info(DATA / "breast_boost" / "ct.0.dcm") is not None


def test_explicit_vr_with_sequences_and_odd_values(tmp_path):
    [ct] = make_ct_bulk(tmp_path / "a", 1, rows=8, cols=8)
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SourceImageSequence = [pydicom.Dataset()]
    ds.SourceImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    ds.InstanceNumber = "  7"
    ds.SeriesDescription = "AX 3mm "
    out = tmp_path / "explicit.dcm"
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    assert quick_info(out) == read_header_pydicom(out) and quick_info(out).instance_number == 7
    ds.PatientName = "M\u00fcller^Hans"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    assert quick_info(out) is None  # non-ASCII: pydicom decodes it
    ds.PatientName = "PLAIN"
    ds.ReferencedSeriesSequence = [pydicom.Dataset()]
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    assert quick_info(out) is None  # a reference that info_from_dataset follows


def test_truncated_and_foreign_files_step_aside(tmp_path):
    [ct] = make_ct_bulk(tmp_path / "a", 1, rows=8, cols=8)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(ct.read_bytes()[:300])
    assert quick_info(cut) is None
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    assert quick_info(junk) is None
    assert quick_info(tmp_path / "missing.dcm") is None


def test_hostile_corpus_quick_read_equals_pydicom_or_steps_aside(tmp_path):
    from corpus import build

    files = build(tmp_path / "corpus")
    assert files
    for name, path in files.items():
        quick = quick_info(path)
        if quick is not None:
            assert quick == _pydicom(path), name
