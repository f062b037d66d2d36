"""DVH accuracy against analytical values, and the rasterization rules it rests on.

Expected values: Nelms B.E. et al., "Methods, software and datasets to verify DVH calculations against analytical
values: Twenty years late(r)", Med. Phys. 42(8), 4435-4448 (2015); numbers copied from the spreadsheet published
with the data set, as kept in github.com/victorgabr/pps (commit 5a798d4),
``tests/tests_validation/benchmark_data/analytical_data.xlsx``, sheet "Analytical", rows Sphere_30_0 and Cone_30_0
(3 mm CT, 3 mm dose voxels). Doses in cGy there, Gy here. "Z(AP)" is the antero-posterior gradient grid
(Linear_AntPost), "Y(SI)" the superior-inferior one (Linear_SupInf).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import DATA
from rtstation_tui.engine.metrics.dosegrid import DoseError, read_dose
from rtstation_tui.engine.metrics.dvh import compute_dvh
from rtstation_tui.engine.metrics.raster import PlaneGrid, even_odd_mask
from rtstation_tui.engine.metrics.structures import Plane, Roi, read_structures, roi_volume_cc

NELMS = DATA / "nelms"
DOSE = {"AP": "Linear_AntPost_3mm_Aligned.dcm", "SI": "Linear_SupInf_3mm_Aligned.dcm"}
# (structure, gradient): volume cc, Dmin, Dmax, Dmean, D95, D5 in Gy (analytical_data.xlsx, sheet "Analytical")
ANALYTICAL = {
    ("Sphere_30_0", "AP"): (7.2383814556463504, 4.00, 28.00, 16.00, 7.245, 24.75),
    ("Sphere_30_0", "SI"): (7.2383814556463504, 2.50, 29.50, 16.00, 7.245, 24.75),
    ("Cone_30_0", "AP"): (4.2976990501108396, 4.00, 28.00, 16.00, 7.895, 24.10),
    ("Cone_30_0", "SI"): (4.2976990501108396, 2.50, 29.50, 23.0657878711489, 13.36, 29.02),
}


@pytest.mark.parametrize("structure, gradient", sorted(ANALYTICAL))
def test_dvh_matches_the_analytical_phantom(structure: str, gradient: str) -> None:
    ss = read_structures(NELMS / f"{structure}.dcm")
    dvh = compute_dvh(ss.roi(structure), None, read_dose(NELMS / DOSE[gradient]))
    volume, dmin, dmax, dmean, d95, d5 = ANALYTICAL[(structure, gradient)]
    assert dvh.volume_cc == pytest.approx(volume, rel=0.03)
    assert dvh.mean_gy == pytest.approx(dmean, rel=0.01)
    assert dvh.dose_at(95) == pytest.approx(d95, rel=0.03)
    assert dvh.dose_at(5) == pytest.approx(d5, rel=0.03)
    assert dvh.min_gy == pytest.approx(dmin, rel=0.05)
    assert dvh.max_gy == pytest.approx(dmax, rel=0.05)
    assert dvh.outside_grid_cc == 0
    assert dvh.volume_at(0.0) == pytest.approx(dvh.volume_cc)  # the cumulative DVH starts at the whole volume
    assert dvh.volume_at(dmax + 0.1) == 0


def test_slab_thickness_is_the_slice_spacing() -> None:
    ss = read_structures(NELMS / "Sphere_30_0.dcm")
    assert ss.thickness == 3.0
    assert [r.name for r in ss.rois] == ["POI_1", "Sphere_30_0"]
    assert ss.roi("POI_1").planes == ()  # a point encloses no volume


def square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])


def test_even_odd_rule_makes_a_hole_of_a_nested_polygon() -> None:
    grid = PlaneGrid(0.0, 0.0, 0.1, 200, 200)
    mask = even_odd_mask([square(0, 0, 20), square(5, 5, 10)], grid)
    assert mask.sum() * 0.01 == pytest.approx(400 - 100)
    assert not mask[100, 100] and mask[20, 20]


def test_volume_of_a_ring_counts_the_hole_out() -> None:
    ring = Roi(1, "ring", "ORGAN", 6, tuple(Plane(z, (square(0, 0, 20), square(5, 5, 10))) for z in (0, 2, 4)))
    assert roi_volume_cc(ring, 2.0, step=0.1) == pytest.approx(3 * 300 * 2 / 1000, rel=0.01)


def test_dose_outside_the_grid_is_reported_not_counted() -> None:
    grid = read_dose(NELMS / DOSE["AP"])  # covers x -24..30, y -30..24, z -30..24 mm
    far = Roi(9, "far", "ORGAN", 1, (Plane(0.0, (square(100, 100, 10),)),))
    dvh = compute_dvh(far, 3.0, grid)
    assert dvh.outside_grid_cc == pytest.approx(0.3, rel=0.01)
    assert dvh.mean_gy is None and dvh.dose_at(95) is None


def test_a_non_axial_dose_grid_is_refused_by_name() -> None:
    import pydicom

    ds = pydicom.dcmread(NELMS / DOSE["AP"])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal
    with pytest.raises(DoseError, match="not axial"):
        read_dose(ds)


def test_a_flipped_dose_grid_gives_the_same_dvh() -> None:
    """Head-first prone exports rows and columns reversed (ImageOrientationPatient -1,0,0,0,-1,0) and frames
    from top to bottom: the same dose at the same patient points must give the same DVH."""
    import pydicom

    ds = pydicom.dcmread(NELMS / DOSE["AP"])
    ref = read_dose(ds)
    frames, rows, cols = ref.shape
    flipped = pydicom.dcmread(NELMS / DOSE["AP"])
    arr = flipped.pixel_array[::-1, ::-1, ::-1].copy()
    flipped.PixelData = arr.tobytes()
    x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
    flipped.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]  # normal +z still: frames go up in z from the origin
    flipped.ImagePositionPatient = [x0 + (cols - 1) * 3.0, y0 + (rows - 1) * 3.0, z0 + (frames - 1) * 3.0]
    flipped.GridFrameOffsetVector = [-3.0 * k for k in range(frames)]
    ss = read_structures(NELMS / "Cone_30_0.dcm")
    a = compute_dvh(ss.roi("Cone_30_0"), ss.thickness, ref)
    b = compute_dvh(ss.roi("Cone_30_0"), ss.thickness, read_dose(flipped))
    assert b.mean_gy == pytest.approx(a.mean_gy, rel=1e-6) and b.dose_at(95) == pytest.approx(a.dose_at(95), rel=1e-4)
    assert (b.min_gy, b.max_gy) == pytest.approx((a.min_gy, a.max_gy))


def test_per_beam_doses_on_one_grid_are_summed(tmp_path) -> None:
    import pydicom

    from rtstation_tui.engine.metrics.compute import plan_dose

    paths = []
    for g in ("AP", "SI"):
        ds = pydicom.dcmread(NELMS / DOSE[g])
        ds.DoseSummationType = "BEAM"
        ds.save_as(tmp_path / f"{g}.dcm")
        paths.append(str(tmp_path / f"{g}.dcm"))
    grid, notes = plan_dose(tuple(paths))
    assert grid is not None and notes == ["sum of 2 beam doses"] and grid.summation == "BEAM (summed)"
    expected = read_dose(NELMS / DOSE["AP"]).dose + read_dose(NELMS / DOSE["SI"]).dose
    assert np.allclose(grid.dose, expected)


def test_slabs_tile_a_ct_whose_slice_spacing_varies() -> None:
    """Contours every 2.5 mm up to z = 7.5, then every 5 mm: each slab reaches half way to its neighbours."""
    from rtstation_tui.engine.metrics.structures import slice_thickness, with_slabs

    zs = (0.0, 2.5, 5.0, 7.5, 12.5, 17.5)
    cyl = Roi(1, "cyl", "ORGAN", len(zs), tuple(Plane(z, (square(0, 0, 10),)) for z in zs))
    far = Roi(2, "far", "ORGAN", 1, (Plane(40.0, (square(0, 0, 10),)),))  # 22.5 mm away: not a slice gap
    t = slice_thickness([cyl, far])
    assert t == 2.5
    cyl2, far2 = with_slabs([cyl, far], t)
    bounds = [(p.z - p.below, p.z + p.above) for p in cyl2.planes]
    assert bounds == [(-1.25, 1.25), (1.25, 3.75), (3.75, 6.25), (6.25, 10.0), (10.0, 15.0), (15.0, 18.75)]
    assert roi_volume_cc(cyl2, step=0.1) == pytest.approx(100 * 20.0 / 1000, rel=0.01)
    assert (far2.planes[0].below, far2.planes[0].above) == (1.25, 1.25)


def test_a_non_axial_roi_is_named_and_the_others_still_count(tmp_path) -> None:
    import pydicom

    ds = pydicom.dcmread(NELMS / "Cone_30_0.dcm")
    roi = next(rc for rc in ds.ROIContourSequence if rc.ReferencedROINumber == 2)
    data = list(roi.ContourSequence[0].ContourData)
    data[2] = float(data[2]) + 5  # the first point 5 mm off its plane: a sagittal-ish contour
    roi.ContourSequence[0].ContourData = data
    ss = read_structures(ds)
    cone = ss.roi("Cone_30_0")
    assert cone.planes == () and "Cone_30_0" in cone.problem and "not axial" in cone.problem
    assert ss.roi("POI_1").problem == ""


def eclipse_dvhs(path) -> dict[int, tuple[float, float, float, float]]:
    """ROI number → (volume cc, Dmean, D95, D5 in Gy) from the cumulative DVHs the planning system (Varian Eclipse)
    stored in the RTDOSE's DVHSequence. Its DVHData bins are in Gy (its Min/Mean/Maximum Dose attributes are not:
    they are % of the 14 Gy prescription), so everything is taken from the bins."""
    import pydicom

    out = {}
    for item in pydicom.dcmread(path).DVHSequence:
        data = np.array([float(v) for v in item.DVHData]).reshape(-1, 2)
        edges = np.concatenate([[0.0], np.cumsum(data[:, 0])])
        cum = np.concatenate([data[:, 1], [0.0]])  # volume receiving at least edges[i]
        total = cum[0]
        mean = float(np.sum((edges[:-1] + edges[1:]) / 2 * (cum[:-1] - cum[1:])) / total)

        def dose_at(pct: float) -> float:
            return float(np.interp(-total * pct / 100, -cum, edges))  # cum decreases: interpolate on -cum

        out[int(item.DVHReferencedROISequence[0].ReferencedROINumber)] = (total, mean, dose_at(95), dose_at(5))
    return out


def test_breast_plan_dvhs_agree_with_the_planning_systems_own():
    """Independent of the phantom: on a real Eclipse plan, means and D95/D5 agree with Eclipse's DVHs within 2 %,
    volumes of ROIs with many planes within 2 % (small ones differ by Eclipse's end-cap convention: it ends the
    ROI at its outermost planes, we half a slice beyond, as the Nelms phantom's analytical values do)."""
    bb = DATA / "breast_boost"
    ss = read_structures(bb / "rtss.dcm")
    grid = read_dose(bb / "rtdose.dcm")
    eclipse = eclipse_dvhs(bb / "rtdose.dcm")
    for name in ("Heart", "Lt Lung", "Breast", "Tumor Bed", "Tumor Bed Block"):
        roi = ss.roi(name)
        volume, mean, d95, d5 = eclipse[roi.number]
        ours = compute_dvh(roi, None, grid)
        assert ours.volume_cc == pytest.approx(volume, rel=0.03), name
        assert ours.mean_gy == pytest.approx(mean, rel=0.02), name
        assert ours.dose_at(5) == pytest.approx(d5, rel=0.02), name
        if d95 > 1.0:  # a target: the low end of an organ's DVH is a few cGy, where 2 % is below one bin
            assert ours.dose_at(95) == pytest.approx(d95, rel=0.02), name
