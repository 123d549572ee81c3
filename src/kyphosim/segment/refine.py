"""Per-vertebra mask completion and full-resolution boundary refinement.

On the working grid, the marrow of a fatty, osteoporotic body is often not recovered by the ray-cast
enclosure (holes); the cortical shell is. Each vertebra's mask is therefore completed by filling the
holes of its sagittal and coronal sections (the spinal canal is not a hole in these sections: it runs
out of the vertebra at the top and bottom; it *is* a hole of the axial sections, which are not filled).

The working grid (1.25–3 mm) is coarser than most inputs. The label map is brought back to the input
grid by nearest neighbour and its boundary is then re-drawn on the full-resolution CT in a band of
``band_mm`` around it: a band voxel belongs to the vertebra when it is cortical bone
(smoothed HU > the cortical threshold of the input voxel size) or enclosed, in its sagittal or coronal
section, by the vertebra's core and cortex. Voxels of a neighbour's mask are never taken.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["fill_sections", "complete_labels", "refine_labels"]


def fill_sections(mask: np.ndarray, axes: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """Fill the 2-D holes of ``mask`` in every section normal to each of ``axes`` (0: sagittal
    sections of a canonical RAS array, 1: coronal)."""
    out = mask.copy()
    for ax in axes:
        m = np.moveaxis(mask, ax, 0)
        o = np.moveaxis(out, ax, 0)
        for i in range(m.shape[0]):
            if m[i].any():
                o[i] |= ndi.binary_fill_holes(m[i])
    return out


def _boxes(lab: np.ndarray, n: int, margin: int) -> list[tuple[slice, ...] | None]:
    sl = ndi.find_objects(lab, max_label=n)
    out = []
    for s in sl:
        if s is None:
            out.append(None)
            continue
        out.append(tuple(slice(max(0, a.start - margin), min(dim, a.stop + margin))
                         for a, dim in zip(s, lab.shape)))
    return out


def complete_labels(lab: np.ndarray, n: int, close_vox: int = 1) -> np.ndarray:
    """Fill each label's sagittal and coronal holes (after a small closing), never over another label."""
    from kyphosim.segment.bone import ball

    out = lab.copy()
    st = ball(close_vox) if close_vox > 0 else None
    for k, box in enumerate(_boxes(lab, n, margin=close_vox + 1), start=1):
        if box is None:
            continue
        sub = lab[box]
        m = sub == k
        if st is not None:
            m = ndi.binary_closing(m, structure=st) | m
        m = fill_sections(m)
        o = out[box]
        o[m & (sub == 0)] = k
    return out


def refine_labels(lab: np.ndarray, hu: np.ndarray, spacing_mm: np.ndarray, cortical_hu: float, n: int,
                  band_mm: float = 2.0) -> np.ndarray:
    """Re-draw each label's boundary on the full-resolution CT (canonical arrays, same grid).

    ``lab`` holds labels 1…n brought to this grid by nearest neighbour; ``hu`` is the CT (HU).
    """
    sp = np.asarray(spacing_mm, float)
    rad = np.maximum(np.round(band_mm / sp).astype(int), 1)
    st = np.zeros(tuple(2 * rad + 1), bool)
    g = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(rad, sp)], indexing="ij")
    st[(g[0] ** 2 + g[1] ** 2 + g[2] ** 2) <= band_mm ** 2 + 1e-6] = True
    out = np.zeros_like(lab)
    sig = np.maximum(0.5, 0.5 / sp)
    for k, box in enumerate(_boxes(lab, n, margin=int(rad.max()) + 2), start=1):
        if box is None:
            continue
        sub = lab[box]
        m = sub == k
        if m.sum() < 10:
            out[box][m] = k
            continue
        hi = ndi.gaussian_filter(hu[box].astype(np.float32), sig) > cortical_hu
        core = ndi.binary_erosion(m, structure=st)
        grow = ndi.binary_dilation(m, structure=st) & ((sub == 0) | m)
        new = core | (grow & hi)
        new = fill_sections(new) & grow
        new = ndi.binary_opening(new) | core
        o = out[box]
        o[new & (o == 0)] = k
    return out
