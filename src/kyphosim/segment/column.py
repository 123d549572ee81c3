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


def find_axis(filled: np.ndarray, spacing_mm: float, *, coarse_mm: float = 3.0, cap_mm: float = 20.0, disc_mm: float = 24.0,
              slope_cost_mm: float = 8.0, sigma_mm: float = 12.0) -> Axis:
    """Curved axis through the vertebral bodies of a filled bone mask (canonical, isotropic grid).

    Parameters
    ----------
    filled : ndarray of bool
        Solid bone (cortex with enclosed marrow), canonical (R, A, S) order.
    spacing_mm : float
        Voxel size of ``filled`` (mm).
    coarse_mm : float
        Grid step (mm) of the dynamic programme in x and y.
    cap_mm : float
        Score (mm) of a point whose neighbourhood is all solid bone.
    disc_mm : float
        Diameter (mm) of the neighbourhood (Gaussian, σ = disc_mm/4) whose solid-bone fraction φ
        makes the score ``cap_mm · φ²``: a vertebral body (30–50 mm across) fills it, the arch and
        canal do not.
    slope_cost_mm : float
        Penalty per mm of z for a unit slope of the path (a 45° slope costs as much as 8 mm of
        inscribed radius; lordosis at L5/S1 reaches 30–40°).
    sigma_mm : float
        Gaussian smoothing of the path along z (mm).
    """
    nx, ny, nz = filled.shape
    # fraction of solid bone in a disc of radius ≈ disc_mm around each point of each axial slice
    sig = disc_mm / 2.0 / spacing_mm
    frac = ndi.gaussian_filter(filled.astype(np.float32), sigma=(sig, sig, 0))
    dt = frac ** 2 * cap_mm
    f = max(1, int(round(coarse_mm / spacing_mm)))
    # coarse score: max over each f×f block
    pad_x, pad_y = (-nx) % f, (-ny) % f
    d = np.pad(dt, ((0, pad_x), (0, pad_y), (0, 0)))
    d = d.reshape((nx + pad_x) // f, f, (ny + pad_y) // f, f, nz).max(axis=(1, 3))
    score = np.moveaxis(d, 2, 0).astype(np.float64) * spacing_mm   # (k, a, b), mm per slice
    step = f * spacing_mm
    window = max(1, int(np.ceil(1.5 * spacing_mm / step)))
    path = _dp_path(score, step, spacing_mm, slope_cost_mm, window)
    raw_score = score[np.arange(nz), path[:, 0], path[:, 1]] / spacing_mm
    xy = (path * f + (f - 1) / 2.0).astype(float)
    xy[:, 0] = np.clip(xy[:, 0], 0, nx - 1)
    xy[:, 1] = np.clip(xy[:, 1], 0, ny - 1)
    sig = sigma_mm / spacing_mm
    xs = ndi.gaussian_filter1d(xy[:, 0], sig, mode="nearest")
    ys = ndi.gaussian_filter1d(xy[:, 1], sig, mode="nearest")
    pts = np.stack([xs, ys, np.arange(nz, dtype=float)], axis=1)
    tan = np.gradient(pts, axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1) * spacing_mm
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    return Axis(points=pts, tangents=tan, arc_mm=arc, score_mm=raw_score)
