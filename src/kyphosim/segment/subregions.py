"""Sub-regions of each vertebra: body vs posterior elements, pedicles and the spinal canal."""

from __future__ import annotations

import numpy as np

from kyphosim.imaging.labels import SUBREGION_IDS

__all__ = ["make_subregions"]


def make_subregions(wk, seg_w: np.ndarray, vert_w: np.ndarray) -> np.ndarray:
    """Sub-region map on the working grid (kyphosim SUBREGION_IDS)."""
    out = np.zeros(seg_w.shape, np.uint8)
    body = (seg_w > 0) & (wk.axis_dist_mm <= 25.0)
    out[(vert_w > 0)] = SUBREGION_IDS["posterior_elements"]
    out[body & (vert_w > 0)] = SUBREGION_IDS["vertebral_body"]
    return out
