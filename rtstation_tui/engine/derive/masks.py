"""Masks for groups of ROIs of one structure set on one image series (the input of both the overlay series and the
SEG), after checking that the structure set and the images share a Frame of Reference."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset

from .rasterize import GeometryError, ImageGrid, closed_contours, rasterize_roi
from .rois import RoiGroup


def sort_images(images: Sequence[Dataset]) -> list[Dataset]:
    """Images in slice order along their normal (then InstanceNumber): the order a viewer scrolls and SEG frames
    follow."""
    if not images:
        return []
    normal = ImageGrid.of(images[0]).normal
    return sorted(images, key=lambda ds: (float(np.asarray([float(v) for v in ds.ImagePositionPatient]) @ normal),
                                          int(ds.get("InstanceNumber", 0) or 0)))


def check_frame_of_reference(structure_set: Dataset, images: Sequence[Dataset]) -> None:
    """Refuse to draw contours onto images of another Frame of Reference: the mask would look right and be wrong."""
    ss_for = {str(f.FrameOfReferenceUID) for f in structure_set.get("ReferencedFrameOfReferenceSequence", []) or []
              if "FrameOfReferenceUID" in f}
    im_for = {str(ds.get("FrameOfReferenceUID", "")) for ds in images}
    if ss_for and not (im_for & ss_for):
        raise GeometryError(f"the images are in Frame of Reference {', '.join(sorted(im_for))}, the structure set "
                            f"in {', '.join(sorted(ss_for))}")


def group_masks(structure_set: Dataset, images: Sequence[Dataset], groups: Sequence[RoiGroup]) -> list[np.ndarray]:
    """One n_images × rows × cols mask per group (the union of its ROIs), images in the order given."""
    check_frame_of_reference(structure_set, images)
    grids = [ImageGrid.of(ds) for ds in images]
    contours = {int(rc.ReferencedROINumber): closed_contours(rc)
                for rc in structure_set.get("ROIContourSequence", []) or []}
    out = []
    for group in groups:
        mask = np.zeros((len(grids), grids[0].rows, grids[0].cols), dtype=bool) if grids else np.zeros((0, 0, 0), bool)
        for roi in group.rois:
            mask |= rasterize_roi(contours.get(roi.number, []), grids)
        out.append(mask)
    return out
