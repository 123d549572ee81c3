"""Numba ray-casting kernel: Beer–Lambert line integrals with trilinear sampling.

One ray per detector pixel, from the focal spot to the pixel centre. Each ray is clipped to the
box spanned by the voxel centres (in voxel-index space, so any orientation or oblique affine works)
and sampled at a fixed step (mm) with the midpoint rule; values are trilinearly interpolated.
The returned image is the line integral ∫ μ ds (dimensionless when μ is in mm⁻¹ and ds in mm).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["project_volume"]


@nb.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _project_kernel(vol, inv_lin, inv_off, src, det0, du, dv, rows, cols, step_mm, out):  # pragma: no cover - jit
    ni, nj, nk = vol.shape
    hi0 = ni - 1.0
    hi1 = nj - 1.0
    hi2 = nk - 1.0
    # source in voxel coordinates
    o0 = inv_lin[0, 0] * src[0] + inv_lin[0, 1] * src[1] + inv_lin[0, 2] * src[2] + inv_off[0]
    o1 = inv_lin[1, 0] * src[0] + inv_lin[1, 1] * src[1] + inv_lin[1, 2] * src[2] + inv_off[1]
    o2 = inv_lin[2, 0] * src[0] + inv_lin[2, 1] * src[1] + inv_lin[2, 2] * src[2] + inv_off[2]
    for r in nb.prange(rows):
        for c in range(cols):
            px = det0[0] + c * du[0] + r * dv[0] - src[0]
            py = det0[1] + c * du[1] + r * dv[1] - src[1]
            pz = det0[2] + c * du[2] + r * dv[2] - src[2]
            length = math.sqrt(px * px + py * py + pz * pz)
            px /= length
            py /= length
            pz /= length
            # direction in voxel units per mm
            d0 = inv_lin[0, 0] * px + inv_lin[0, 1] * py + inv_lin[0, 2] * pz
            d1 = inv_lin[1, 0] * px + inv_lin[1, 1] * py + inv_lin[1, 2] * pz
            d2 = inv_lin[2, 0] * px + inv_lin[2, 1] * py + inv_lin[2, 2] * pz
            t0 = 0.0
            t1 = length
            ok = True
            # slab clipping per axis
            if abs(d0) < 1e-12:
                if o0 < 0.0 or o0 > hi0:
                    ok = False
            else:
                ta = (0.0 - o0) / d0
                tb = (hi0 - o0) / d0
                if ta > tb:
                    ta, tb = tb, ta
                t0 = max(t0, ta)
                t1 = min(t1, tb)
            if abs(d1) < 1e-12:
                if o1 < 0.0 or o1 > hi1:
                    ok = False
            else:
                ta = (0.0 - o1) / d1
                tb = (hi1 - o1) / d1
                if ta > tb:
                    ta, tb = tb, ta
                t0 = max(t0, ta)
                t1 = min(t1, tb)
            if abs(d2) < 1e-12:
                if o2 < 0.0 or o2 > hi2:
                    ok = False
            else:
                ta = (0.0 - o2) / d2
                tb = (hi2 - o2) / d2
                if ta > tb:
                    ta, tb = tb, ta
                t0 = max(t0, ta)
                t1 = min(t1, tb)
            if (not ok) or t1 <= t0:
                out[r, c] = 0.0
                continue
            seg = t1 - t0
            n = int(math.ceil(seg / step_mm))
            if n < 1:
                n = 1
            h = seg / n
            tm = t0 + 0.5 * h
            x0 = o0 + tm * d0
            x1 = o1 + tm * d1
            x2 = o2 + tm * d2
            s0 = h * d0
            s1 = h * d1
            s2 = h * d2
            acc = 0.0
            for _ in range(n):
                # clamp against round-off at the box faces
                a = min(max(x0, 0.0), hi0)
                b = min(max(x1, 0.0), hi1)
                e = min(max(x2, 0.0), hi2)
                i = min(int(a), ni - 2) if ni > 1 else 0
                j = min(int(b), nj - 2) if nj > 1 else 0
                k = min(int(e), nk - 2) if nk > 1 else 0
                fa = a - i
                fb = b - j
                fe = e - k
                c000 = vol[i, j, k]
                c001 = vol[i, j, k + 1]
                c010 = vol[i, j + 1, k]
                c011 = vol[i, j + 1, k + 1]
                c100 = vol[i + 1, j, k]
                c101 = vol[i + 1, j, k + 1]
                c110 = vol[i + 1, j + 1, k]
                c111 = vol[i + 1, j + 1, k + 1]
                c00 = c000 + (c001 - c000) * fe
                c01 = c010 + (c011 - c010) * fe
                c10 = c100 + (c101 - c100) * fe
                c11 = c110 + (c111 - c110) * fe
                c0 = c00 + (c01 - c00) * fb
                c1 = c10 + (c11 - c10) * fb
                acc += c0 + (c1 - c0) * fa
                x0 += s0
                x1 += s1
                x2 += s2
            out[r, c] = acc * h


def project_volume(values: np.ndarray, affine: np.ndarray, geometry, *, step_mm: float) -> np.ndarray:
    """Line integrals of a voxel field through every detector pixel.

    Parameters
    ----------
    values : ndarray (I, J, K)
        Voxel values (e.g. μ in mm⁻¹); needs at least 2 voxels along every axis.
    affine : (4, 4) ndarray
        Voxel → world RAS+ mm.
    geometry : CArmGeometry
    step_mm : float
        Sampling step along each ray, mm (the last step of a ray is shortened so the clipped
        segment is covered exactly).

    Returns
    -------
    ndarray (rows, cols), float32
        ∫ value ds along each ray, value·mm.
    """
    vol = np.ascontiguousarray(values, dtype=np.float32)
    if min(vol.shape) < 2:
        vol = np.pad(vol, [(0, 1 if s < 2 else 0) for s in vol.shape], mode="edge")
    inv = np.linalg.inv(np.asarray(affine, float))
    out = np.empty((geometry.rows, geometry.cols), dtype=np.float32)
    _project_kernel(vol, np.ascontiguousarray(inv[:3, :3]), np.ascontiguousarray(inv[:3, 3]),
                    np.asarray(geometry.source_mm, float), np.asarray(geometry.detector_origin_mm, float),
                    np.asarray(geometry.u * geometry.pixel_mm, float),
                    np.asarray(geometry.v * geometry.pixel_mm, float),
                    int(geometry.rows), int(geometry.cols), float(step_mm), out)
    return out
