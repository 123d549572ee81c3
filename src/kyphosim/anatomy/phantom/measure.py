"""Measure the drawn body shape exactly as the height convention says (docs/phantom.md).

Everything here works on the analytic shape (:class:`VertebraShape.body_sdf`), by ray casting at
0.02 mm steps, never on voxels; ``tests/test_phantom_truth.py`` checks that the same measurement on a
fine voxelisation of the label map agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kyphosim.anatomy.phantom.geometry import VertebraShape, _rot_x

__all__ = ["BodyMeasure", "measure_body", "ray_extent", "genant_grade", "measure_heights_on_labels"]

AP_FRACTIONS = (0.10, 0.50, 0.90)   # Ha, Hm, Hp positions from the anterior margin
BAND_FRACTION = 0.20                # |LR| ≤ 20 % of the body width
N_BAND = 11


def genant_grade(loss_pct: float) -> int:
    """Genant SQ grade from a height loss in % (0 < 20, 1: 20–<25, 2: 25–40, 3: > 40)."""
    if loss_pct < 20.0:
        return 0
    if loss_pct < 25.0:
        return 1
    if loss_pct <= 40.0:
        return 2
    return 3


def ray_extent(sdf, origins: np.ndarray, direction: np.ndarray, smin: float, smax: float,
               step: float = 0.02, coarse: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """First entry and last exit parameter (mm) of rays ``origins + s·direction`` through ``sdf ≤ 0``.

    Rays are sampled every ``coarse`` mm, then the two crossings are re-sampled every ``step`` mm and
    refined by linear interpolation of the sdf. Returns NaN for rays that miss.
    """
    direction = np.asarray(direction, float)
    s = np.arange(smin, smax + coarse / 2, coarse)
    m = len(origins)
    pts = origins[:, None, :] + s[None, :, None] * direction[None, None, :]
    inside = (sdf(pts.reshape(-1, 3)) <= 0).reshape(m, len(s))
    first = np.full(m, np.nan)
    last = np.full(m, np.nan)
    fine = np.arange(0.0, coarse + step / 2, step)
    brackets, owners = [], []
    for r in range(m):
        idx = np.flatnonzero(inside[r])
        if idx.size == 0:
            continue
        i0, i1 = idx[0], idx[-1]
        brackets.append(s[max(i0 - 1, 0)])
        brackets.append(s[min(i1, len(s) - 2)])
        owners.append(r)
    if not owners:
        return first, last
    starts = np.asarray(brackets)
    seg = starts[:, None] + fine[None, :]
    o = np.repeat(origins[owners], 2, axis=0)
    p2 = o[:, None, :] + seg[:, :, None] * direction[None, None, :]
    v = sdf(p2.reshape(-1, 3)).reshape(seg.shape)
    for k, r in enumerate(owners):
        va, sa = v[2 * k], seg[2 * k]
        j = np.flatnonzero(va <= 0)
        if j.size == 0:
            first[r] = sa[-1]
        elif j[0] == 0:
            first[r] = sa[0]
        else:
            a, b = va[j[0] - 1], va[j[0]]
            first[r] = sa[j[0] - 1] + step * a / (a - b) if a != b else sa[j[0]]
        vb, sb = v[2 * k + 1], seg[2 * k + 1]
        j = np.flatnonzero(vb <= 0)
        if j.size == 0:
            last[r] = sb[0]
        elif j[-1] == len(sb) - 1:
            last[r] = sb[-1]
        else:
            a, b = vb[j[-1]], vb[j[-1] + 1]
            last[r] = sb[j[-1]] + step * a / (a - b) if a != b else sb[j[-1]]
    return first, last


@dataclass
class BodyMeasure:
    """Heights and frame of one body, in its local (construction) frame unless stated."""

    tilt_deg: float               # sagittal tilt of the measurement SI axis vs local z (anterior +)
    centroid: np.ndarray          # body volume centroid, local mm
    si: np.ndarray                # measurement axes in local coordinates (unit)
    ap: np.ndarray
    lr: np.ndarray
    depth_mm: float
    width_mm: float
    ha_mm: float
    hm_mm: float
    hp_mm: float
    wedge_angle_deg: float
    bulge_mm: float
    anterior_point: np.ndarray    # anterior margin on the mid-sagittal AP ray, local mm


def _line_tilt(y: np.ndarray, z: np.ndarray) -> float:
    """Sagittal tilt (deg, anterior +) of the normal of the line z(y) fitted by least squares."""
    slope = np.polyfit(y, z, 1)[0]
    return math.degrees(math.atan(-slope))


def _centroid(shape: VertebraShape, grid_mm: float) -> np.ndarray:
    retro = shape.retro_mm
    xs = np.arange(grid_mm / 2, shape.a * 1.02, grid_mm)       # x ≥ 0: the body is symmetric in x
    ys = np.arange(-shape.D / 2 - shape.delta - retro - 0.5, shape.D / 2 + 0.5, grid_mm)
    zs = np.arange(-shape.hp / 2 - 1.5, max(shape.hp, shape.ha) / 2 + 1.5, grid_mm)
    g = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = shape.body_sdf(g) <= 0
    c = g[inside].mean(axis=0)
    c[0] = 0.0
    return c


def measure_body(shape: VertebraShape, *, fine: bool = True) -> BodyMeasure:
    """Measure Ha, Hm, Hp, depth, width, wedge angle and posterior-wall bulge of a body shape."""
    step = 0.02 if fine else 0.06
    # endplate lines: least-squares lines through the mid-sagittal endplate profiles, 10–90 % depth
    yy = np.linspace(-0.4 * shape.D, 0.4 * shape.D, 41)
    t_sup = _line_tilt(yy, shape.z_sup(0.0, yy))
    t_inf = _line_tilt(yy, shape.z_inf(0.0, yy))
    tilt = 0.5 * (t_sup + t_inf)
    wedge = t_sup - t_inf
    R = _rot_x(tilt)               # rows: measurement axes in local coordinates
    lr, ap, si = R[0], R[1], R[2]
    c = _centroid(shape, 0.5 if fine else 1.0)
    c[0] = 0.0                     # mid-sagittal plane (the shape is symmetric in x)
    sdf = shape.body_sdf
    big = shape.D + 20
    f, l = ray_extent(sdf, c[None], ap, -big, big, step)
    depth = float(l[0] - f[0])
    ant = c + l[0] * ap
    f, l = ray_extent(sdf, c[None], lr, -shape.W, shape.W, step)
    width = float(l[0] - f[0])
    offs = np.linspace(-BAND_FRACTION * width, BAND_FRACTION * width, N_BAND)
    hs = []
    for frac in AP_FRACTIONS:
        base = ant - frac * depth * ap
        origins = base[None] + offs[:, None] * lr[None]
        f, l = ray_extent(sdf, origins, si, -shape.hp, shape.hp, step)
        hs.append(float(np.nanmedian(l - f)))
    ha, hm, hp = hs
    # posterior-wall bulge: mid-sagittal profile between 10 % and 90 % of Hp
    post = ant - 0.9 * depth * ap
    f, l = ray_extent(sdf, post[None], si, -shape.hp, shape.hp, step)
    s_lo, s_hi = f[0], l[0]
    ss = np.linspace(s_lo + 0.1 * (s_hi - s_lo), s_lo + 0.9 * (s_hi - s_lo), 33)
    # rays along AP through the centroid's AP line, at SI offsets relative to the centroid
    base_si = (post - c) @ si
    origins = c[None] + (base_si + ss)[:, None] * si[None]
    f, _ = ray_extent(sdf, origins, ap, -big, big, step)
    wall = f                                   # posterior wall position along AP (more negative = further back)
    chord = wall[0] + (wall[-1] - wall[0]) * (ss - ss[0]) / (ss[-1] - ss[0])
    bulge = float(max(0.0, np.nanmax(chord - wall)))
    return BodyMeasure(tilt_deg=tilt, centroid=c, si=si, ap=ap, lr=lr, depth_mm=depth, width_mm=width,
                       ha_mm=ha, hm_mm=hm, hp_mm=hp, wedge_angle_deg=wedge, bulge_mm=bulge,
                       anterior_point=ant)


# ------------------------------------------------------------------------------ on voxels (checks)
def _mask_sampler(labels, label: int, subregions=None):
    """Trilinear sampler (threshold 0.5) of ``labels == label``, restricted to the vertebral body
    (sub-regions 1 and 6) when ``subregions`` is given, at world points (N, 3)."""
    from scipy import ndimage

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


def _span(inside, origin, direction, half: float, step: float = 0.05) -> tuple[float, float]:
    s = np.arange(-half, half + step / 2, step)
    v = inside(origin[None] + s[:, None] * direction[None])
    idx = np.flatnonzero(v)
    return (np.nan, np.nan) if idx.size == 0 else (float(s[idx[0]]), float(s[idx[-1]]))


def measure_heights_on_labels(labels, level: dict, subregions=None) -> dict[str, float]:
    """Ha, Hm, Hp, depth and width of one level measured on a voxel label map by the height
    convention, in the frame given by the truth entry ``level`` (centroid and axes).

    Used by the tests and the benchmark to check the analytic truth against what is voxelised;
    a voxelised surface is only known to ±half a voxel.
    """
    inside = _mask_sampler(labels, int(level["label"]), subregions)
    c = np.asarray(level["centroid_mm"], float)
    si, ap, lr = (np.asarray(level[k], float) for k in ("si_axis", "ap_axis", "lr_axis"))
    f, l = _span(inside, c, ap, 35.0)
    depth = l - f
    ant = c + l * ap
    f, l = _span(inside, c, lr, 45.0)
    width = l - f
    offs = np.linspace(-BAND_FRACTION * width, BAND_FRACTION * width, N_BAND)
    out = {"depth": depth, "width": width}
    for key, frac in zip(("ha", "hm", "hp"), AP_FRACTIONS):
        hs = [np.subtract(*_span(inside, ant - frac * depth * ap + o * lr, si, 30.0)[::-1]) for o in offs]
        out[key] = float(np.nanmedian(hs))
    return out
