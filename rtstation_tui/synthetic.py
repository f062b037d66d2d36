"""Synthetic RT patients: a CT series + RTSTRUCT + RTPLAN (photon or ion) + RTDOSE whose references all resolve.

Why: no public data set is complete and small (see tests/data/README.md), and the demo, the tests and the
benchmarks all need complete patients of any size. Everything is generated with pydicom; nothing is copied.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"


@dataclass
class SynthPatient:
    patient_id: str
    study_uid: str
    ct: list[Path] = field(default_factory=list)
    ct_uids: list[str] = field(default_factory=list)
    struct: Path | None = None
    struct_uid: str = ""
    plan: Path | None = None
    plan_uid: str = ""
    dose: Path | None = None
    dose_uid: str = ""

    @property
    def files(self) -> list[Path]:
        return [*self.ct, *(p for p in (self.struct, self.plan, self.dose) if p is not None)]


class _Uids:
    """Random UIDs, or reproducible ones from a seed (benchmarks want the same data twice)."""

    def __init__(self, seed: str | None) -> None:
        self.seed, self.n = seed, 0

    def __call__(self) -> str:
        if self.seed is None:
            return str(generate_uid())
        self.n += 1
        return str(generate_uid(entropy_srcs=[self.seed, str(self.n)]))


def _base(ds: Dataset, sop_class: str, sop_uid: str, modality: str, p: SynthPatient, series_uid: str,
          for_uid: str, name: str) -> None:
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, sop_uid, modality
    ds.PatientID, ds.PatientName = p.patient_id, name
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = p.study_uid, series_uid, for_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
    ds.ReferringPhysicianName, ds.SeriesNumber, ds.Manufacturer = "", 1, "rtstation synthetic"


def _save(ds: Dataset, path: Path, ts: str = ImplicitVRLittleEndian) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True, enforce_file_format=True)
    return path


def make_ct(path: Path, p: SynthPatient, uid: str, series_uid: str, for_uid: str, index: int, rows: int,
            cols: int, name: str, thickness: float = 3.0) -> Path:
    ds = Dataset()
    _base(ds, CT_IMAGE, uid, "CT", p, series_uid, for_uid, name)
    ds.InstanceNumber, ds.SliceThickness = index + 1, thickness
    ds.ImagePositionPatient = [-0.5 * cols, -0.5 * rows, index * thickness]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    # a deterministic, not-all-zero pattern: realistic size without costing time to generate
    row = bytes((index + c) & 0xFF for c in range(cols * 2))
    ds.PixelData = row * rows
    return _save(ds, path)


def make_patient(outdir: Path, patient_id: str = "SYN001", *, name: str = "SYNTHETIC^PATIENT", slices: int = 10,
                 rows: int = 64, cols: int = 64, label: str = "SYN1", machine: str = "TrueBeam1",
                 approval: str = "APPROVED", ion: bool = False, with_dose: bool = True, seed: str | None = None,
                 ) -> SynthPatient:
    """Write one complete patient into ``outdir`` (CT/, then RS/RP/RD files)."""
    uid = _Uids(seed)
    p = SynthPatient(patient_id, uid())
    ct_series, for_uid = uid(), uid()
    outdir = Path(outdir)
    for i in range(slices):
        sop = uid()
        p.ct_uids.append(sop)
        p.ct.append(make_ct(outdir / "CT" / f"CT.{sop}.dcm", p, sop, ct_series, for_uid, i, rows, cols, name))
    p.struct_uid = uid()
    p.struct = _save(_struct(p, ct_series, for_uid, uid(), name), outdir / f"RS.{p.struct_uid}.dcm")
    p.plan_uid = uid()
    p.plan = _save(_plan(p, for_uid, uid(), name, label, machine, approval, ion), outdir / f"RP.{p.plan_uid}.dcm")
    if with_dose:
        p.dose_uid = uid()
        p.dose = _save(_dose(p, for_uid, uid(), name), outdir / f"RD.{p.dose_uid}.dcm")
    return p



def add_plan(outdir: Path, p: SynthPatient, label: str, *, approval: str = "UNAPPROVED", machine: str = "TrueBeam1",
             own_struct: bool = True, name: str = "SYNTHETIC^PATIENT") -> SynthPatient:
    """Another plan (with its dose, and its own structure set unless ``own_struct`` is False) on ``p``'s CT: the
    returned SynthPatient shares the CT and holds the new objects (a second plan of the same patient)."""
    ref = pydicom.dcmread(p.ct[0], stop_before_pixels=True)
    ct_series, for_uid = str(ref.SeriesInstanceUID), str(ref.FrameOfReferenceUID)
    q = SynthPatient(p.patient_id, p.study_uid, ct=list(p.ct), ct_uids=list(p.ct_uids))
    outdir = Path(outdir)
    if own_struct:
        q.struct_uid = str(generate_uid())
        q.struct = _save(_struct(q, ct_series, for_uid, str(generate_uid()), name), outdir / f"RS.{q.struct_uid}.dcm")
    else:
        q.struct, q.struct_uid = p.struct, p.struct_uid
    q.plan_uid = str(generate_uid())
    q.plan = _save(_plan(q, for_uid, str(generate_uid()), name, label, machine, approval, False),
                   outdir / f"RP.{q.plan_uid}.dcm")
    q.dose_uid = str(generate_uid())
    q.dose = _save(_dose(q, for_uid, str(generate_uid()), name), outdir / f"RD.{q.dose_uid}.dcm")
    return q

def _struct(p: SynthPatient, ct_series: str, for_uid: str, series_uid: str, name: str) -> Dataset:
    ds = Dataset()
    _base(ds, RT_STRUCT, p.struct_uid, "RTSTRUCT", p, series_uid, for_uid, name)
    ds.StructureSetLabel, ds.StructureSetDate, ds.StructureSetTime = "SYNTH", "20260101", "120000"
    images = [Dataset() for _ in p.ct_uids]
    for item, sop in zip(images, p.ct_uids):
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CT_IMAGE, sop
    series = Dataset()
    series.SeriesInstanceUID, series.ContourImageSequence = ct_series, Sequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID, study.RTReferencedSeriesSequence = p.study_uid, Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID, frame.RTReferencedStudySequence = for_uid, Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName, roi.ROIGenerationAlgorithm = 1, for_uid, "BODY", "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    contours = []
    for i, sop in enumerate(p.ct_uids):
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT_IMAGE, sop
        c = Dataset()
        c.ContourImageSequence, c.ContourGeometricType = Sequence([ref]), "CLOSED_PLANAR"
        z = i * 3.0
        c.NumberOfContourPoints, c.ContourData = 4, [-20, -20, z, 20, -20, z, 20, 20, z, -20, 20, z]
        contours.append(c)
    rc = Dataset()
    rc.ReferencedROINumber, rc.ROIDisplayColor, rc.ContourSequence = 1, [255, 0, 0], Sequence(contours)
    ds.ROIContourSequence = Sequence([rc])
    obs = Dataset()
    obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType, obs.ROIInterpreter = 1, 1, "EXTERNAL", ""
    ds.RTROIObservationsSequence = Sequence([obs])
    return ds


def _plan(p: SynthPatient, for_uid: str, series_uid: str, name: str, label: str, machine: str, approval: str,
          ion: bool) -> Dataset:
    ds = Dataset()
    _base(ds, RT_ION_PLAN if ion else RT_PLAN, p.plan_uid, "RTPLAN", p, series_uid, for_uid, name)
    ds.RTPlanLabel, ds.RTPlanName, ds.RTPlanDate, ds.RTPlanTime = label, f"{label} plan", "20260101", "120000"
    ds.RTPlanGeometry, ds.ApprovalStatus, ds.PlanIntent = "PATIENT", approval, "CURATIVE"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = RT_STRUCT, p.struct_uid
    ds.ReferencedStructureSetSequence = Sequence([ref])
    beams, refs = [], []
    for n, gantry in enumerate((0, 90, 180, 270), start=1):
        cp = Dataset()
        cp.ControlPointIndex, cp.GantryAngle = 0, gantry
        if ion:
            cp.NominalBeamEnergy = 150 + 10 * n
        else:
            cp.NominalBeamEnergy = 6
        b = Dataset()
        b.BeamNumber, b.BeamName, b.TreatmentMachineName = n, f"G{gantry}", machine
        b.RadiationType = "PROTON" if ion else "PHOTON"
        b.TreatmentDeliveryType, b.NumberOfControlPoints = "TREATMENT", 1
        if ion:
            b.IonControlPointSequence = Sequence([cp])
        else:
            b.BeamType = "STATIC"
            b.ControlPointSequence = Sequence([cp])
        beams.append(b)
        r = Dataset()
        r.ReferencedBeamNumber, r.BeamMeterset = n, 100.0 + n
        refs.append(r)
    if ion:
        ds.IonBeamSequence = Sequence(beams)
    else:
        ds.BeamSequence = Sequence(beams)
    fg = Dataset()
    fg.FractionGroupNumber, fg.NumberOfFractionsPlanned, fg.NumberOfBeams = 1, 25, len(beams)
    fg.ReferencedBeamSequence = Sequence(refs)
    ds.FractionGroupSequence = Sequence([fg])
    return ds


def _dose(p: SynthPatient, for_uid: str, series_uid: str, name: str) -> Dataset:
    ds = Dataset()
    _base(ds, RT_DOSE, p.dose_uid, "RTDOSE", p, series_uid, for_uid, name)
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = RT_PLAN, p.plan_uid
    ds.ReferencedRTPlanSequence = Sequence([ref])
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 8, 4
    ds.GridFrameOffsetVector = [0.0, 3.0, 6.0, 9.0]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-20, -20, 0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.DoseGridScaling = [5.0, 5.0], 0.001
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    rnd = random.Random(p.dose_uid)
    ds.PixelData = bytes(rnd.getrandbits(8) for _ in range(8 * 8 * 4 * 4))
    return ds


def make_ct_bulk(outdir: Path, count: int, rows: int = 512, cols: int = 512, patient_id: str = "BULK",
                 seed: str | None = None) -> list[Path]:
    """``count`` CT slices of one series (512×512: 0.53 MB each, like the benchmark's reference files)."""
    uid = _Uids(seed)
    p = SynthPatient(patient_id, uid())
    series, for_uid = uid(), uid()
    return [make_ct(Path(outdir) / f"CT.{i:05d}.dcm", p, uid(), series, for_uid, i, rows, cols, "BULK^CT")
            for i in range(count)]


__all__ = ["SynthPatient", "make_patient", "make_ct_bulk", "make_ct"]
