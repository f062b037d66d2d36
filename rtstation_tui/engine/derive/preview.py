"""QA pictures: an image (windowed to 8 bits) with each ROI mask's outline in the ROI's colour, as PNG.

Why: a physicist checks a derivation by eye before a viewer or a rule relies on it, as NETRT's debug PNGs allowed.
The outline is drawn from the *mask* (its boundary pixels), so the picture shows what was rasterized, not the
contour the planning system drew.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

DEFAULT_COLOR = (255, 255, 0)


def _gray(ds: Dataset) -> np.ndarray:
    """Modality LUT then the first window (or the 1st-99th percentile range) → uint8."""
    arr = ds.pixel_array.astype(np.float64)
    if arr.ndim == 3:  # colour or multi-sample: preview its luminance
        arr = arr.mean(axis=-1)
    arr = arr * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is not None and width is not None:
        c = float(centre[0] if hasattr(centre, "__len__") and not isinstance(centre, str) else centre)
        w = float(width[0] if hasattr(width, "__len__") and not isinstance(width, str) else width)
        lo, hi = c - w / 2, c + w / 2
    else:
        lo, hi = (float(v) for v in np.percentile(arr, (1, 99)))
    if hi <= lo:
        hi = lo + 1
    return (np.clip((arr - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (the mask's own boundary)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def preview_png(image: Dataset, masks: Sequence[np.ndarray],
                colors: Sequence[tuple[int, int, int] | None]) -> bytes:
    """The PNG bytes of ``image`` with one outline per mask (rows × cols, bool)."""
    gray = _gray(image)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for mask, color in zip(masks, colors):
        rgb[outline(mask)] = color or DEFAULT_COLOR
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG")
    return out.getvalue()
