"""The spinal column and its curved axis.

The axis is the path through the axial slices that stays inside the thickest solid bone (the vertebral
bodies, whose largest inscribed circle has a radius of 12–20 mm) while moving smoothly from slice to slice.
It is found by dynamic programming over a coarse (x, y) grid per slice: the score of a slice position is
the 2-D distance (mm) to the edge of the filled bone mask, capped at ``cap_mm`` so that a femoral head or
the iliac wings cannot outweigh the column; moving by Δ (mm) between consecutive slices costs
``smooth_per_mm2 · Δ²``. The optimal path is then smoothed (Gaussian, σ = ``sigma_mm`` along z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Axis", "find_axis"]


@dataclass(frozen=True)
class Axis:
    """A curved axis sampled on the working grid (voxel coordinates of the canonical grid).

    ``points`` (N, 3) are voxel coordinates of consecutive samples, ``tangents`` (N, 3) unit vectors
    (pointing superior), ``arc_mm`` (N,) the arc length from the first (most inferior) sample.
    """

    points: np.ndarray
    tangents: np.ndarray
    arc_mm: np.ndarray
    score_mm: np.ndarray   # inscribed radius (mm) of the filled bone along the raw path


def _dp_path(score: np.ndarray, step_mm: float, dz_mm: float, slope_cost_mm: float, window: int) -> np.ndarray:
    """Best path through score[k, a, b] (one (a, b) per k).

    Moving by Δ (mm) between slices dz_mm apart costs ``slope_cost_mm · (Δ/dz)² · dz``.
    """
    nk, na, nb = score.shape
    offs = [(da, db) for da in range(-window, window + 1) for db in range(-window, window + 1)]
    acc = score[0].copy()
    back = np.zeros((nk, na, nb, 2), np.int16)
    neg = -1e9
    for k in range(1, nk):
        best = np.full((na, nb), neg)
        arg = np.zeros((na, nb, 2), np.int16)
        for da, db in offs:
            pen = slope_cost_mm * ((da * step_mm) ** 2 + (db * step_mm) ** 2) / dz_mm
            shifted = np.full((na, nb), neg)
            sa = slice(max(0, da), na + min(0, da))
            sb = slice(max(0, db), nb + min(0, db))
            ta = slice(max(0, -da), na + min(0, -da))
            tb = slice(max(0, -db), nb + min(0, -db))
            shifted[sa, sb] = acc[ta, tb] - pen   # came from (a - da, b - db)
            better = shifted > best
            best[better] = shifted[better]
            arg[better] = (da, db)
        acc = best + score[k]
        back[k] = arg
    a, b = np.unravel_index(int(np.argmax(acc)), acc.shape)
    path = np.zeros((nk, 2), int)
    for k in range(nk - 1, -1, -1):
        path[k] = (a, b)
        da, db = back[k, a, b]
        a, b = a - da, b - db
    return path


def find_axis(filled: np.ndarray, spacing_mm: float, *, coarse_mm: float = 3.0, cap_mm: float = 16.0,
              slab_mm: float = 6.0, slope_cost: float = 0.3, sigma_mm: float = 10.0,
              midline_x: float | None = None, midline_tol_mm: float = 30.0) -> Axis:
    """Curved axis through the vertebral bodies of a filled bone mask (canonical, isotropic grid).

    The score of a point of an axial slice is its in-slice distance to the edge of the solid bone,
    capped at ``cap_mm`` (the inscribed radius of a vertebral body is 12–20 mm; that of the arch,
    pedicles and processes < 8 mm, so the path runs through the bodies; the cap keeps a femoral head
    or the iliac bones from outweighing the column). Slices are grouped in slabs of ``slab_mm`` (the
    score of a slab is the sum of its slices' scores, in mm²) and the dynamic programme chooses one
    (x, y) per slab on a ``coarse_mm`` grid; moving by Δ (mm) between slabs dz apart costs
    ``slope_cost · cap_mm · (Δ/dz)² · dz`` (mm²: a unit slope costs ``slope_cost`` of a fully scoring slice). The path through the slab centres is
    interpolated to every slice and smoothed (Gaussian, σ = ``sigma_mm`` along z).

    Parameters
    ----------
    filled : ndarray of bool
        Solid bone (cortex with enclosed marrow), canonical (R, A, S) order.
    spacing_mm : float
        Voxel size of ``filled`` (mm).
    coarse_mm : float
        Grid step (mm) of the dynamic programme in x and y.
    cap_mm : float
        Cap (mm) of the in-slice inscribed radius.
    slab_mm : float
        Thickness (mm) of the slabs of the dynamic programme along z.
    slope_cost : float
        Penalty of a unit slope per mm of z, as a fraction of the score of a fully scoring slice
        (lordosis at L5/S1 and thoracic kyphosis tilt the column by up to 30–40°).
    sigma_mm : float
        Gaussian smoothing of the path along z (mm).
    midline_x : float, optional
        Left-right middle of the patient's body (voxel index along x). Scores farther than
        ``midline_tol_mm`` from it are damped by ``exp(−(excess / 15 mm)²)``.
    """
    nx, ny, nz = filled.shape
    # in-slice distance to the edge of the solid bone (mm), capped
    dt = ndi.distance_transform_edt(filled, sampling=(spacing_mm, spacing_mm, 1e6)).astype(np.float32)
    dt = np.minimum(dt, cap_mm)
    # a point is good when its whole neighbourhood is deep inside bone: light in-plane smoothing
    dt = ndi.gaussian_filter(dt, sigma=(3.0 / spacing_mm, 3.0 / spacing_mm, 0))
    if midline_x is not None:
        # the column lies near the left-right middle of the body: the iliac bones (±50–100 mm) and
        # femoral heads (±80–100 mm) lie far off it, a scoliotic column stays within a few cm
        off = np.abs(np.arange(nx) - midline_x) * spacing_mm
        wx = np.exp(-(np.maximum(off - midline_tol_mm, 0.0) / 15.0) ** 2).astype(np.float32)
        dt *= wx[:, None, None]
    f = max(1, int(round(coarse_mm / spacing_mm)))
    kz = max(1, int(round(slab_mm / spacing_mm)))
    pad_x, pad_y, pad_z = (-nx) % f, (-ny) % f, (-nz) % kz
    d = np.pad(dt, ((0, pad_x), (0, pad_y), (0, pad_z)))
    d = d.reshape((nx + pad_x) // f, f, (ny + pad_y) // f, f, (nz + pad_z) // kz, kz)
    d = d.max(axis=(1, 3)).sum(axis=-1)
    score = np.moveaxis(d, 2, 0).astype(np.float64) * spacing_mm   # (slab, a, b), mm²
    step = f * spacing_mm
    dz = kz * spacing_mm
    window = max(1, int(np.ceil(1.2 * dz / step)))
    path = _dp_path(score, step, dz, slope_cost * cap_mm, window)
    raw_score = score[np.arange(score.shape[0]), path[:, 0], path[:, 1]] / dz
    xy = (path * f + (f - 1) / 2.0).astype(float)
    zc = np.arange(score.shape[0]) * kz + (kz - 1) / 2.0
    zz = np.arange(nz, dtype=float)
    xs = np.interp(zz, zc, xy[:, 0])
    ys = np.interp(zz, zc, xy[:, 1])
    sig = sigma_mm / spacing_mm
    xs = np.clip(ndi.gaussian_filter1d(xs, sig, mode="nearest"), 0, nx - 1)
    ys = np.clip(ndi.gaussian_filter1d(ys, sig, mode="nearest"), 0, ny - 1)
    pts = np.stack([xs, ys, zz], axis=1)
    tan = np.gradient(pts, axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1) * spacing_mm
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    return Axis(points=pts, tangents=tan, arc_mm=arc, score_mm=np.interp(zz, zc, raw_score))
