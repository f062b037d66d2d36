"""``python -m bench.derive``: the [DERIVE] speed targets (not timed tests).

- split: one Legacy Converted Enhanced MR of 300 frames of 256 × 256 into classic images, target < 2 s;
- overlay: 10 ROIs on 150 slices of 512 × 512 (rasterize, copy, pack overlay planes), target < 5 s.
Inputs are made in memory before the clock starts; nothing is written. Results go to ``bench/results-derive.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rtstation_tui.engine.derive.contours import ContourRequest, overlay_for
from rtstation_tui.engine.derive.enhanced import split_enhanced

RESULTS = Path(__file__).parent / "results-derive.json"
MR, CT = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2"


def _image(sop_class: str, k: int, size: int, series: str, study: str, frame_of_ref: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, str(generate_uid()), "MR" if sop_class == MR else "CT"
    ds.PatientID, ds.PatientName, ds.StudyInstanceUID, ds.SeriesInstanceUID = "BENCH", "BENCH^DERIVE", study, series
    ds.FrameOfReferenceUID, ds.InstanceNumber, ds.SliceThickness = frame_of_ref, k + 1, 2.0
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-128.0, -128.0, 2.0 * k], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.Rows, ds.Columns = [256 / size, 256 / size], size, size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.ImageType = 0, 1, ["ORIGINAL", "PRIMARY", "AXIAL"]
    if sop_class == MR:
        ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType, ds.EchoTime = "SE", "NONE", "2D", 10
        ds.RepetitionTime, ds.MagneticFieldStrength, ds.ImagingFrequency = 500, 1.5, 63.9
    ds.PixelData = np.full((size, size), k, dtype=np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _series(sop_class: str, n: int, size: int) -> list[Dataset]:
    series, study, frame_of_ref = (str(generate_uid()) for _ in range(3))
    return [_image(sop_class, k, size, series, study, frame_of_ref) for k in range(n)]


def _structure_set(images: list[Dataset], rois: int) -> Dataset:
    rs = Dataset()
    rs.SOPClassUID, rs.SOPInstanceUID, rs.Modality = "1.2.840.10008.5.1.4.1.1.481.3", str(generate_uid()), "RTSTRUCT"
    rs.StructureSetLabel = "BENCH"
    fr = Dataset()
    fr.FrameOfReferenceUID = images[0].FrameOfReferenceUID
    rs.ReferencedFrameOfReferenceSequence = Sequence([fr])
    t = np.linspace(0, 2 * np.pi, 128, endpoint=False)
    names, contours = [], []
    for r in range(rois):
        item = Dataset()
        item.ROINumber, item.ROIName = r + 1, f"ROI{r + 1}"
        names.append(item)
        cx, cy, radius = -80.0 + 18 * r, -20.0 + 4 * r, 10.0 + 3 * r
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = r + 1, [255, 0, 0]
        per_slice = []
        for im in images:
            z = float(im.ImagePositionPatient[2])
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            pts = np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t), np.full_like(t, z)], axis=1)
            c.NumberOfContourPoints, c.ContourData = len(t), [round(float(v), 3) for v in pts.ravel()]
            per_slice.append(c)
        rc.ContourSequence = Sequence(per_slice)
        contours.append(rc)
    rs.StructureSetROISequence, rs.ROIContourSequence = Sequence(names), Sequence(contours)
    return rs


def bench_split(frames: int, size: int) -> dict[str, float]:
    classic = _series(MR, frames, size)
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(classic, str(generate_uid()), 9, str(generate_uid()), 1)
    start = time.perf_counter()
    out = split_enhanced(mf)
    seconds = time.perf_counter() - start
    assert len(out) == frames
    return {"frames": frames, "size": size, "seconds": round(seconds, 3), "target_s": 2.0}


def bench_overlay(slices: int, size: int, rois: int) -> dict[str, float]:
    images = _series(CT, slices, size)
    rs = _structure_set(images, rois)
    start = time.perf_counter()
    derived = overlay_for(rs, images, ContourRequest())
    seconds = time.perf_counter() - start
    assert len(derived.datasets) == slices and len(derived.rois) == rois
    return {"slices": slices, "size": size, "rois": rois, "seconds": round(seconds, 3), "target_s": 5.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.derive", description=__doc__)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--slices", type=int, default=150)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    results = {"split": bench_split(args.frames, 256), "overlay": bench_overlay(args.slices, 512, 10)}
    for name, r in results.items():
        verdict = "ok" if r["seconds"] < r["target_s"] else "SLOW"
        print(f"{name:8s} {r['seconds']:7.3f} s  (target < {r['target_s']} s)  {verdict}  {r}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
