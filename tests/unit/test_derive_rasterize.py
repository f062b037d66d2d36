"""[DERIVE] contours → masks: volumes and areas a physicist would check, holes, oblique planes, shared edges."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest

from derive_support import CT_IMAGE, NELMS_SPHERE, circle, image, nelms_ct, structure_set
from rtstation_tui.engine.derive.masks import group_masks, sort_images
from rtstation_tui.engine.derive.rasterize import GeometryError, ImageGrid, fill_even_odd, polygon_area
from rtstation_tui.engine.derive.rois import (RoiSelection, SelectionError, group_rois, list_rois,
                                              select_rois)

SPHERE_RADIUS_MM = 12.0  # the Nelms benchmark sphere: 24 mm diameter, centred at z = 6 mm


@pytest.fixture(scope="module")
def nelms(tmp_path_factory: pytest.TempPathFactory) -> tuple[pydicom.Dataset, list[pydicom.Dataset]]:
    paths = nelms_ct(tmp_path_factory.mktemp("nelms_ct"))
    return pydicom.dcmread(NELMS_SPHERE), sort_images([pydicom.dcmread(p) for p in paths])


def test_nelms_sphere_volume_matches_polygons_and_the_analytical_sphere(nelms) -> None:
    rs, images = nelms
    rois = list_rois(rs)
    assert [r.name for r in rois] == ["Sphere_30_0"]  # the POI marker has nothing to fill
    (mask,) = group_masks(rs, images, group_rois(rois, merge=True))
    voxel = 0.6 * 0.6 * 3.0
    volume = mask.sum() * voxel
    polygons = sum(polygon_area(np.asarray(c.ContourData, float).reshape(-1, 3)[:, :2])
                   for rc in rs.ROIContourSequence if rc.ReferencedROINumber == 2 for c in rc.ContourSequence)
    assert volume == pytest.approx(polygons * 3.0, rel=0.01)
    assert volume == pytest.approx(4 / 3 * np.pi * SPHERE_RADIUS_MM ** 3, rel=0.05)
    assert mask.any(axis=(1, 2)).sum() >= 7  # drawn on the planes of its contours, not piled onto one


def _plane_images(iop=(1, 0, 0, 0, 1, 0), n: int = 3, size: int = 128):
    grid_u, grid_v = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(grid_u, grid_v)
    origin = np.asarray([-64.0, -64.0, 0.0])
    ims = [image(CT_IMAGE, f"1.2.3.{k + 1}", "1.2.3.100", "1.2.3.200", "1.2.3.300", rows=size, cols=size,
                 ipp=origin + 3.0 * k * normal, iop=iop, spacing=(1.0, 1.0), number=k + 1) for k in range(n)]
    centre = origin + 63.5 * grid_u + 63.5 * grid_v
    return ims, centre, grid_u, grid_v, normal


def test_ring_with_a_hole_has_the_ring_area() -> None:
    ims, c, u, v, _ = _plane_images()
    rs = structure_set(ims, [("Ring", "ORGAN", [[circle(c, u, v, 40), circle(c, u, v, 20)], [], []])])
    (mask,) = group_masks(rs, ims, group_rois(list_rois(rs), merge=True))
    assert mask[0].sum() == pytest.approx(np.pi * (40 ** 2 - 20 ** 2), rel=0.01)
    assert not mask[0][64, 64]  # the hole is empty
    assert mask[1:].sum() == 0


def test_island_inside_a_hole_is_filled_again() -> None:
    ims, c, u, v, normal = _plane_images()
    c = c + 3.0 * normal  # the second image's plane
    rs = structure_set(ims, [("Island", "ORGAN", [[], [circle(c, u, v, 40), circle(c, u, v, 25),
                                                       circle(c, u, v, 10)], []])])
    (mask,) = group_masks(rs, ims, group_rois(list_rois(rs), merge=True))
    assert mask[1].sum() == pytest.approx(np.pi * (40 ** 2 - 25 ** 2 + 10 ** 2), rel=0.01)
    assert mask[1][64, 64] and mask.sum() == mask[1].sum()


def test_oblique_series_gets_its_circle_on_the_right_plane() -> None:
    a = np.radians(30)
    iop = (1, 0, 0, 0, np.cos(a), np.sin(a))  # tilted 30° about the patient x axis
    ims, c, u, v, normal = _plane_images(iop)
    rs = structure_set(ims, [("Tilted", "PTV", [[], [], [circle(c + 6.0 * normal, u, v, 30)]])])
    (mask,) = group_masks(rs, ims, group_rois(list_rois(rs), merge=True))
    assert mask[2].sum() == pytest.approx(np.pi * 30 ** 2, rel=0.01)
    assert mask[:2].sum() == 0
    rows, cols = np.nonzero(mask[2])
    assert (rows.mean(), cols.mean()) == pytest.approx((63.5, 63.5), abs=0.5)


def test_edges_through_pixel_centres_are_counted_once() -> None:
    left = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)
    right = left + [10, 0]
    a, b = fill_even_odd([left], 40, 40), fill_even_odd([right], 40, 40)
    both = fill_even_odd([np.array([[10, 10], [30, 10], [30, 20], [10, 20]], float)], 40, 40)
    assert a.sum() == b.sum() == 100
    assert not (a & b).any() and ((a | b) == both).all()


def test_contours_of_another_frame_of_reference_are_refused() -> None:
    ims, c, u, v, _ = _plane_images()
    rs = structure_set(ims, [("Ring", "ORGAN", [[circle(c, u, v, 40)], [], []])])
    rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.999"
    with pytest.raises(GeometryError, match="1.2.999"):
        group_masks(rs, ims, group_rois(list_rois(rs), merge=True))


def test_image_without_geometry_is_named() -> None:
    ims, *_ = _plane_images()
    del ims[0].PixelSpacing
    with pytest.raises(GeometryError, match="1.2.3.1 has no PixelSpacing"):
        ImageGrid.of(ims[0])


def _named(*specs: tuple[str, str]):
    ims, c, u, v, _ = _plane_images()
    return list_rois(structure_set(ims, [(n, t, [[circle(c, u, v, 10)], [], []]) for n, t in specs]))


def test_selection_by_glob_regex_exclude_and_type() -> None:
    rois = _named(("PTV_70", "PTV"), ("ptv boost", "PTV"), ("CTV", "CTV"), ("Rectum", "ORGAN"), ("BODY", "EXTERNAL"))
    names = lambda sel: [r.name for r in select_rois(rois, sel)]  # noqa: E731
    assert names(RoiSelection(include=("ptv*",))) == ["PTV_70", "ptv boost"]
    assert names(RoiSelection(include=("re:^(ctv|rect)",))) == ["CTV", "Rectum"]
    assert names(RoiSelection(exclude=("body",), types=("ptv", "organ"))) == ["PTV_70", "ptv boost", "Rectum"]
    with pytest.raises(SelectionError, match="Rectum \\(ORGAN\\)"):
        select_rois(rois, RoiSelection(include=("bladder",)))
    with pytest.raises(SelectionError, match="not a valid regular expression"):
        select_rois(rois, RoiSelection(include=("re:(",)))


def test_more_than_16_rois_merge_the_rest_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    rois = _named(*[(f"OAR{k:02d}", "ORGAN") for k in range(18)])
    with caplog.at_level(logging.WARNING):
        groups = group_rois(rois, merge=False)
    assert len(groups) == 16
    assert [r.name for r in groups[-1].rois] == ["OAR15", "OAR16", "OAR17"]
    assert "OAR15, OAR16, OAR17" in caplog.text
    assert len(group_rois(rois, merge=True)) == 1
