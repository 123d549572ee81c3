"""Voxelise the phantom: soft tissue, canal, discs and vertebrae on a canonical (RAS) grid.

Every part is evaluated as an approximate signed distance in its vertebra's local frame, only
inside that vertebra's bounding box; occupancies are anti-aliased over one voxel so partial-volume
effects are drawn before the CT point-spread function and the noise are applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from kyphosim.anatomy.phantom.chain import rng_for
from kyphosim.anatomy.phantom.geometry import ENDPLATE_MM, PE_CORTEX_MM, SHELL_MM, VertebraShape
from kyphosim.anatomy.phantom.hu import (CORTICAL_MG_CM3, POSTERIOR_TRAB_FACTOR, TISSUE_HU,
                                         hu_from_vbmd)
from kyphosim.anatomy.phantom.spec import PhantomSpec
from kyphosim.errors import InputError
from kyphosim.imaging.labels import SUBREGION_IDS

__all__ = ["Grid", "make_grid", "render", "RenderResult"]

_AX = {"L": 0, "R": 0, "P": 1, "A": 1, "I": 2, "S": 2}
MAX_VOXELS = 120e6    # ≈ 0.5 GB per float32 volume; several are alive while rendering
SB = SUBREGION_IDS


@dataclass
class Grid:
    """Canonical RAS grid: ``shape`` voxels of ``spacing`` mm starting at world ``origin`` (voxel centre)."""

    origin: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, int, int]

    @property
    def affine(self) -> np.ndarray:
        a = np.diag([*self.spacing, 1.0])
        a[:3, 3] = self.origin
        return a

    def axis(self, k: int) -> np.ndarray:
        return self.origin[k] + self.spacing[k] * np.arange(self.shape[k])

    def index_range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice]:
        i0 = np.floor((lo - self.origin) / self.spacing).astype(int)
        i1 = np.ceil((hi - self.origin) / self.spacing).astype(int) + 1
        i0 = np.clip(i0, 0, self.shape)
        i1 = np.clip(i1, 0, self.shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))  # type: ignore[return-value]

    def points(self, sl: tuple[slice, slice, slice]) -> np.ndarray:
        axes = [self.axis(k)[sl[k]] for k in range(3)]
        g = np.meshgrid(*axes, indexing="ij")
        return np.stack([a.ravel() for a in g], axis=1)


def world_spacing(spec: PhantomSpec) -> np.ndarray:
    """Spacing along world x, y, z from the spacing of the output array axes."""
    sp = np.zeros(3)
    for code, s in zip(spec.orientation, spec.spacing_mm):
        sp[_AX[code]] = s
    return sp


def world_bounds(shapes: list[VertebraShape]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for s in shapes:
        a, b = s.local_bounds()
        corners = np.array(np.meshgrid(*zip(a, b), indexing="ij")).reshape(3, -1).T
        w = s.to_world(corners)
        lo, hi = np.minimum(lo, w.min(0)), np.maximum(hi, w.max(0))
    return lo, hi


def make_grid(spec: PhantomSpec, shapes: list[VertebraShape]) -> Grid:
    """Field of view: the bones plus a margin, or a torso-sized slab with air behind the back."""
    sp = world_spacing(spec)
    lo, hi = world_bounds(shapes)
    top, bot = shapes[0], shapes[-1]
    z_hi = top.to_world(np.array([0.0, 0.0, top.hp / 2 + top.disc_above / 2]))[2] + 1.0
    z_lo = bot.to_world(np.array([0.0, 0.0, -bot.hp / 2 - bot.disc_below / 2]))[2] - 1.0
    if spec.margin_mm is not None or not spec.soft_tissue:
        m = 4.0 if spec.margin_mm is None else spec.margin_mm
        lo = lo - m
        hi = hi + m
        lo[2], hi[2] = max(lo[2], z_lo - m), min(hi[2], z_hi + m)
    else:
        xmax = max(abs(lo[0]), abs(hi[0])) + 25.0
        lo = np.array([-max(xmax, 85.0), lo[1] - 45.0, z_lo])
        hi = np.array([max(xmax, 85.0), hi[1] + 55.0, z_hi])
    n = np.floor((hi - lo) / sp).astype(int) + 1
    if float(np.prod(n.astype(float))) > MAX_VOXELS:
        raise InputError(f"the phantom would have {np.prod(n.astype(float)) / 1e6:.0f} M voxels "
                         f"(limit {MAX_VOXELS / 1e6:.0f} M): use fewer levels, a coarser spacing or --margin")
    return Grid(origin=lo, spacing=sp, shape=tuple(int(v) for v in n))  # type: ignore[arg-type]


@dataclass
class RenderResult:
    ct: np.ndarray            # HU before blur/noise, float32
    labels: np.ndarray        # uint8 VerSe ids
    sub: np.ndarray           # uint8 sub-region ids
    trab_stats: dict          # per level: mean vBMD (mg/cm³) over fully trabecular voxels, count


def _occ(sdf: np.ndarray, h: float) -> np.ndarray:
    return np.clip(0.5 - sdf / h, 0.0, 1.0)


def _masked(fn, p: np.ndarray, lo, hi) -> np.ndarray:
    """Evaluate ``fn`` only on points inside the local box [lo, hi]; +inf elsewhere."""
    m = np.all((p >= lo) & (p <= hi), axis=1)
    out = np.full(len(p), np.inf)
    if np.any(m):
        r = fn(p[m])
        out[m] = r[0] if isinstance(r, tuple) else r
    return out


# ---------------------------------------------------------------------------------- soft tissue
def _spine_profiles(shapes: list[VertebraShape]) -> dict[str, np.ndarray]:
    """Per-level world references, ordered by z, for interpolating soft tissue along the curve."""
    rows = []
    for s in shapes:
        c = s.to_world(np.zeros(3))
        tip = s.to_world(s.spinous_tip())
        rows.append(dict(z=c[2], y_body=c[1], y_ant=s.to_world(np.array([0, s.D / 2, 0]))[1],
                         y_post=s.to_world(np.array([0, -s.D / 2, 0]))[1],
                         y_lam=s.to_world(np.array([0, -s.D / 2 - s.cd - s.t_lam, 0]))[1],
                         y_tip=tip[1], width=s.W, canal_w=s.cw,
                         psoas=float({"L1": 8, "L2": 12, "L3": 16, "L4": 19, "L5": 21}.get(s.name, 0.0)),
                         thoracic=1.0 if s.thoracic and s.name != "T12" else 0.0))
    rows.sort(key=lambda r: r["z"])
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def _soft_params(spec: PhantomSpec) -> tuple[float, float]:
    """Seeded soft-tissue draws: subcutaneous fat thickness over the back and aortic radius, mm."""
    rng = rng_for(spec.seed, 0, "soft")
    return float(rng.uniform(12.0, 24.0)), float(rng.uniform(9.5, 12.5))


def calibration_rois(grid: Grid, shapes: list[VertebraShape], spec: PhantomSpec) -> dict:
    """Spherical regions of air, fat, muscle and blood (centre world mm, radius mm, nominal HU) at
    the height of the middle level: where a phantomless calibration can read reference tissues."""
    if not spec.soft_tissue:
        return {}
    fat_sc, aorta_r = _soft_params(spec)
    prof = _spine_profiles(shapes)
    mid = shapes[len(shapes) // 2]
    z = float(mid.to_world(np.zeros(3))[2])
    ip = {k: float(np.interp(z, prof["z"], v)) for k, v in prof.items() if k != "z"}
    w = ip["width"]
    y_tip = ip["y_tip"]
    y_front, y_back = ip["y_lam"] + 8.0, y_tip - 4.0
    ymid, bh = 0.5 * (y_front + y_back), 0.5 * (y_front - y_back)
    xm = w / 2 + 28.0
    xf = 0.8 * xm
    y_skin_f = y_tip - (fat_sc + 6.0) + 0.0025 * xf ** 2
    y_musc_back = ymid - bh * (1 - (xf / xm) ** 4) ** 0.25
    air_y = 0.5 * (grid.origin[1] + (y_tip - (fat_sc + 6.0)))
    rois = {
        "air": ([0.0, air_y, z], max(1.0, min(5.0, 0.5 * (y_tip - fat_sc - 6.0 - grid.origin[1]) - 1.5))),
        "fat": ([-xf, 0.5 * (y_skin_f + y_musc_back), z], max(1.0, min(4.0, 0.5 * (y_musc_back - y_skin_f) - 1.5))),
        "muscle": ([-(ip["canal_w"] / 2 + 14.0), ymid, z], 4.0),
        "blood": ([-14.0, ip["y_ant"] + aorta_r + 2.0, z], aorta_r - 2.5),
    }
    return {k: {"center_mm": c, "radius_mm": float(r), "hu": spec.hu_offset + spec.hu_gain * TISSUE_HU[k]}
            for k, (c, r) in rois.items()}


def _soft_tissue(grid: Grid, shapes: list[VertebraShape], spec: PhantomSpec) -> np.ndarray:
    nx, ny, nz = grid.shape
    ct = np.empty(grid.shape, np.float32)
    if not spec.soft_tissue:
        ct.fill(TISSUE_HU["background"])
        return ct
    fat_sc, aorta_r = _soft_params(spec)
    prof = _spine_profiles(shapes)
    zc = grid.axis(2)
    ip = {k: np.interp(zc, prof["z"], v) for k, v in prof.items() if k != "z"}
    X = grid.axis(0)[:, None]
    Y = grid.axis(1)[None, :]
    for k in range(nz):
        sl = np.full((nx, ny), TISSUE_HU["organ"], np.float32)
        yb, ya, yp = ip["y_body"][k], ip["y_ant"][k], ip["y_post"][k]
        w = ip["width"][k]
        # para-vertebral / retroperitoneal fat around the spine
        fy, fh = 0.5 * (yp - 5 + ya + 40), 0.5 * (ya + 45 - yp)
        fat = (np.abs(X) / (w / 2 + 40)) ** 4 + (np.abs(Y - fy) / fh) ** 4 <= 1
        sl[fat] = TISSUE_HU["fat"]
        t = ip["thoracic"][k]
        if t > 0.05:   # lungs; towards the diaphragm they recede laterally (costophrenic recess)
            ly, lh = 0.5 * (yp - 8 + ya + 60), 0.5 * (ya + 68 - yp)
            lung = (np.abs(X) > w / 2 + 6 + 70 * (1 - t)) & ((np.abs(Y - ly) / lh) ** 6 <= 1)
            sl[lung] = TISSUE_HU["lung"]
        r_ps = ip["psoas"][k]
        if r_ps > 3:
            for side in (-1, 1):
                e = ((X - side * (w / 2 + r_ps * 0.9)) / r_ps) ** 2 + ((Y - (yb - 0.05 * w)) / (0.85 * r_ps)) ** 2
                sl[e <= 1] = TISSUE_HU["muscle"]
        # aorta (left, anterior) and inferior vena cava (right)
        sl[((X + 14.0) ** 2 + (Y - (ya + aorta_r + 2)) ** 2) <= aorta_r ** 2] = TISSUE_HU["blood"]
        sl[(((X - 24.0) / 11.0) ** 2 + ((Y - (ya + 9.0)) / 8.0) ** 2) <= 1] = TISSUE_HU["blood"]
        # back: paraspinal muscles, subcutaneous fat, skin, air
        y_tip = ip["y_tip"][k]
        y_skin = y_tip - (fat_sc + 6.0) + 0.0025 * X ** 2
        y_front = ip["y_lam"][k] + 8.0
        y_back = y_tip - 4.0
        xm = w / 2 + 28.0
        ymid, bh = 0.5 * (y_front + y_back), 0.5 * (y_front - y_back)
        musc = ((np.abs(X) / xm) ** 4 + (np.abs(Y - ymid) / bh) ** 4) <= 1
        sl[(Y < yp - 5) & ~musc] = TISSUE_HU["fat"]
        sl[musc] = TISSUE_HU["muscle"]
        sl[np.broadcast_to(Y < y_skin, sl.shape)] = TISSUE_HU["air"]
        ct[:, :, k] = sl
    return ct


# ---------------------------------------------------------------------------------- bone
def _body_box(s: VertebraShape):
    retro = s.retro_mm
    lo = np.array([-s.a * 1.02 - 1.5, -s.D / 2 - s.delta - retro - 1.5, -max(s.hp, s.ha) / 2 - 1.5])
    hi = np.array([s.a * 1.02 + 1.5, s.D / 2 + 1.5, max(s.hp, s.ha) / 2 + 1.5])
    return lo, hi


def _render_canal(grid: Grid, s: VertebraShape, ct, sub, h: float) -> None:
    lo = np.array([-s.cw / 2 - 1, -s.D / 2 - s.cd - 1, -s.hp / 2 - s.disc_below / 2 - 1])
    hi = np.array([s.cw / 2 + 1, -s.D / 2 + 1, s.hp / 2 + s.disc_above / 2 + 1])
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
    w = s.to_world(corners)
    sl = grid.index_range(w.min(0), w.max(0))
    pts = grid.points(sl)
    if len(pts) == 0:
        return
    p = s.to_local(pts)
    d = s.canal_sdf(p).reshape(ct[sl].shape)
    o = _occ(d, h)
    # thecal sac (CSF/cord) in the anterior 80 % of the canal, epidural fat dorsally and laterally
    yc = -s.D / 2 - 0.42 * s.cd
    r = np.hypot(p[:, 0] / (0.4 * s.cw), (p[:, 1] - yc) / (0.4 * s.cd)).reshape(o.shape)
    sac = np.clip(0.5 - (r - 1.0) * min(0.4 * s.cw, 0.4 * s.cd) / h, 0.0, 1.0)
    fill = sac * TISSUE_HU["csf"] + (1 - sac) * TISSUE_HU["fat"]
    block = ct[sl]
    ct[sl] = o * fill + (1 - o) * block
    sb = sub[sl]
    sb[d <= 0] = SB["spinal_canal"]
    sub[sl] = sb


def _render_disc(grid: Grid, lo_s: VertebraShape, up_s: VertebraShape | None, ct, sub, h: float,
                 which: str = "between") -> None:
    """Disc between ``lo_s`` and ``up_s``; with ``up_s`` None an end disc above/below ``lo_s``."""
    s = lo_s
    if which == "between" or which == "above":
        zlo, zhi = s.hp / 2 - 3, s.hp / 2 + s.disc_above + 3
    else:
        zlo, zhi = -s.hp / 2 - s.disc_below - 3, -s.hp / 2 + 3
    lo = np.array([-s.a * 1.1, -s.D / 2 - s.delta - 1, zlo])
    hi = np.array([s.a * 1.1, s.D / 2 + 2, zhi])
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
    w = s.to_world(corners)
    sl = grid.index_range(w.min(0), w.max(0))
    pts = grid.points(sl)
    if len(pts) == 0:
        return
    p = s.to_local(pts)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    lat = (s.rho_ep(x, y) - 1.02) * min(s.a, s.b)
    lat = np.maximum(lat, -s.D / 2 - s.delta * np.clip(x / s.a, -1, 1) ** 2 - 0.5 - y)
    if which == "between":
        q = up_s.to_local(pts)
        lat_u = (up_s.rho_ep(q[:, 0], q[:, 1]) - 1.02) * min(up_s.a, up_s.b)
        lat = 0.5 * (lat + lat_u)
        d = np.maximum.reduce([s.z_sup(x, y) - z, q[:, 2] - up_s.z_inf(q[:, 0], q[:, 1]), lat])
    elif which == "above":
        d = np.maximum.reduce([s.z_sup(x, y) - z, z - (s.hp / 2 + s.disc_above), lat])
    else:
        d = np.maximum.reduce([z - s.z_inf(x, y), -(s.hp / 2 + s.disc_below) - z, lat])
    rho = np.clip(s.rho_ep(x, y), 0, 1).reshape(ct[sl].shape)
    d = d.reshape(ct[sl].shape)
    o = _occ(d, h)
    # nucleus (centre, ≈ 70 HU) to annulus (rim, ≈ 95 HU)
    disc_hu = TISSUE_HU["disc"] - 10.0 + 25.0 * rho ** 2
    ct[sl] = o * disc_hu + (1 - o) * ct[sl]
    sb = sub[sl]
    sb[d <= 0] = SB["intervertebral_disc"]
    sub[sl] = sb


def _vertebra_sdf(s: VertebraShape, p: np.ndarray) -> np.ndarray:
    """Coarse union of every bony part (for culling empty space)."""
    return np.minimum.reduce([s.body_sdf(p), s.pedicle_sdf(p, -1)[0], s.pedicle_sdf(p, 1)[0],
                              s.lamina_sdf(p), s.spinous_sdf(p), s.tp_sdf(p), s.facet_sdf(p)])


def _near_mask(grid: Grid, sl: tuple[slice, slice, slice], s: VertebraShape, block: int = 4,
               fn=None) -> np.ndarray:
    """Voxels of the box ``sl`` in blocks of ``block``³ whose centre lies near the bone (culling)."""
    shape = tuple(x.stop - x.start for x in sl)
    nb = [-(-n // block) for n in shape]
    centres = []
    for k in range(3):
        idx = sl[k].start + block * np.arange(nb[k]) + (block - 1) / 2.0
        centres.append(grid.origin[k] + grid.spacing[k] * idx)
    c = np.stack(np.meshgrid(*centres, indexing="ij"), axis=-1).reshape(-1, 3)
    d = (fn or (lambda q: _vertebra_sdf(s, q)))(s.to_local(c))
    half_diag = 0.5 * block * float(np.linalg.norm(grid.spacing))
    keep = (d < 1.6 * half_diag + 2.5).reshape(nb)
    ii = np.arange(shape[0]) // block
    jj = np.arange(shape[1]) // block
    kk = np.arange(shape[2]) // block
    return keep[ii[:, None, None], jj[None, :, None], kk[None, None, :]]


def _render_vertebra(grid: Grid, s: VertebraShape, spec: PhantomSpec, level_bmd: float,
                     ct, labels, sub, h: float) -> dict:
    lo, hi = s.local_bounds()
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
    w = s.to_world(corners)
    sl = grid.index_range(w.min(0), w.max(0))
    bshape = ct[sl].shape
    if min(bshape) == 0:
        return {"vbmd_mg_cm3": float("nan"), "vbmd_baseline_mg_cm3": float(level_bmd), "n_voxels": 0}
    sel = _near_mask(grid, sl, s)
    idx = np.nonzero(sel)
    start = np.array([x.start for x in sl], float)
    pts = grid.origin + grid.spacing * (np.stack(idx, axis=1) + start)
    p = s.to_local(pts)
    n = len(p)
    blo, bhi = _body_box(s)
    in_body_box = np.all((p >= blo) & (p <= bhi), axis=1)
    sdf_b = np.full(n, np.inf)
    sdf_bi = np.full(n, np.inf)
    pb = p[in_body_box]
    ep = ENDPLATE_MM * (1.6 if (s.fracture is not None and s.fracture.age == "chronic") else 1.0)
    sdf_b[in_body_box] = s.body_sdf(pb)
    # bony endplate thinnest centrally, thicker towards the ring apophysis: 0.75·ep … 1.5·ep
    rho = np.clip(s.rho_ep(pb[:, 0], pb[:, 1]), 0.0, 1.0)
    sdf_bi[in_body_box] = s.body_sdf(pb, shell=SHELL_MM, endplate=ep * (0.75 + 0.75 * rho ** 4))
    if s.fracture is not None and s.fracture.age == "acute":
        brk = s.cortical_breaks(pb)
        if np.any(brk):   # fracture lines: no cortex, trabecular bone reaches the surface
            bi = sdf_bi[in_body_box]
            bi[brk] = np.minimum(bi[brk], s.body_sdf(pb[brk]) + 0.05)
            sdf_bi[in_body_box] = bi
    # posterior elements
    ped = {}
    ped_t = {}
    for side in (-1, 1):
        d, t = np.full(n, np.inf), np.full(n, -np.inf)
        iso, dv, _, _ = s.pedicle_frame(side)
        t_a, _, t_p = s.pedicle_t_range(side)
        ends = [iso + t_a * dv, iso + t_p * dv]
        r = max(s.pw, s.ph) * 1.2
        plo = np.minimum(*ends) - r
        phi_ = np.maximum(*ends) + r
        m = np.all((p >= plo) & (p <= phi_), axis=1)
        if np.any(m):
            dd, tt = s.pedicle_sdf(p[m], side)
            d[m], t[m] = dd, tt
        ped[side], ped_t[side] = d, t
    post_lo = np.array([lo[0], lo[1], lo[2]])
    post_hi = np.array([hi[0], -s.D / 2 + 2.0, hi[2]])
    lam = _masked(s.lamina_sdf, p, post_lo, post_hi)
    spn = _masked(s.spinous_sdf, p, np.array([-6.0, lo[1], lo[2]]), np.array([6.0, -s.D / 2 - s.cd + 3, hi[2]]))
    tps = _masked(s.tp_sdf, p, post_lo, np.array([hi[0], -s.D / 2 + 5.0, hi[2]]))
    fac = _masked(s.facet_sdf, p, post_lo, post_hi)
    sdf_other = np.minimum.reduce([lam, spn, tps, fac])
    sdf_pe = np.minimum.reduce([ped[-1], ped[1], sdf_other])
    sdf = np.minimum(sdf_b, sdf_pe)
    inner = np.minimum(sdf_bi, sdf_pe + PE_CORTEX_MM)
    occ = _occ(sdf, h)
    trab = np.minimum(_occ(inner, h), occ)
    touched = occ > 0
    # holes inside the body: basivertebral foramen / vein, fracture cleft
    bvf = np.full(n, np.inf)
    bvf[in_body_box] = s.bvf_sdf(pb)
    bvf = np.where(sdf_b <= 1.0, bvf, np.inf)
    hole_bvf = _occ(bvf, h)
    cleft = None
    hole_cleft = np.zeros(n)
    cs = s.cleft_sdf(pb) if in_body_box.any() else None
    if cs is not None:
        cleft = np.full(n, np.inf)
        cleft[in_body_box] = cs
        hole_cleft = _occ(cleft, h)
    hole = np.maximum(hole_bvf, hole_cleft)
    # trabecular mineral density: gradients + smooth random field, normalised to the level's mean
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    zeta = np.clip(z / (0.25 * (s.hp + s.ha)), -1, 1)
    g = -0.05 * np.clip(y / (s.D / 2), -1, 1) + 0.10 * (zeta ** 2 - 1.0 / 3.0)
    rng = rng_for(spec.seed, s.label, "field")
    white = rng.standard_normal(bshape).astype(np.float32)
    sig = 2.0 / grid.spacing
    # two scales: 2 mm regional heterogeneity + 0.7 mm trabecular mottling (half its amplitude)
    field = (ndimage.gaussian_filter(white, sig, mode="nearest") / (1.0 / np.sqrt(np.prod(sig)) + 1e-9)
             + 0.5 * ndimage.gaussian_filter(white, 0.7 / grid.spacing, mode="nearest")
             / (1.0 / np.sqrt(np.prod(0.7 / grid.spacing)) + 1e-9))
    field = field[idx]
    field /= max(float(field.std()), 1e-6)
    g = g + 0.08 * field
    in_body_trab = (sdf_bi <= sdf_pe + PE_CORTEX_MM)
    full = (trab >= 0.999) & in_body_trab & (hole <= 0) & (sdf_b <= 0)
    base = 1.0 + g
    norm = float(base[full].mean()) if np.any(full) else 1.0
    rho = level_bmd * base / norm
    band = s.fracture_band(p) if s.fracture is not None else np.zeros(n)
    if s.fracture is not None:
        if s.fracture.age == "acute":
            rho = rho * (1.0 + 0.6 * band)           # compaction of crushed trabeculae
        else:
            rho = rho + 220.0 * band                  # sclerotic band
    rho_pe = POSTERIOR_TRAB_FACTOR * level_bmd * (1.0 + 0.08 * field)
    rho_t = np.where(in_body_trab, rho, rho_pe)
    hu_t = hu_from_vbmd(rho_t)
    hu_c = hu_from_vbmd(CORTICAL_MG_CM3)
    hole_hu = np.where(hole_cleft > hole_bvf,
                       TISSUE_HU["gas"] if (s.fracture and s.fracture.cleft_content == "gas") else TISSUE_HU["fluid"],
                       TISSUE_HU["blood"])
    blk = ct[sl]
    old = blk[idx].astype(np.float64)
    new = (trab * hu_t + (occ - trab) * hu_c) * (1 - hole) + occ * hole * hole_hu + (1 - occ) * old
    blk[idx] = np.where(touched, new, old).astype(np.float32)
    ct[sl] = blk
    # labels and sub-regions
    lab_blk, sub_blk = labels[sl], sub[sl]
    lab = lab_blk[idx]
    sb = sub_blk[idx]
    bone = sdf <= 0
    body = sdf_b <= 0
    lab[bone & ((lab == 0) | body)] = s.label
    mine = bone & (lab == s.label)
    region = np.full(n, SB["posterior_elements"], np.uint8)
    for side, key in ((-1, "pedicle_left"), (1, "pedicle_right")):
        _, t_sub, _ = s.pedicle_t_range(side)
        region[(ped[side] <= 0) & (ped_t[side] >= t_sub)] = SB[key]
    region[body] = SB["vertebral_body"]
    region[body & (bvf <= 0)] = SB["basivertebral_foramen"]
    sb[mine] = region[mine]
    lab_blk[idx] = lab
    sub_blk[idx] = sb
    labels[sl] = lab_blk
    sub[sl] = sub_blk
    # truth of the trabecular compartment as drawn (noise-free, before blur)
    rho_full = rho[full]
    return {"vbmd_mg_cm3": float(rho_full.mean()) if rho_full.size else float("nan"),
            "vbmd_baseline_mg_cm3": float(level_bmd), "n_voxels": int(full.sum())}


def _render_ribs(grid: Grid, s: VertebraShape, level_bmd: float, ct, h: float) -> None:
    """Ribs of a thoracic level: bone in the CT only (not a vertebra label, no sub-region)."""
    w = s.rib_box_world()
    if w is None:
        return
    sl = grid.index_range(w.min(0), w.max(0))
    if min(x.stop - x.start for x in sl) <= 0:
        return
    sel = _near_mask(grid, sl, s, fn=s.rib_sdf)
    idx = np.nonzero(sel)
    if idx[0].size == 0:
        return
    start = np.array([x.start for x in sl], float)
    p = s.to_local(grid.origin + grid.spacing * (np.stack(idx, axis=1) + start))
    d = s.rib_sdf(p)
    occ = _occ(d, h)
    trab = np.minimum(_occ(d + PE_CORTEX_MM, h), occ)
    hu_t = hu_from_vbmd(1.2 * level_bmd)
    hu_c = hu_from_vbmd(CORTICAL_MG_CM3)
    blk = ct[sl]
    old = blk[idx].astype(np.float64)
    blk[idx] = (trab * hu_t + (occ - trab) * hu_c + (1 - occ) * old).astype(np.float32)
    ct[sl] = blk


def level_densities(spec: PhantomSpec, shapes: list[VertebraShape]) -> dict[str, float]:
    """Baseline trabecular vBMD per level: ``bmd·(1 + ε)``, ε ~ N(0, 3 %) seeded, mean ε = 0."""
    eps = np.array([rng_for(spec.seed, s.label, "density").normal(0.0, 0.03) for s in shapes])
    eps = np.clip(eps, -0.06, 0.06)
    if len(eps) > 1:
        eps = eps - eps.mean()
    else:
        eps = eps * 0
    return {s.name: spec.bmd_mg_cm3 * (1.0 + e) for s, e in zip(shapes, eps)}


def render(spec: PhantomSpec, shapes: list[VertebraShape], grid: Grid, progress=None) -> RenderResult:
    """Draw soft tissue, canal, discs and vertebrae (model HU, no blur/noise yet)."""
    h = float(np.prod(grid.spacing) ** (1.0 / 3.0))
    ct = _soft_tissue(grid, shapes, spec)
    labels = np.zeros(grid.shape, np.uint8)
    sub = np.zeros(grid.shape, np.uint8)
    for s in shapes:
        _render_canal(grid, s, ct, sub, h)
    for k, s in enumerate(shapes):
        if k == 0:
            _render_disc(grid, s, None, ct, sub, h, which="above")
        if k + 1 < len(shapes):
            _render_disc(grid, shapes[k + 1], s, ct, sub, h, which="between")
        else:
            _render_disc(grid, s, None, ct, sub, h, which="below")
    dens = level_densities(spec, shapes)
    if spec.soft_tissue:
        for s in shapes:
            _render_ribs(grid, s, dens[s.name], ct, h)
    stats = {}
    for s in shapes:
        stats[s.name] = _render_vertebra(grid, s, spec, dens[s.name], ct, labels, sub, h)
        if progress is not None:
            progress(s.name)
    return RenderResult(ct=ct, labels=labels, sub=sub, trab_stats=stats)


def finish_ct(ct: np.ndarray, grid: Grid, spec: PhantomSpec) -> np.ndarray:
    """CT point-spread function, noise, scanner gain.

    The PSF is Gaussian with FWHM ``blur_fwhm_mm``, widened along every axis whose voxel is coarser
    to a profile of FWHM ≈ the voxel extent (σ = 0.42·spacing): a sample is an average over its
    voxel (the slice-sensitivity profile along a thick-slice axis, and the footprint of a coarse
    in-plane pixel alike; a 3 mm voxel along AP is as blurred along AP as a 3 mm slice is along z)."""
    sp = grid.spacing
    out = ct
    if spec.blur_fwhm_mm > 0:
        sig_mm = spec.blur_fwhm_mm / 2.3548
        sig = np.maximum(sig_mm, 0.42 * np.asarray(sp, float)) / sp
        out = ndimage.gaussian_filter(out, sig, mode="nearest")
    if spec.noise_hu > 0:
        rng = rng_for(spec.seed, 0, "noise")
        noise = rng.standard_normal(out.shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, 0.6, mode="wrap")
        noise *= 1.0 / max(float(noise.std()), 1e-6)
        sigma = spec.noise_hu / math.sqrt(float(np.prod(sp)))
        out = out + sigma * noise
    out = spec.hu_offset + spec.hu_gain * out
    return np.clip(out, -1024.0, 3071.0).astype(np.float32)
