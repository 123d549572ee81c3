"""Numba ray-casting kernels: Beer–Lambert line integrals of a voxel field.

One ray per detector pixel, from the focal spot to the pixel centre, clipped to the box spanned by
the voxel centres (in voxel-index space, so any orientation or oblique affine works). Quadratures:

* :func:`project_volume` — trilinear samples at a fixed step (mm), midpoint rule;
* :func:`project_volume_joseph` — Joseph's method: one sample on every voxel plane of the ray's
  dominant axis (bilinear in-plane = trilinear on the plane), end samples weighted by their share
  of the clipped ray;
* :func:`project_volume_planes` — the same Joseph quadrature factorised when the voxel planes are
  parallel to the detector and the in-plane axes run along its rows and columns (separable
  bilinear weights; no per-ray stepping).

The returned image is the line integral ∫ μ ds (dimensionless when μ is in mm⁻¹ and ds in mm).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["project_volume", "project_volume_joseph", "project_volume_planes", "planes_layout",
           "prepare_joseph_volume", "prepare_planes_volume"]

#: Detector rows per block of the factorised kernel (used when detector pixels are finer than voxels).
PLANES_ROW_BLOCK = 16


@nb.njit(inline="always", cache=True)
def _pixel_ray(src, det0, du, dv, r, c):  # pragma: no cover - jit
    """Unit direction (world) from the focal spot to the centre of detector pixel (r, c), and the
    distance to it (mm)."""
    px = det0[0] + c * du[0] + r * dv[0] - src[0]
    py = det0[1] + c * du[1] + r * dv[1] - src[1]
    pz = det0[2] + c * du[2] + r * dv[2] - src[2]
    length = math.sqrt(px * px + py * py + pz * pz)
    return px / length, py / length, pz / length, length


@nb.njit(inline="always", cache=True)
def _clip_slab(origin, direction, hi, t0, t1, ok):  # pragma: no cover - jit
    """Clip the ray parameter interval [t0, t1] to the slab 0 ≤ origin + t·direction ≤ hi of one
    voxel-index axis; ``ok`` turns False when a ray parallel to the slab lies outside it."""
    if abs(direction) < 1e-12:
        if origin < 0.0 or origin > hi:
            ok = False
        return t0, t1, ok
    ta = (0.0 - origin) / direction
    tb = (hi - origin) / direction
    if ta > tb:
        ta, tb = tb, ta
    return max(t0, ta), min(t1, tb), ok


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
            px, py, pz, length = _pixel_ray(src, det0, du, dv, r, c)
            # direction in voxel units per mm
            d0 = inv_lin[0, 0] * px + inv_lin[0, 1] * py + inv_lin[0, 2] * pz
            d1 = inv_lin[1, 0] * px + inv_lin[1, 1] * py + inv_lin[1, 2] * pz
            d2 = inv_lin[2, 0] * px + inv_lin[2, 1] * py + inv_lin[2, 2] * pz
            t0, t1, ok = _clip_slab(o0, d0, hi0, 0.0, length, True)
            t0, t1, ok = _clip_slab(o1, d1, hi1, t0, t1, ok)
            t0, t1, ok = _clip_slab(o2, d2, hi2, t0, t1, ok)
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


# ---------------------------------------------------------------------------------------- Joseph
@nb.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _joseph_kernel(flat, shape, strides, inv_lin, inv_off, src, det0, du, dv, rows, cols, out):  # pragma: no cover - jit
    """Joseph's projector: one sample on every voxel plane of the ray's dominant index axis,
    bilinear in the two other axes; each sample weighted by the length of its share of the ray
    (clipped to the box of voxel centres). ``flat`` is the volume padded by one edge voxel at the
    high end of every axis (so index n−1 + round-off never reads outside), raveled C-order;
    ``shape`` the unpadded shape and ``strides`` the padded element strides."""
    hi = np.empty(3)
    o = np.empty(3)
    for a in range(3):
        hi[a] = shape[a] - 1.0
        o[a] = inv_lin[a, 0] * src[0] + inv_lin[a, 1] * src[1] + inv_lin[a, 2] * src[2] + inv_off[a]
    for r in nb.prange(rows):
        dd = np.empty(3)
        for c in range(cols):
            px, py, pz, length = _pixel_ray(src, det0, du, dv, r, c)
            t0 = 0.0
            t1 = length
            ok = True
            m = 0
            best = -1.0
            for a in range(3):
                da = inv_lin[a, 0] * px + inv_lin[a, 1] * py + inv_lin[a, 2] * pz
                dd[a] = da
                if abs(da) > best:
                    best = abs(da)
                    m = a
                t0, t1, ok = _clip_slab(o[a], da, hi[a], t0, t1, ok)
            if (not ok) or t1 <= t0:
                out[r, c] = 0.0
                continue
            # other two axes (a, b) of the plane
            if m == 0:
                a_ax, b_ax = 1, 2
            elif m == 1:
                a_ax, b_ax = 0, 2
            else:
                a_ax, b_ax = 0, 1
            dm = dd[m]
            ht = 1.0 / abs(dm)                       # mm between consecutive planes
            # planes crossed: index range along m between the entry and exit points
            xm0 = o[m] + t0 * dm
            xm1 = o[m] + t1 * dm
            if dm > 0:
                k0 = int(math.ceil(xm0 - 1e-9))
                k1 = int(math.floor(xm1 + 1e-9))
                kstep = 1
            else:
                k0 = int(math.floor(xm0 + 1e-9))
                k1 = int(math.ceil(xm1 - 1e-9))
                kstep = -1
            nk = (k1 - k0) * kstep + 1
            sa = strides[a_ax]
            sb = strides[b_ax]
            sm = strides[m]
            acc = 0.0
            if nk <= 0:
                nk = 0
            else:
                tk = (k0 - o[m]) / dm                 # ray parameter of the first plane
                xa = o[a_ax] + tk * dd[a_ax]
                xb = o[b_ax] + tk * dd[b_ax]
                ia_step = dd[a_ax] * ht
                ib_step = dd[b_ax] * ht
                hia = hi[a_ax]
                hib = hi[b_ax]
                base_m = k0 * sm
                step_m = kstep * sm
                first_val = 0.0
                last_val = 0.0
                for q in range(nk):
                    # clamp round-off at the side faces
                    xa_c = min(max(xa, 0.0), hia)
                    xb_c = min(max(xb, 0.0), hib)
                    i = int(xa_c)
                    j = int(xb_c)
                    fa = xa_c - i
                    fb = xb_c - j
                    off = base_m + i * sa + j * sb
                    v00 = flat[off]
                    v01 = flat[off + sb]
                    v10 = flat[off + sa]
                    v11 = flat[off + sa + sb]
                    v0 = v00 + (v01 - v00) * fb
                    v1 = v10 + (v11 - v10) * fb
                    val = v0 + (v1 - v0) * fa
                    acc += val
                    if q == 0:
                        first_val = val
                    last_val = val
                    xa += ia_step
                    xb += ib_step
                    base_m += step_m
                # interior samples carry ht each; the end samples carry their share clipped to [t0, t1]
                tfirst = tk
                tlast = tk + (nk - 1) * ht
                w_first = min(tfirst + 0.5 * ht, t1) - max(tfirst - 0.5 * ht, t0)
                w_last = min(tlast + 0.5 * ht, t1) - max(tlast - 0.5 * ht, t0)
                if nk == 1:
                    acc = first_val * (t1 - t0)
                else:
                    acc = (acc - first_val - last_val) * ht + first_val * w_first + last_val * w_last
            if nk == 0:
                # a chord shorter than the plane spacing: one bilinear sample on the nearest plane
                # carrying the whole chord
                tm = 0.5 * (t0 + t1)
                km = int(round(min(max(o[m] + tm * dm, 0.0), hi[m])))
                xa_c = min(max(o[a_ax] + tm * dd[a_ax], 0.0), hi[a_ax])
                xb_c = min(max(o[b_ax] + tm * dd[b_ax], 0.0), hi[b_ax])
                i = int(xa_c)
                j = int(xb_c)
                fa = xa_c - i
                fb = xb_c - j
                off = km * sm + i * sa + j * sb
                v0 = flat[off] + (flat[off + sb] - flat[off]) * fb
                v1 = flat[off + sa] + (flat[off + sa + sb] - flat[off + sa]) * fb
                acc = (v0 + (v1 - v0) * fa) * (t1 - t0)
            out[r, c] = acc


def prepare_joseph_volume(values: np.ndarray) -> np.ndarray:
    """float32 copy of ``values`` padded by one edge voxel at the high end of every axis."""
    vol = np.asarray(values, dtype=np.float32)
    return np.ascontiguousarray(np.pad(vol, [(0, 1)] * 3, mode="edge"))


def project_volume_joseph(values: np.ndarray, affine: np.ndarray, geometry, *,
                          padded: np.ndarray | None = None) -> np.ndarray:
    """Line integrals by Joseph's method (see :func:`_joseph_kernel`): samples on the voxel
    planes of each ray's dominant axis (spacing = voxel size / |cos| of the ray to that axis),
    bilinear in-plane. ``padded``: a ready :func:`prepare_joseph_volume` of ``values`` (cache)."""
    shape = np.asarray(np.shape(values), dtype=np.int64)
    if padded is None:
        padded = prepare_joseph_volume(values)
    strides = np.asarray([padded.shape[1] * padded.shape[2], padded.shape[2], 1], dtype=np.int64)
    inv = np.linalg.inv(np.asarray(affine, float))
    out = np.empty((geometry.rows, geometry.cols), dtype=np.float32)
    _joseph_kernel(padded.ravel(), shape, strides, np.ascontiguousarray(inv[:3, :3]),
                   np.ascontiguousarray(inv[:3, 3]), np.asarray(geometry.source_mm, float),
                   np.asarray(geometry.detector_origin_mm, float),
                   np.asarray(geometry.u * geometry.pixel_mm, float),
                   np.asarray(geometry.v * geometry.pixel_mm, float),
                   int(geometry.rows), int(geometry.cols), out)
    return out


# ------------------------------------------------------------------------- detector-parallel planes
@nb.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _planes_kernel(vol, b0, b1, c_lo, c_hi, col_i, col_f, wplane, ray0, du, dv, wscale, out):  # pragma: no cover - jit
    """Joseph's projector factorised for voxel planes parallel to the detector.

    ``vol`` (n_m, n_b + 1, n_a + 1): planes along the beam, rows of the plane along the detector's
    v, the contiguous axis along u, padded by one edge voxel. On plane k the ray of pixel (r, c)
    crosses index b = b0[k] + r·b1[k] (rows) and a = col_i[k, c] + col_f[k, c] (columns): a
    separable bilinear interpolation (first along b for the whole line, then along a per column)."""
    n_m = vol.shape[0]
    n_b = vol.shape[1] - 1
    n_a = vol.shape[2] - 1
    rows, cols = out.shape
    for r in nb.prange(rows):
        acc = np.zeros(cols, dtype=np.float32)
        line = np.empty(n_a + 1, dtype=np.float32)
        for k in range(n_m):
            lo = c_lo[k]
            hi = c_hi[k]
            if hi < lo:
                continue
            b = b0[k] + r * b1[k]
            if b < -1e-6 or b > n_b - 1 + 1e-6:
                continue
            b = min(max(b, 0.0), n_b - 1.0)
            j = int(b)
            g = np.float32(b - j)
            w = np.float32(wplane[k])
            v0 = vol[k, j]
            v1 = vol[k, j + 1]
            for q in range(n_a + 1):
                x0 = v0[q]
                line[q] = w * (x0 + g * (v1[q] - x0))
            ci = col_i[k]
            cf = col_f[k]
            for c in range(lo, hi + 1):
                i = ci[c]
                y0 = line[i]
                acc[c] += y0 + cf[c] * (line[i + 1] - y0)
        # each plane sample carries the ray length between consecutive planes
        for c in range(cols):
            x = ray0[0] + c * du[0] + r * dv[0]
            y = ray0[1] + c * du[1] + r * dv[1]
            z = ray0[2] + c * du[2] + r * dv[2]
            out[r, c] = acc[c] * np.float32(wscale * math.sqrt(x * x + y * y + z * z))


@nb.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _planes_block_kernel(vol, b0, b1, c_lo, c_hi, col_i, col_f, wplane, ray0, du, dv, wscale, block, t_rows,
                         out):  # pragma: no cover - jit
    """Same quadrature as :func:`_planes_kernel` for detectors finer than the voxels (|b1| < 1):
    blocks of ``block`` detector rows in parallel; per plane, the few volume rows that the block
    crosses are resampled once along the columns onto the detector columns (the only gathers),
    then each detector row is a contiguous, vectorisable blend of two resampled rows."""
    n_m = vol.shape[0]
    n_b = vol.shape[1] - 1
    rows, cols = out.shape
    n_blocks = (rows + block - 1) // block
    for blk in nb.prange(n_blocks):
        r0 = blk * block
        r1 = min(rows, r0 + block) - 1
        acc = np.zeros((block, cols), dtype=np.float32)
        T = np.empty((t_rows, cols), dtype=np.float32)
        for k in range(n_m):
            lo = c_lo[k]
            hi = c_hi[k]
            if hi < lo:
                continue
            bk0 = b0[k]
            bk1 = b1[k]
            ra = r0
            rb = r1
            if abs(bk1) > 1e-12:
                xa = (0.0 - bk0) / bk1
                xb = (n_b - 1.0 - bk0) / bk1
                if xa > xb:
                    xa, xb = xb, xa
                ra = max(ra, int(math.ceil(xa - 1e-9)))
                rb = min(rb, int(math.floor(xb + 1e-9)))
            elif bk0 < 0.0 or bk0 > n_b - 1.0:
                continue
            if rb < ra:
                continue
            ba = min(max(bk0 + ra * bk1, 0.0), n_b - 1.0)
            bb = min(max(bk0 + rb * bk1, 0.0), n_b - 1.0)
            jmin = int(min(ba, bb))
            jmax = min(int(max(ba, bb)) + 1, n_b)
            if jmax - jmin + 1 > t_rows:
                jmax = jmin + t_rows - 1
            ci = col_i[k]
            cf = col_f[k]
            w = np.float32(wplane[k])
            for jb in range(jmin, jmax + 1):
                src = vol[k, jb]
                Tj = T[jb - jmin]
                for c in range(lo, hi + 1):
                    i = ci[c]
                    y0 = src[i]
                    Tj[c] = w * (y0 + cf[c] * (src[i + 1] - y0))
            for r in range(ra, rb + 1):
                b = min(max(bk0 + r * bk1, 0.0), n_b - 1.0)
                j = min(int(b), jmax - 1)
                g = np.float32(b - j)
                T0 = T[j - jmin]
                T1 = T[j - jmin + 1]
                ar = acc[r - r0]
                for c in range(lo, hi + 1):
                    x0 = T0[c]
                    ar[c] += x0 + g * (T1[c] - x0)
        for r in range(r0, r1 + 1):
            ar = acc[r - r0]
            for c in range(cols):
                x = ray0[0] + c * du[0] + r * dv[0]
                y = ray0[1] + c * du[1] + r * dv[1]
                z = ray0[2] + c * du[2] + r * dv[2]
                out[r, c] = ar[c] * np.float32(wscale * math.sqrt(x * x + y * y + z * z))


def planes_layout(affine: np.ndarray, geometry, tol_voxel: float = 1e-3):
    """If every voxel plane of one volume axis is parallel to the detector and the two other axes
    run along the detector's columns and rows, return (m, b, a, sign) — the volume axes along the
    beam, the rows and the columns — else None (use the ray-driven kernel)."""
    inv = np.linalg.inv(np.asarray(affine, float))[:3, :3]
    du = geometry.u * geometry.pixel_mm
    dv = geometry.v * geometry.pixel_mm
    dirv = geometry.direction
    iu = inv @ du            # index change per detector column (at the detector plane)
    iv = inv @ dv
    idr = inv @ dirv
    m = int(np.argmax(np.abs(idr)))
    a = int(np.argmax(np.abs(iu)))
    b = int(np.argmax(np.abs(iv)))
    if len({m, a, b}) < 3:
        return None
    n = max(geometry.rows, geometry.cols)
    # off-axis index drift across the whole detector must stay below tol_voxel
    for ax in range(3):
        if ax != a and abs(iu[ax]) * n > tol_voxel:
            return None
        if ax != b and abs(iv[ax]) * n > tol_voxel:
            return None
    if abs(idr[a]) > 1e-9 * abs(idr[m]) + 1e-12 or abs(idr[b]) > 1e-9 * abs(idr[m]) + 1e-12:
        # the beam is not along axis m: the planes are not parallel to the detector
        if np.hypot(idr[a], idr[b]) / abs(idr[m]) * n > tol_voxel:
            return None
    return m, b, a


def prepare_planes_volume(values: np.ndarray, layout) -> np.ndarray:
    """Volume reordered to (m, b, a), float32, C-contiguous, padded by one edge voxel in b and a."""
    m, b, a = layout
    vol = np.transpose(np.asarray(values, dtype=np.float32), (m, b, a))
    return np.ascontiguousarray(np.pad(vol, [(0, 0), (0, 1), (0, 1)], mode="edge"))


def project_volume_planes(values: np.ndarray, affine: np.ndarray, geometry, layout=None,
                          prepared: np.ndarray | None = None) -> np.ndarray | None:
    """Joseph line integrals for detector-parallel voxel planes (None when the layout does not
    apply). Same quadrature as :func:`project_volume_joseph` (one sample per plane along the beam,
    bilinear in-plane, end planes half-weighted); only rays that leave the volume through a side
    face differ, by at most the last partial sample."""
    layout = layout or planes_layout(affine, geometry)
    if layout is None:
        return None
    m, b, a = layout
    shape = np.shape(values)
    n_m, n_b, n_a = shape[m], shape[b], shape[a]
    if min(n_m, n_b, n_a) < 2:
        return None
    vol = prepare_planes_volume(values, layout) if prepared is None else prepared
    A = np.asarray(affine, float)
    inv = np.linalg.inv(A)
    lin, off = inv[:3, :3], inv[:3, 3]
    src = np.asarray(geometry.source_mm, float)
    det0 = np.asarray(geometry.detector_origin_mm, float)
    du = geometry.u * geometry.pixel_mm
    dv = geometry.v * geometry.pixel_mm
    sdd = float(geometry.source_to_detector_mm)
    k = np.arange(n_m, dtype=float)
    # depth of plane k along the beam; the ray to any pixel reaches it at fraction s_k of its length
    col_m = A[:3, m]
    p0 = A[:3, 3]
    z = (p0 - src) @ geometry.direction + k * (col_m @ geometry.direction)
    s = z / sdd
    base = src[None, :] + s[:, None] * (det0 - src)[None, :]
    idx0 = base @ lin.T + off
    a0 = idx0[:, a]
    b0 = idx0[:, b]
    a1 = s * (lin[a] @ du)
    b1 = s * (lin[b] @ dv)
    # columns whose ray crosses plane k inside [0, n_a − 1]
    cols = geometry.cols
    with np.errstate(divide="ignore", invalid="ignore"):
        ca = (0.0 - a0) / a1
        cb = (n_a - 1.0 - a0) / a1
    lo = np.ceil(np.minimum(ca, cb) - 1e-9)
    hi = np.floor(np.maximum(ca, cb) + 1e-9)
    ok = (z > 0) & np.isfinite(lo) & np.isfinite(hi)
    c_lo = np.where(ok, np.clip(lo, 0, cols), 1).astype(np.int64)
    c_hi = np.where(ok, np.clip(hi, -1, cols - 1), 0).astype(np.int64)
    wplane = np.ones(n_m)
    wplane[0] = wplane[-1] = 0.5
    ca_all = np.clip(a0[:, None] + np.arange(cols)[None, :] * a1[:, None], 0.0, n_a - 1.0)
    col_i = np.minimum(ca_all.astype(np.int32), n_a - 1)
    col_f = (ca_all - col_i).astype(np.float32)
    wscale = abs(col_m @ geometry.direction) / sdd
    out = np.empty((geometry.rows, cols), dtype=np.float32)
    bmax = float(np.max(np.abs(b1)))
    if bmax < 0.8:
        block = PLANES_ROW_BLOCK
        t_rows = int(math.ceil(block * bmax)) + 3
        _planes_block_kernel(vol, b0, b1, c_lo, c_hi, col_i, col_f, wplane, det0 - src, du, dv, float(wscale),
                             block, t_rows, out)
    else:
        _planes_kernel(vol, b0, b1, c_lo, c_hi, col_i, col_f, wplane, det0 - src, du, dv, float(wscale), out)
    return out
