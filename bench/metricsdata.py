"""A synthetic patient whose RTSTRUCT and RTDOSE look like a treatment's, for the metrics benchmark.

Why not ``synthetic.make_patient`` as it is: its structure set is one 40 mm square and its dose 8×8×4 voxels, so
the DVH would cost nothing. Here the same patient (same UIDs, so the reference chain is unchanged) gets a body
outline, a spherical target with a ring around it (a hole: the even-odd rule), lungs, heart and cord, and a dose
grid of 2.5 mm covering the body on every slice — the work a real plan gives the metrics worker.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rtstation_tui.synthetic import SynthPatient, make_patient

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SLICE = 3.0


def ellipse(cx: float, cy: float, a: float, b: float, z: float, n: int = 96) -> list[float]:
    out: list[float] = []
    for k in range(n):
        t = 2 * math.pi * k / n
        out += [round(cx + a * math.cos(t), 2), round(cy + b * math.sin(t), 2), z]
    return out


def rois(slices: int) -> list[tuple[str, str, list[tuple[int, list[list[float]]]]]]:
    """(name, type, [(slice index, [polygon, ...])]) of each ROI; the target sits mid-way up the patient."""
    zc = SLICE * (slices // 2)
    body, cord, lungs_l, lungs_r, heart, ptv, ring = [], [], [], [], [], [], []
    for i in range(slices):
        z = i * SLICE
        body.append((i, [ellipse(0, 0, 170, 110, z)]))
        cord.append((i, [ellipse(0, 80, 7, 7, z, 32)]))
        for dz, target, (cx, a, b) in ((z - zc, lungs_l, (70, 60, 70)), (z - zc, lungs_r, (-70, 60, 70))):
            f = 1 - (dz / 150) ** 2
            if f > 0.05:
                target.append((i, [ellipse(cx, 0, a * math.sqrt(f), b * math.sqrt(f), z)]))
        f = 1 - ((z - zc + 40) / 50) ** 2
        if f > 0.05:
            heart.append((i, [ellipse(20, -30, 45 * math.sqrt(f), 40 * math.sqrt(f), z)]))
        r2 = 35 ** 2 - (z - zc) ** 2
        if r2 > 1:
            r = math.sqrt(r2)
            ptv.append((i, [ellipse(30, 0, r, r, z, 64)]))
            ring.append((i, [ellipse(30, 0, r + 15, r + 15, z, 64), ellipse(30, 0, r, r, z, 64)]))
    return [("BODY", "EXTERNAL", body), ("PTV", "PTV", ptv), ("PTV_ring", "CONTROL", ring),
            ("Lung_L", "ORGAN", lungs_l), ("Lung_R", "ORGAN", lungs_r), ("Heart", "ORGAN", heart),
            ("Cord", "ORGAN", cord)]


def rewrite_struct(path: Path, p: SynthPatient, slices: int) -> None:
    ds = pydicom.dcmread(path)
    ss_rois, contours_seq, obs_seq = [], [], []
    for n, (name, kind, planes) in enumerate(rois(slices), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = n, ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
        roi.ROIName, roi.ROIGenerationAlgorithm = name, "MANUAL"
        ss_rois.append(roi)
        contours = []
        for i, polygons in planes:
            for poly in polygons:
                ref = Dataset()
                ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT_IMAGE, p.ct_uids[i]
                c = Dataset()
                c.ContourImageSequence, c.ContourGeometricType = Sequence([ref]), "CLOSED_PLANAR"
                c.NumberOfContourPoints, c.ContourData = len(poly) // 3, poly
                contours.append(c)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor, rc.ContourSequence = n, [255, 0, 0], Sequence(contours)
        contours_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType, obs.ROIInterpreter = n, n, kind, ""
        obs_seq.append(obs)
    ds.StructureSetROISequence = Sequence(ss_rois)
    ds.ROIContourSequence = Sequence(contours_seq)
    ds.RTROIObservationsSequence = Sequence(obs_seq)
    ds.save_as(path, enforce_file_format=True)


def rewrite_dose(path: Path, slices: int, spacing: float = 2.5) -> None:
    ds = pydicom.dcmread(path)
    cols, rows = int(360 / spacing) + 1, int(240 / spacing) + 1
    x = -180 + spacing * np.arange(cols)
    y = -120 + spacing * np.arange(rows)
    z = SLICE * np.arange(slices)
    zc = SLICE * (slices // 2)
    d2 = (x[None, None, :] - 30) ** 2 + y[None, :, None] ** 2 + (z[:, None, None] - zc) ** 2
    dose = 60.0 * np.exp(-d2 / (2 * 45.0 ** 2)) + 0.5  # Gy: a 60 Gy hot spot in the target, a low bath
    scaling = 1e-5
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, slices
    ds.GridFrameOffsetVector = [float(v) for v in z]
    ds.ImagePositionPatient, ds.PixelSpacing = [-180.0, -120.0, 0.0], [spacing, spacing]
    ds.DoseGridScaling = scaling
    ds.PixelData = np.round(dose / scaling).astype("<u4").tobytes()
    ds.save_as(path, enforce_file_format=True)


def treatment_patient(folder: Path, slices: int, patient_id: str, label: str) -> SynthPatient:
    p = make_patient(folder, patient_id, slices=slices, rows=64, cols=64, label=label, seed=f"metrics-{patient_id}")
    rewrite_struct(p.struct, p, slices)
    assert p.dose is not None
    rewrite_dose(p.dose, slices)
    return p
