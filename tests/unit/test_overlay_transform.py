"""The ``overlay`` transform: what a viewer node receives is the image series with the contours as overlay planes,
one copy for each stored object, and everything that is not an image of the structure set goes out unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.pixels import unpack_bits

from derive_support import NELMS_SPHERE, nelms_ct
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.transforms.base import TransformError
from rtstation_tui.engine.transforms.registry import build_transform


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> list[pydicom.Dataset]:
    images = [pydicom.dcmread(p) for p in nelms_ct(tmp_path_factory.mktemp("nelms_ct"))]
    return [*images, pydicom.dcmread(NELMS_SPHERE)]


def _overlay(ds: pydicom.Dataset) -> np.ndarray:
    return unpack_bits(ds[0x6000, 0x3000].value)[: ds.Rows * ds.Columns].reshape(ds.Rows, ds.Columns)


def test_images_go_out_with_the_sphere_as_overlay_and_the_structure_set_unchanged(bundle) -> None:
    before = copy.deepcopy(bundle)
    out = build_transform("overlay:sphere*", load_config(None)).apply(bundle)
    assert len(out) == len(bundle)
    *images, rs = out
    assert rs == bundle[-1] and rs is not bundle[-1]
    drawn = [ds for ds in images if _overlay(ds).any()]
    assert 0 < len(drawn) < len(images)  # slices through the sphere, and the empty ones still go out
    for src, ds in zip(bundle, images):
        assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert ds.PixelData == src.PixelData and ds.StudyInstanceUID == src.StudyInstanceUID
    assert bundle == before  # the given objects are never modified
    again = build_transform("overlay:sphere*", load_config(None)).apply(bundle)
    assert [d.SOPInstanceUID for d in again] == [d.SOPInstanceUID for d in out]


def test_no_structure_set_or_an_unknown_roi_refuses_the_bundle_with_the_reason(bundle) -> None:
    with pytest.raises(TransformError, match="no structure set"):
        build_transform("overlay", load_config(None)).apply(bundle[:-1])
    with pytest.raises(TransformError, match="NOSUCHROI|Sphere"):
        build_transform("overlay:NOSUCHROI", load_config(None)).apply(bundle)


def test_an_unknown_transform_names_the_ones_there_are() -> None:
    with pytest.raises(TransformError, match="overlay"):
        build_transform("sepia", load_config(None))
