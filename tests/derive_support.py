"""Inputs for the [DERIVE] tests: the nelms phantom's CT rebuilt from its geometry, and small synthetic series.

Why the nelms CT is generated: tests/data/nelms keeps "an RTSTRUCT whose CT is absent" on purpose (other tests rely
on it), and contours only need the CT's grid. Geometry measured from the published CT (victorgabr/pps, "3 mm CT"):
512 × 512, PixelSpacing 0.6 mm, ImagePositionPatient (-153.3, -153.3, z) for z = -27 … 30 mm in 3 mm steps, axial,
SliceThickness 3 mm. SOP Instance UIDs are the ones the structure set lists for its series, so the index links them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from helpers import DATA
from rtstation_tui.synthetic import _save

NELMS_SPHERE = DATA / "nelms" / "Sphere_30_0.dcm"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
NELMS_Z = [-27.0 + 3 * k for k in range(20)]


def save(ds: Dataset, path: Path, ts: str = ExplicitVRLittleEndian) -> Path:
    """Write with file meta (the synthetic patients' writer, in Explicit VR: closer to what scanners send)."""
    return _save(ds, path, ts)


def image(sop_class: str, uid: str, series: str, study: str, for_uid: str, *, rows: int, cols: int,
          ipp: Sequence[float], iop: Sequence[float] = (1, 0, 0, 0, 1, 0), spacing: Sequence[float] = (1.0, 1.0),
          number: int = 1, thickness: float = 3.0, patient: str = "DERIVE1", seed: int = 0) -> Dataset:
    """A classic CT/MR image with deterministic, non-trivial 16-bit pixels."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.Modality = "CT" if sop_class == CT_IMAGE else "MR"
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient, "DERIVE^TEST", "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, for_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
    ds.ReferringPhysicianName, ds.SeriesNumber, ds.Manufacturer = "", 3, "rtstation tests"
    ds.SeriesDescription = "source series"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber, ds.SliceThickness = number, thickness
    ds.ImagePositionPatient, ds.ImageOrientationPatient = list(ipp), list(iop)
    ds.PixelSpacing, ds.Rows, ds.Columns = list(spacing), rows, cols
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    if ds.Modality == "CT":
        ds.RescaleType = "HU"
        ds.KVP, ds.AcquisitionNumber = 120, 1
    else:
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.MagneticFieldStrength = 500, 15, 1, 1.5
        ds.ImagingFrequency, ds.ImagedNucleus = 63.9, "1H"
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16).tobytes()
    return ds


def nelms_ct(outdir: Path) -> list[Path]:
    """The nelms phantom's 20-slice CT grid (see module docstring), written into ``outdir``."""
    rs = pydicom.dcmread(NELMS_SPHERE)
    series_item = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    listed = [str(ci.ReferencedSOPInstanceUID) for ci in series_item.ContourImageSequence]
    z_of: dict[str, float] = {}
    for rc in rs.ROIContourSequence:
        for c in rc.ContourSequence:
            z_of.setdefault(str(c.ContourImageSequence[0].ReferencedSOPInstanceUID), float(c.ContourData[2]))
    free_z = [z for z in NELMS_Z if z not in z_of.values()]
    for uid in listed:
        if uid not in z_of:
            z_of[uid] = free_z.pop(0)
    paths = []
    for n, (uid, z) in enumerate(sorted(z_of.items(), key=lambda kv: kv[1]), start=1):
        ds = image(CT_IMAGE, uid, str(series_item.SeriesInstanceUID), str(rs.StudyInstanceUID),
                   str(rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID), rows=512, cols=512,
                   ipp=(-153.3, -153.3, z), spacing=(0.6, 0.6), number=n, patient=str(rs.PatientID), seed=n)
        ds.PatientName = rs.PatientName
        paths.append(save(ds, outdir / f"CT.{uid}.dcm"))
    return paths


def structure_set(images: Sequence[Dataset], rois: Sequence[tuple[str, str, Sequence[Sequence[np.ndarray]]]],
                  uid: str | None = None) -> Dataset:
    """An RTSTRUCT on ``images``: each ROI is (name, interpreted type, contours per image index → list of N×3
    point arrays)."""
    first = images[0]
    rs = Dataset()
    rs.SOPClassUID, rs.SOPInstanceUID, rs.Modality = RT_STRUCT, uid or str(generate_uid()), "RTSTRUCT"
    for k in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
              "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(rs, k, first.get(k))
    rs.SeriesInstanceUID, rs.SeriesNumber, rs.StructureSetLabel = str(generate_uid()), 9, "TESTSS"
    rs.StructureSetDate, rs.StructureSetTime, rs.Manufacturer = "20260101", "120000", "rtstation tests"
    ci = [Dataset() for _ in images]
    for item, im in zip(ci, images):
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = im.SOPClassUID, im.SOPInstanceUID
    ser = Dataset()
    ser.SeriesInstanceUID, ser.ContourImageSequence = first.SeriesInstanceUID, DSequence(ci)
    st = Dataset()
    st.ReferencedSOPClassUID, st.ReferencedSOPInstanceUID = "1.2.840.10008.3.1.2.3.1", first.StudyInstanceUID
    st.RTReferencedSeriesSequence = DSequence([ser])
    fr = Dataset()
    fr.FrameOfReferenceUID, fr.RTReferencedStudySequence = first.FrameOfReferenceUID, DSequence([st])
    rs.ReferencedFrameOfReferenceSequence = DSequence([fr])
    ssroi, obs, rcs = [], [], []
    for n, (name, kind, per_image) in enumerate(rois, start=1):
        a = Dataset()
        a.ROINumber, a.ReferencedFrameOfReferenceUID, a.ROIName = n, first.FrameOfReferenceUID, name
        a.ROIGenerationAlgorithm = "MANUAL"
        ssroi.append(a)
        o = Dataset()
        o.ObservationNumber, o.ReferencedROINumber, o.RTROIInterpretedType, o.ROIInterpreter = n, n, kind, ""
        obs.append(o)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = n, [255, 40 * n % 256, 0]
        items = []
        for idx, polys in enumerate(per_image):
            for pts in polys:
                c = Dataset()
                c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(pts)
                c.ContourData = [round(float(v), 6) for v in np.asarray(pts).ravel()]
                ref = Dataset()
                ref.ReferencedSOPClassUID = images[idx].SOPClassUID
                ref.ReferencedSOPInstanceUID = images[idx].SOPInstanceUID
                c.ContourImageSequence = DSequence([ref])
                items.append(c)
        rc.ContourSequence = DSequence(items)
        rcs.append(rc)
    rs.StructureSetROISequence, rs.RTROIObservationsSequence = DSequence(ssroi), DSequence(obs)
    rs.ROIContourSequence = DSequence(rcs)
    return rs


def circle(center: np.ndarray, u: np.ndarray, v: np.ndarray, radius: float, n: int = 360) -> np.ndarray:
    """N×3 points of a circle in the plane spanned by unit vectors u, v."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return center + radius * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)


def small_bundle(root: Path) -> list[Path]:
    """4 CT slices of 24×24 and a structure set with a circle ROI 'PTV' on the middle two (and an ROI 'Cord')."""
    u, v = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    cts = [image(CT_IMAGE, f"1.2.826.0.1.77.{k + 1}", "1.2.826.0.1.77.100", "1.2.826.0.1.77.200",
                 "1.2.826.0.1.77.300", rows=24, cols=24, ipp=(-12, -12, 3.0 * k), number=k + 1, seed=k,
                 patient="SEGSEND") for k in range(4)]
    ptv = [[circle(np.array([0.0, 0.0, 3.0 * k]), u, v, 6)] if k in (1, 2) else [] for k in range(4)]
    cord = [[circle(np.array([5.0, 5.0, 3.0 * k]), u, v, 2.5)] if k == 2 else [] for k in range(4)]
    rs = structure_set(cts, [("PTV", "PTV", ptv), ("Cord", "ORGAN", cord)], uid="1.2.826.0.1.77.900")
    return [save(ds, root / f"{ds.Modality}{k}.dcm") for k, ds in enumerate([*cts, rs])]
