"""[DERIVE] the overlay series: what a viewer reads back is the mask, the images are the originals'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from derive_support import NELMS_SPHERE, circle, nelms_ct, structure_set
from helpers import DATA
from rtstation_tui.engine.derive.masks import group_masks, sort_images
from rtstation_tui.engine.derive.overlay import OverlayError, OverlayOptions, overlay_series
from rtstation_tui.engine.derive.rasterize import ImageGrid
from rtstation_tui.engine.derive.rois import RoiGroup, group_rois, list_rois


@pytest.fixture(scope="module")
def nelms(tmp_path_factory: pytest.TempPathFactory):
    paths = nelms_ct(tmp_path_factory.mktemp("nelms_ct"))
    rs = pydicom.dcmread(NELMS_SPHERE)
    images = sort_images([pydicom.dcmread(p) for p in paths])
    groups = group_rois(list_rois(rs), merge=False)
    return rs, images, groups, group_masks(rs, images, groups)


def _write(datasets, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        p = out / f"{ds.Modality}.{ds.SOPInstanceUID}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def test_overlay_read_back_equals_the_mask_and_pixels_are_untouched(nelms, tmp_path: Path) -> None:
    rs, images, groups, masks = nelms
    derived = overlay_series(images, masks, groups, str(rs.SOPInstanceUID),
                             OverlayOptions(structure_set_label=str(rs.StructureSetLabel)))
    back = [pydicom.dcmread(p) for p in _write(derived, tmp_path / "out")]
    assert len(back) == len(images) == 20  # every image, those without contours too
    differ = 0
    for i, (src, ds) in enumerate(zip(images, back)):
        differ += int((ds.overlay_array(0x6000).astype(bool) != masks[0][i]).sum())
        assert ds.PixelData == src.PixelData
        assert ds.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
        assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert ds[0x6000, 0x0022].value == "Sphere_30_0"
    assert differ == 0
    assert masks[0].sum() > 5000  # 6584 voxels: the test compares something
    assert len({ds.SeriesInstanceUID for ds in back}) == 1
    assert back[0].SeriesDescription == "source series + contours"
    assert "3mmCT" in back[0].DerivationDescription and back[0].ImageType[0] == "DERIVED"


def test_uids_are_the_same_every_time_and_differ_per_selection(nelms) -> None:
    rs, images, groups, masks = nelms
    a = overlay_series(images, masks, groups, str(rs.SOPInstanceUID))
    b = overlay_series(images, masks, groups, str(rs.SOPInstanceUID))
    assert [d.SOPInstanceUID for d in a] == [d.SOPInstanceUID for d in b]
    other = overlay_series(images, masks, [RoiGroup("x", ())], str(rs.SOPInstanceUID))
    assert other[0].SeriesInstanceUID != a[0].SeriesInstanceUID


def test_one_plane_per_group_and_existing_overlays_kept(nelms) -> None:
    rs, images, groups, masks = nelms
    src = [pydicom.dcmread(images[0].filename)]
    src[0].add_new((0x6000, 0x0010), "US", 1)  # a plane of the source's own
    two = [RoiGroup("a", groups[0].rois), RoiGroup("b", groups[0].rois)]
    (ds,) = overlay_series(src, [masks[0][:1], ~masks[0][:1]], two, "1.2.3")
    assert ds[0x6000, 0x0010].value == 1
    assert ds[0x6002, 0x1500].value == "a" and ds[0x6004, 0x1500].value == "b"
    assert (ds.overlay_array(0x6004).astype(bool) == ~masks[0][0]).all()


def test_bad_template_names_the_allowed_fields(nelms) -> None:
    rs, images, groups, masks = nelms
    with pytest.raises(OverlayError, match="original"):
        overlay_series(images, masks, groups, "1.2.3", OverlayOptions(description="{series} + RT"))


def test_compressed_source_keeps_its_encapsulated_pixel_data(tmp_path: Path) -> None:
    """A JPEG 2000 CT (pydicom's test file): the copy carries the same fragments in the same transfer syntax."""
    src = pydicom.dcmread(DATA / "pydicom" / "J2K_pixelrep_mismatch.dcm")
    grid = ImageGrid.of(src)
    u, v = np.asarray(grid.row_dir), np.asarray(grid.col_dir)
    centre = np.asarray(grid.origin) + 256 * grid.spacing[1] * u + 256 * grid.spacing[0] * v
    rs = structure_set([src], [("Lesion", "GTV", [[circle(centre, u, v, 20.0)]])])
    groups = group_rois(list_rois(rs), merge=True)
    masks = group_masks(rs, [src], groups)
    (ds,) = overlay_series([src], masks, groups, str(rs.SOPInstanceUID))
    (path,) = _write([ds], tmp_path)
    back = pydicom.dcmread(path)
    assert back.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    assert back.PixelData == src.PixelData
    assert (back.overlay_array(0x6000).astype(bool) == masks[0][0]).all() and masks[0].sum() > 1000
