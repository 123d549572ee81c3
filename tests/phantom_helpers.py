"""Helpers of the phantom tests: measure heights on a voxel label map with the truth's frame."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def mask_sampler(labels, label: int, subregions=None):
    """Trilinear sampler of the binary mask ``labels == label`` (restricted to the vertebral body,
    sub-regions 1 and 6, when ``subregions`` is given) at world points (threshold 0.5)."""
    vol = labels.as_canonical()
    m = vol.data == label
    if subregions is not None:
        m &= np.isin(subregions.as_canonical().data, (1, 6))
    m = m.astype(np.float32)
    inv = np.linalg.inv(vol.affine)

    def inside(pts: np.ndarray) -> np.ndarray:
        ijk = pts @ inv[:3, :3].T + inv[:3, 3]
        return ndimage.map_coordinates(m, ijk.T, order=1, mode="constant", cval=0.0) >= 0.5
    return inside


def ray_span(inside, origin, direction, half=40.0, step=0.05):
    s = np.arange(-half, half + step / 2, step)
    pts = origin[None] + s[:, None] * direction[None]
    v = inside(pts)
    idx = np.flatnonzero(v)
    if idx.size == 0:
        return np.nan, np.nan
    return s[idx[0]], s[idx[-1]]


def measure_heights_on_labels(labels, level: dict, subregions=None) -> dict:
    """Ha, Hm, Hp, depth and width of one level measured on a label map, per the height convention,
    using the truth's centroid and axes (the frame is checked separately)."""
    inside = mask_sampler(labels, level["label"], subregions)
    c = np.asarray(level["centroid_mm"])
    si, ap, lr = (np.asarray(level[k]) for k in ("si_axis", "ap_axis", "lr_axis"))
    f, l = ray_span(inside, c, ap, half=30)
    depth = l - f
    ant = c + l * ap
    f, l = ray_span(inside, c, lr, half=40)
    width = l - f
    offs = np.linspace(-0.2 * width, 0.2 * width, 11)
    out = {"depth": depth, "width": width}
    for key, frac in (("ha", 0.1), ("hm", 0.5), ("hp", 0.9)):
        hs = []
        for o in offs:
            f, l = ray_span(inside, ant - frac * depth * ap + o * lr, si, half=25)
            hs.append(l - f)
        out[key] = float(np.nanmedian(hs))
    return out
