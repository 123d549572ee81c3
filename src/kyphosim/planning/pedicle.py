"""Pedicle analysis in the vertebral body's local frame: canal, pedicle axis, isthmus, entry point.

Everything is computed on a local raster (default 0.5 mm) of the vertebra resampled from the label
map through its affine, with axes (lr, ap, si) of the body frame of
:func:`kyphosim.assess.geometry.vertebral_body_geometry` (lr → patient's right, ap → anterior,
si → superior). The bone mask is the vertebra label read as a partial-volume occupancy ≥ 0.5.

Pedicle = the bony bridge between the vertebral body and the posterior elements, lateral to the
spinal canal. With a kyphosim sub-region map holding pedicle ids (2 left, 3 right) those voxels are
used; otherwise the pedicle zone is the bone lateral to the canal within the canal's
antero-posterior span (the anterior 75 % of it, which excludes the articular and transverse
processes that arise from the pedicle–lamina junction).

Axis: first the direction of the widest bull's-eye bony tunnel through the pedicle segment (a
robust start), then the pedicle's own axis — the line that coincides with the line through the
occupancy-weighted centroids of its complete cross-sections taken perpendicular to it (solved as a
fixed point by Newton's method on the two angles, see :func:`centroid_line_axis`). The isthmus is
the section with the smallest transverse width. The entry
point is where the axis, followed posteriorly from the isthmus, leaves the bone for the last time
(gaps ≤ 3 mm such as facet joints are bridged): the posterior cortex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from kyphosim.assess.geometry import BodyFrame, BodyGeometry, prepare_subregions
from kyphosim.imaging.labels import SUBREGION_IDS
from kyphosim.imaging.volume import Volume, apply_affine

__all__ = ["VertebraRaster", "PedicleAnalysis", "rasterize_vertebra", "analyse_pedicle", "SIDES", "pedicle_segment_ap",
           "RASTER_MM", "centroid_line_axis", "band_zone_occ"]

#: Resolution of the local working raster, mm.
RASTER_MM = 0.5
#: Radius of the disc in which pedicle cross-sections are analysed, mm.
SECTION_RADIUS_MM = 12.0
#: Largest bone gap (mm) bridged when walking back to the entry point (facet joint space).
ENTRY_GAP_MM = 3.0

#: side name → sign of the local lr coordinate (lr points to the patient's right)
SIDES = {"left": -1, "right": 1}


def _central_component(mask: np.ndarray, h: float, *, max_offset_mm: float):
    """Connected component of a square 2-D section ``mask`` (pixel ``h`` mm) at its centre pixel, or
    the one nearest to it within ``max_offset_mm``; returns (label image, component mask or None)."""
    lab, _ = ndimage.label(mask)
    c0 = mask.shape[0] // 2
    if lab[c0, c0]:
        return lab, lab == lab[c0, c0]
    ii, jj = np.nonzero(lab)
    dd = (ii - c0) ** 2 + (jj - c0) ** 2
    m = int(np.argmin(dd))
    if np.sqrt(dd[m]) * h > max_offset_mm:
        return lab, None
    return lab, lab == lab[ii[m], jj[m]]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


@dataclass
class VertebraRaster:
    """One vertebra resampled on a local (lr, ap, si) grid of the body frame.

    ``bone``: vertebra occupancy ≥ 0.5; ``occ``: occupancy in [0, 1]; ``canal``: spinal canal
    (sub-region 5 when given, else estimated); ``pedicle``: side → pedicle sub-region mask or None.
    Distances to the outer bone surface and to the canal are exact point-to-surface distances
    (k-d trees of the surface points: midpoints between boundary voxels and their outside
    6-neighbours).
    """

    frame: BodyFrame
    lo: np.ndarray
    res: float
    occ: np.ndarray
    bone: np.ndarray
    canal: np.ndarray
    pedicle: dict
    bone_tree: object
    canal_tree: object | None
    canal_source: str
    canal_ap_range: tuple[float, float]
    canal_lr_range: tuple[float, float]
    body: BodyGeometry
    flags: list[str] = field(default_factory=list)
    pedicle_occ: dict = field(default_factory=dict)
    _occ_world_sampler: object = None

    # ------------------------------------------------------------------ coordinates
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(self.lo[a] + self.res * np.arange(self.bone.shape[a]) for a in range(3))  # type: ignore

    def local_to_index(self, loc: np.ndarray) -> np.ndarray:
        return (np.asarray(loc, float) - self.lo) / self.res

    def sample(self, field_: np.ndarray, loc: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
        """Sample a raster field at local points (..., 3)."""
        loc = np.asarray(loc, float)
        idx = self.local_to_index(loc.reshape(-1, 3)).T
        out = ndimage.map_coordinates(np.asarray(field_, np.float32), idx, order=order, mode="constant",
                                      cval=cval, prefilter=False)
        return out.reshape(loc.shape[:-1])

    def to_world(self, loc) -> np.ndarray:
        return self.frame.to_world(loc)

    def cortex_distance(self, loc: np.ndarray) -> np.ndarray:
        """Signed distance (mm) from local points (..., 3) to the outer bone surface, + inside bone."""
        loc = np.asarray(loc, float)
        d, _ = self.bone_tree.query(loc.reshape(-1, 3))
        inside = self.sample(self.occ, loc.reshape(-1, 3)) >= 0.5
        return np.where(inside, d, -d).reshape(loc.shape[:-1])

    def canal_distance(self, loc: np.ndarray) -> np.ndarray:
        """Signed distance (mm) from local points (..., 3) to the canal surface, + outside the canal."""
        loc = np.asarray(loc, float)
        if self.canal_tree is None:
            return np.full(loc.shape[:-1], np.inf)
        d, _ = self.canal_tree.query(loc.reshape(-1, 3))
        inside = self.sample(self.canal.astype(np.float32), loc.reshape(-1, 3)) >= 0.5
        return np.where(inside, -d, d).reshape(loc.shape[:-1])

    def to_local(self, pts) -> np.ndarray:
        return self.frame.to_local(pts)


@dataclass
class PedicleAnalysis:
    """Result of the analysis of one pedicle (local frame unless the name says world).

    ``axis_local`` points anteriorly (entry → body). Angles: ``convergence_deg`` = angle of the
    axis from the sagittal plane in the axial plane, medial positive; ``sagittal_deg`` = angle
    from the axial plane in the sagittal plane, positive when the anterior end is caudal.
    """

    side: str
    found: bool
    reason: str | None = None
    isthmus_local: np.ndarray | None = None
    axis_local: np.ndarray | None = None
    entry_local: np.ndarray | None = None
    width_mm: float | None = None            # transverse width at the isthmus
    height_mm: float | None = None           # vertical height at the isthmus
    inscribed_diameter_mm: float | None = None
    area_mm2: float | None = None
    convergence_deg: float | None = None
    sagittal_deg: float | None = None
    source: str = "geometric"
    profile: list = field(default_factory=list)   # (t_mm, width_mm, area_mm2) along the axis

    def world(self, raster: VertebraRaster) -> dict:
        if not self.found:
            return {}
        return {"isthmus_mm": raster.to_world(self.isthmus_local),
                "axis": raster.frame.rotation @ self.axis_local,
                "entry_mm": raster.to_world(self.entry_local)}


def axis_angles(axis_local: np.ndarray, side_sign: int) -> tuple[float, float]:
    """(convergence_deg, sagittal_deg) of an anterior-pointing local axis (lr, ap, si)."""
    a = _unit(axis_local)
    medial = -side_sign * a[0]
    conv = float(np.degrees(np.arctan2(medial, a[1])))
    sag = float(np.degrees(np.arctan2(-a[2], np.hypot(a[0], a[1]))))
    return conv, sag


# ---------------------------------------------------------------------------------- raster
def rasterize_vertebra(labels: Volume, label: int, body: BodyGeometry, subregions: Volume | None = None,
                       *, res: float = RASTER_MM, lr_half_mm: float = 40.0) -> VertebraRaster:
    """Resample vertebra ``label`` on the local raster of its body frame and find its canal."""
    frame = body.frame
    data = labels.data
    objs = ndimage.find_objects((data == label).astype(np.uint8))
    bbox = objs[0]
    pad = 3
    lo_i = np.array([max(0, s.start - pad) for s in bbox])
    hi_i = np.array([min(n, s.stop + pad) for s, n in zip(bbox, data.shape)])
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo_i, hi_i))
    vert = (data[sl] == label).astype(np.float32)
    crop_aff = labels.affine.copy()
    crop_aff[:3, 3] = apply_affine(labels.affine, lo_i)
    ijk = np.argwhere(vert > 0)
    loc = frame.to_local(apply_affine(crop_aff, ijk))
    lo = loc.min(axis=0) - 3.0
    hi = loc.max(axis=0) + 3.0
    lo[0] = max(lo[0], -lr_half_mm)
    hi[0] = min(hi[0], lr_half_mm)
    hi[1] = min(hi[1], body.anterior_ap_mm + 4.0)
    lo[1] = max(lo[1], body.posterior_ap_mm - 50.0)
    n = np.maximum(np.ceil((hi - lo) / res).astype(int) + 1, 2)
    g = [lo[a] + res * np.arange(n[a]) for a in range(3)]
    inv = np.linalg.inv(crop_aff)
    M = inv[:3, :3] @ frame.rotation
    off = apply_affine(inv, frame.origin_mm)
    idx = (off[:, None, None, None] + M[:, 0, None, None, None] * g[0][None, :, None, None]
           + M[:, 1, None, None, None] * g[1][None, None, :, None]
           + M[:, 2, None, None, None] * g[2][None, None, None, :]).reshape(3, -1)
    occ = ndimage.map_coordinates(vert, idx, order=1, mode="constant", cval=0.0, prefilter=False,
                                  output=np.float32).reshape(n)
    bone = occ >= 0.5
    flags: list[str] = []
    pedicle: dict = {"left": None, "right": None}
    pedicle_occ: dict = {}
    canal = None
    canal_source = "estimated"
    sub = prepare_subregions(subregions) if subregions is not None else None
    if sub is not None:
        sub_c = sub[sl]
        subr = ndimage.map_coordinates(sub_c.astype(np.float32), idx, order=0, mode="constant", cval=0.0,
                                       prefilter=False).reshape(n).astype(np.uint8)
        for side, sid in (("left", SUBREGION_IDS["pedicle_left"]), ("right", SUBREGION_IDS["pedicle_right"])):
            m = (subr == sid) & bone
            if m.sum() * res ** 3 >= 20.0:
                pedicle[side] = m
                ind = ((sub_c == sid) & (data[sl] == label)).astype(np.float32)
                pedicle_occ[side] = ndimage.map_coordinates(ind, idx, order=1, mode="constant", cval=0.0,
                                                            prefilter=False, output=np.float32).reshape(n)
        c = subr == SUBREGION_IDS["spinal_canal"]
        if c.sum() * res ** 3 >= 100.0:
            canal, canal_source = c, "subregions"
    if canal is None:
        canal, ok = _estimate_canal(bone, lo, res, body)
        if not ok:
            flags.append("canal_not_enclosed")
    if not canal.any():
        flags.append("no_canal_found")
    bone_tree = cKDTree(_surface_points(bone, lo, res))
    canal_tree = cKDTree(_surface_points(canal, lo, res)) if canal.any() else None
    if canal.any():
        ci = np.argwhere(canal.any(axis=2))
        ap_rng = (float(g[1][ci[:, 1].min()]), float(g[1][ci[:, 1].max()]))
        lr_rng = (float(g[0][ci[:, 0].min()]), float(g[0][ci[:, 0].max()]))
    else:
        ap_rng = (body.posterior_ap_mm - 18.0, body.posterior_ap_mm)
        lr_rng = (-10.0, 10.0)
    return VertebraRaster(frame=frame, lo=lo, res=res, occ=occ, bone=bone, canal=canal, pedicle=pedicle,
                          bone_tree=bone_tree, canal_tree=canal_tree, canal_source=canal_source,
                          canal_ap_range=ap_rng, canal_lr_range=lr_rng, body=body, flags=flags,
                          pedicle_occ=pedicle_occ)


def _surface_points(mask: np.ndarray, lo: np.ndarray, res: float) -> np.ndarray:
    """Local coordinates (N, 3) of the midpoints between mask voxels and their outside 6-neighbours."""
    pts = []
    for ax in range(3):
        for step in (1, -1):
            nb = np.roll(mask, -step, axis=ax)
            edge = [slice(None)] * 3
            edge[ax] = slice(-1, None) if step == 1 else slice(0, 1)
            nb[tuple(edge)] = False
            idx = np.argwhere(mask & ~nb).astype(float)
            idx[:, ax] += 0.5 * step
            pts.append(idx)
    idx = np.concatenate(pts) if pts else np.zeros((0, 3))
    if idx.size == 0:
        return np.full((1, 3), 1e6)
    return lo + res * idx


def _disk(radius_px: int) -> np.ndarray:
    r = int(radius_px)
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def _estimate_canal(bone: np.ndarray, lo: np.ndarray, res: float, body: BodyGeometry) -> tuple[np.ndarray, bool]:
    """Spinal canal as the hole enclosed by the vertebral ring in the axial footprint, extruded in SI.

    The footprint (bone projected along si) is closed with a growing disc (≤ 4 mm) until a hole
    posterior to the body near the midline appears. Fallback (ring open): the empty region behind
    the posterior wall around the midline, bounded by bone or ±11 mm. Returns (mask, enclosed).
    """
    foot = bone.any(axis=2)
    gl = lo[0] + res * np.arange(bone.shape[0])
    ga = lo[1] + res * np.arange(bone.shape[1])
    post = body.posterior_ap_mm
    best = None
    for r_mm in (0.0, 1.0, 2.0, 3.0, 4.0):
        f = foot if r_mm == 0 else ndimage.binary_closing(foot, structure=_disk(int(round(r_mm / res))),
                                                          border_value=0)
        holes = ndimage.binary_fill_holes(f) & ~f
        lab, n = ndimage.label(holes)
        if n == 0:
            continue
        for k in range(1, n + 1):
            ii, jj = np.nonzero(lab == k)
            area = ii.size * res * res
            c_lr, c_ap = gl[ii].mean(), ga[jj].mean()
            if area >= 40.0 and abs(c_lr) <= 10.0 and c_ap < post + 2.0:
                if best is None or area > best[0]:
                    best = (area, lab == k)
        if best is not None:
            break
    if best is not None:
        c2 = best[1]
        ok = True
    else:
        ok = False
        c2 = np.zeros_like(foot)
        # walk back from the posterior wall at the midline until bone (lamina) or 25 mm
        j0 = int(np.clip(np.searchsorted(ga, post), 0, len(ga) - 1))
        i0 = int(np.argmin(np.abs(gl)))
        j = j0
        while j > 0 and foot[i0, j]:
            j -= 1
        j_front = j
        while j > 0 and not foot[i0, j] and ga[j_front] - ga[j] < 25.0:
            j -= 1
        for jj in range(j + 1, j_front + 1):
            i = i0
            while i > 0 and not foot[i - 1, jj] and gl[i - 1] > -11.0:
                i -= 1
            k = i0
            while k < len(gl) - 1 and not foot[k + 1, jj] and gl[k + 1] < 11.0:
                k += 1
            c2[i:k + 1, jj] = True
    si_any = bone.any(axis=(0, 1))
    canal = np.zeros(bone.shape, bool)
    canal[:, :, si_any] = c2[:, :, None]
    canal &= ~bone
    return canal, ok


# --------------------------------------------------------------------------------- sections
def _section(raster: VertebraRaster, centre: np.ndarray, d: np.ndarray, radius: float = SECTION_RADIUS_MM,
             mask_field: np.ndarray | None = None) -> dict | None:
    """Bone cross-section perpendicular to ``d`` through ``centre`` (local mm): the connected
    component nearest the centre, its centroid, transverse width, height, area and inscribed diameter."""
    si = np.array([0.0, 0.0, 1.0])
    e2 = si - (si @ d) * d
    e2 = _unit(e2)
    e1 = np.cross(d, e2)            # transverse (≈ lr)
    h = raster.res
    s = np.arange(-radius, radius + h / 2, h)
    U, V = np.meshgrid(s, s, indexing="ij")
    pts = centre + U[..., None] * e1 + V[..., None] * e2
    fld = raster.occ if mask_field is None else mask_field
    occ = raster.sample(fld, pts) >= 0.5
    if not occ.any():
        return None
    lab, comp = _central_component(occ, h, max_offset_mm=4.0)
    if comp is None:
        return None
    ii, jj = np.nonzero(comp)
    cu, cv = s[ii].mean(), s[jj].mean()
    touches = comp[0, :].any() or comp[-1, :].any() or comp[:, 0].any() or comp[:, -1].any()
    # transverse width / height through the centroid row/column
    ic = int(np.argmin(np.abs(s - cv)))
    row = comp[:, ic]
    width = row.sum() * h if row.any() else 0.0
    jc = int(np.argmin(np.abs(s - cu)))
    col = comp[jc, :]
    height = col.sum() * h if col.any() else 0.0
    edt = ndimage.distance_transform_edt(np.pad(comp, 1), sampling=h)
    return {"centroid": centre + cu * e1 + cv * e2, "width": float(width), "height": float(height),
            "area": float(comp.sum() * h * h), "inscribed": float(2 * edt.max()), "touches": bool(touches),
            "e1": e1, "e2": e2}


def _fit_line(points: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted principal line through points: (centroid, unit direction pointing anterior)."""
    w = np.ones(len(points)) if weights is None else np.asarray(weights, float)
    c = (points * w[:, None]).sum(0) / w.sum()
    X = (points - c) * np.sqrt(w)[:, None]
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    d = vt[0]
    if d[1] < 0:
        d = -d
    return c, d


# ------------------------------------------------------------------------------------ pedicle
def _zone(raster: VertebraRaster, side: str) -> tuple[np.ndarray, str]:
    if raster.pedicle.get(side) is not None:
        return raster.pedicle[side], "subregions"
    sgn = SIDES[side]
    gl, ga, _ = raster.axes()
    ap0, ap1 = raster.canal_ap_range
    post = raster.body.posterior_ap_mm
    ap_lo = ap0 + 0.25 * (ap1 - ap0)
    ap_hi = max(ap1, post) + 1.0
    c2 = raster.canal.any(axis=2)
    rows_with = np.nonzero(c2.any(axis=0))[0]
    lat = np.zeros(c2.shape, bool)
    for j in range(c2.shape[1]):
        if not (ap_lo <= ga[j] <= ap_hi):
            continue
        jj = j if c2[:, j].any() else (rows_with[np.argmin(np.abs(rows_with - j))] if rows_with.size else None)
        if jj is None:
            border = sgn * 8.0
        else:
            li = np.nonzero(c2[:, jj])[0]
            border = gl[li.max()] if sgn > 0 else gl[li.min()]
        if sgn > 0:
            lat[:, j] = (gl > border) & (gl < border + 22.0)
        else:
            lat[:, j] = (gl < border) & (gl > border - 22.0)
    z = raster.bone & lat[:, :, None]
    lab, n = ndimage.label(z)
    if n > 1:
        sizes = ndimage.sum_labels(z, lab, np.arange(1, n + 1))
        z = lab == (int(np.argmax(sizes)) + 1)
    return z, "geometric"


def _dir_from_angles(conv_deg, sag_deg, sgn: int) -> np.ndarray:
    c = np.deg2rad(np.asarray(conv_deg, float))
    s = np.deg2rad(np.asarray(sag_deg, float))
    return np.stack([-sgn * np.sin(c) * np.cos(s), np.cos(c) * np.cos(s), -np.sin(s)], axis=-1)


def _plane_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    si = np.array([0.0, 0.0, 1.0])
    e2 = _unit(si - (si @ d) * d)
    return np.cross(d, e2), e2


def _tunnels(raster: VertebraRaster, dirs: np.ndarray, p0: np.ndarray, ap_lo: float, ap_hi: float,
             half_mm: float, step_mm: float, along_mm: float = 1.0):
    """Bull's-eye tunnels of several directions at once: for each direction, the grid (``step_mm``
    on the plane ⟂ d through p0) of lines parallel to d that stay in bone over the whole pedicle
    segment (local ap from ``ap_lo`` to ``ap_hi``). Returns (inside [k, n, n], grid, e1s, e2s)."""
    s = np.arange(-half_mm, half_mm + 1e-9, step_mm)
    U, V = np.meshgrid(s, s, indexing="ij")
    n_al = max(6, int(np.ceil((ap_hi - ap_lo) / along_mm)) + 1)
    w = np.linspace(0.0, 1.0, n_al)
    E1, E2 = zip(*[_plane_basis(d) for d in dirs])
    E1, E2 = np.array(E1), np.array(E2)
    P = p0 + U[None, ..., None] * E1[:, None, None, :] + V[None, ..., None] * E2[:, None, None, :]
    dy = dirs[:, 1][:, None, None]
    t0 = (ap_lo - P[..., 1]) / dy
    t1 = (ap_hi - P[..., 1]) / dy
    T = t0[..., None] + (t1 - t0)[..., None] * w
    pts = P[..., None, :] + T[..., None] * dirs[:, None, None, None, :]
    inside = (raster.sample(raster.occ, pts) >= 0.5).all(axis=-1)
    return inside, s, E1, E2


def _component(inside: np.ndarray, step_mm: float) -> np.ndarray:
    """The tunnel component through the grid centre (or the largest one within 6 mm of it)."""
    lab, n = ndimage.label(inside)
    if n == 0:
        return np.zeros_like(inside)
    c0 = inside.shape[0] // 2
    if lab[c0, c0]:
        return lab == lab[c0, c0]
    sizes = ndimage.sum_labels(inside, lab, np.arange(1, n + 1))
    cents = ndimage.center_of_mass(inside, lab, np.arange(1, n + 1))
    ok = [i for i, c in enumerate(cents) if np.hypot(c[0] - c0, c[1] - c0) * step_mm <= 6.0]
    if not ok:
        return np.zeros_like(inside)
    return lab == (1 + max(ok, key=lambda i: sizes[i]))


def _tunnel_axis(raster: VertebraRaster, sgn: int, p0: np.ndarray, ap_lo: float, ap_hi: float):
    """Pedicle axis as the direction of the widest bull's-eye tunnel (largest area of lines that
    stay in bone over the whole pedicle segment), coarse to fine; the axis passes through the
    tunnel's centroid. Directions within 8 % of the best area are averaged (area-weighted).
    Returns (point, direction, tunnel area mm²) or None."""
    best_c, best_s, centre = 15.0, 0.0, p0
    for span, dstep, half, gstep in ((30.0, 6.0, 14.0, 1.0), (6.0, 2.0, 12.0, 0.5), (1.5, 0.5, 12.0, 0.5)):
        cs = np.unique(np.clip(best_c + np.arange(-span, span + 1e-9, dstep), -20.0, 60.0))
        ss = np.unique(np.clip(best_s + np.arange(-span, span + 1e-9, dstep), -35.0, 35.0))
        C, S = np.meshgrid(cs, ss, indexing="ij")
        dirs = _dir_from_angles(C.ravel(), S.ravel(), sgn)
        inside, grid, E1, E2 = _tunnels(raster, dirs, centre, ap_lo, ap_hi, half, gstep)
        cand = []
        for k in range(len(dirs)):
            comp = _component(inside[k], gstep)
            area = float(comp.sum()) * gstep * gstep
            if area > 0:
                ii, jj = np.nonzero(comp)
                cand.append((area, C.ravel()[k], S.ravel()[k],
                             centre + grid[ii].mean() * E1[k] + grid[jj].mean() * E2[k]))
        if not cand:
            return None
        amax = max(c_[0] for c_ in cand)
        top = [c_ for c_ in cand if c_[0] >= 0.92 * amax]
        wts = np.array([c_[0] - 0.92 * amax + 1e-6 for c_ in top])
        best_c = float(np.average([c_[1] for c_ in top], weights=wts))
        best_s = float(np.average([c_[2] for c_ in top], weights=wts))
        centre = cand[int(np.argmax([c_[0] for c_ in cand]))][3]
    d = _dir_from_angles(best_c, best_s, sgn)
    d = d / np.linalg.norm(d)
    inside, grid, E1, E2 = _tunnels(raster, d[None], centre, ap_lo, ap_hi, 12.0, 0.5)
    comp = _component(inside[0], 0.5)
    if not comp.any():
        return None
    ii, jj = np.nonzero(comp)
    p = centre + grid[ii].mean() * E1[0] + grid[jj].mean() * E2[0]
    return p, d, float(comp.sum()) * 0.25


def _soft_section(raster: VertebraRaster, fld: np.ndarray, centre: np.ndarray, d: np.ndarray, radius: float,
                  other: np.ndarray | None = None, h: float = 0.25) -> dict | None:
    """Cross-section ⟂ ``d`` of an occupancy field ``fld`` (the pedicle zone) through ``centre``.

    The component (occupancy ≥ 0.5) at or nearest the centre; its centroid weighted by the
    occupancy (sub-voxel); ``touches``: reaches the rim of the disc of ``radius`` mm (merged with
    the body or the posterior elements); ``cap``: the fraction of its rim where the zone ends on
    other bone (``other``) through a face whose normal is within 50° of ``d`` — the section cuts an
    end face of the zone (pedicle sub-region against the body or the lamina)."""
    e1, e2 = _plane_basis(d)
    s = np.arange(-radius, radius + h / 2, h)
    U, V = np.meshgrid(s, s, indexing="ij")
    pts = centre + U[..., None] * e1 + V[..., None] * e2
    occ = raster.sample(fld, pts)
    b = occ >= 0.5
    if not b.any():
        return None
    lab, comp = _central_component(b, h, max_offset_mm=3.0)
    if comp is None:
        return None
    grown = ndimage.binary_dilation(comp, iterations=2)
    reg = grown & ~((lab > 0) & ~comp)
    w = np.where(reg, occ, 0.0)
    wsum = float(w.sum())
    cu, cv = float((w * U).sum() / wsum), float((w * V).sum() / wsum)
    touches = bool(comp[0].any() or comp[-1].any() or comp[:, 0].any() or comp[:, -1].any())
    cap = 0.0
    ring = grown & ~comp
    rp = pts[ring]
    if len(rp):
        # end faces: with a zone map, where the zone ends on other bone through a face whose normal
        # is within 50° of d; on the vertebra mask alone, any surface facing within 45° of d (the
        # body's posterior wall or the lamina reached by the section)
        sel = raster.sample(other, rp) >= 0.5 if other is not None else np.ones(len(rp), bool)
        if sel.any():
            q = rp[sel]
            g = np.stack([raster.sample(fld, q + 0.5 * ax) - raster.sample(fld, q - 0.5 * ax)
                          for ax in np.eye(3)], axis=-1)
            gn = np.linalg.norm(g, axis=1)
            along = np.abs(g @ d) >= (0.64 if other is not None else 0.71) * np.maximum(gn, 1e-9)
            cap = float(np.sum(along & (gn > 0.05))) / len(rp)
    return {"centroid": centre + cu * e1 + cv * e2, "area": wsum * h * h, "touches": touches, "cap": cap}


def _centroid_fit(raster: VertebraRaster, fld: np.ndarray, other: np.ndarray | None, p: np.ndarray,
                  d: np.ndarray, radius: float, ts: np.ndarray, cap_tol: float):
    """One pass: sections ⟂ ``d`` at ``p + t·d`` (t in ``ts``), the contiguous run of complete
    ones nearest ``p`` (end sections dropped), a straight line through their centroids.
    Returns (point, direction, t range used, RMS residual mm) or None."""
    rows = []
    for t in ts:
        c = p + t * d
        sc = _soft_section(raster, fld, c, d, radius, other)
        ok = False
        if sc is not None and not sc["touches"] and sc["cap"] <= cap_tol:
            v = sc["centroid"] - c
            ok = np.linalg.norm(v - (v @ d) * d) <= 3.0
        rows.append(sc if ok else None)
    good = np.array([r is not None for r in rows])
    if not good.any():
        return None
    idx = np.nonzero(good)[0]
    k0 = idx[np.argmin(np.abs(ts[idx]))]
    a = b = k0
    while a - 1 >= 0 and good[a - 1]:
        a -= 1
    while b + 1 < len(good) and good[b + 1]:
        b += 1
    if b - a + 1 >= 8:
        a, b = a + 1, b - 1          # the end sections of a run may graze an end face
    if b - a + 1 < 4 or ts[b] - ts[a] < 2.0:
        return None
    cents = np.array([rows[i]["centroid"] for i in range(a, b + 1)])
    while True:             # trim outlying centroids (a section grazing another structure)
        c_fit, d_fit = _fit_line(cents)
        resid = cents - c_fit - ((cents - c_fit) @ d_fit)[:, None] * d_fit
        rn = np.linalg.norm(resid, axis=1)
        k = int(np.argmax(rn))
        if len(cents) <= 4 or rn[k] <= max(0.15, 3.0 * float(np.median(rn))):
            break
        cents = np.delete(cents, k, axis=0)
    if d_fit @ d < 0:
        d_fit = -d_fit
    return c_fit, d_fit, (float(ts[a]), float(ts[b])), float(np.sqrt(np.mean(np.sum(resid ** 2, axis=1))))


def _angles2(d: np.ndarray) -> np.ndarray:
    """(azimuth in the axial plane, elevation) of a local direction, degrees."""
    return np.degrees([np.arctan2(d[0], d[1]), np.arctan2(d[2], np.hypot(d[0], d[1]))])


def _dir2(a: np.ndarray) -> np.ndarray:
    az, el = np.radians(a)
    return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])


def centroid_line_axis(raster: VertebraRaster, side: str, p: np.ndarray, d: np.ndarray, size_mm: float,
                       *, n_iter: int = 5, reach_mm: float = 14.0, step_mm: float = 0.5,
                       max_turn_deg: float = 15.0) -> tuple[np.ndarray, np.ndarray] | None:
    """The pedicle's own axis: the straight line that coincides with the line through the
    centroids of the pedicle's complete cross-sections taken perpendicular to it. Both angles
    come from centroid positions, not from widths.

    The fitted centroid line F(d) of sections ⟂ d is a fixed-point map; for a flaring pedicle a
    tilted section plane shifts the centroids towards the wider end (the plain iteration
    d ← F(d) then oscillates), so the fixed point F(d) = d is solved by Newton's method on the two
    direction angles (finite-difference Jacobian, 1°; steps ≤ 5°), updating the line's point from
    every fit, until the residual is < 0.05°.

    Zone: the pedicle sub-region when given, else the pedicle isolated from the vertebra mask by
    :func:`band_zone_occ`; a section is complete when its rim does not lie on an end face of the
    zone against other bone (body, lamina: a face whose normal is within 50° of ``d``; up to 2 % of
    the rim tolerated for a sub-region map, whose label staircase puts a few such pixels anywhere,
    none for the band zone, whose faces are flat cuts) and its component closes inside a disc of
    radius 0.65·``size_mm`` + 2 mm (without either zone, the bare vertebra mask: ≤ 6 % of the rim
    on any bone surface facing within 45° of ``d``). Sections every ``step_mm`` within ±``reach_mm`` of ``p``; the contiguous run of
    complete sections nearest ``p`` whose centroids lie within 3 mm of the current line is
    fitted (≥ 4 sections over ≥ 2 mm). Returns (point, unit anterior direction) or None when no
    such run exists, the solution turns more than ``max_turn_deg`` from the start, or the
    centroids leave an RMS residual > 0.4 mm about the line."""
    if raster.pedicle_occ.get(side) is not None:
        fld, cap_tol = raster.pedicle_occ[side], 0.02
    else:
        fld, cap_tol = band_zone_occ(raster, side, p), 0.0
    other = None if fld is None else np.clip(raster.occ - fld, 0.0, 1.0)
    if fld is None:
        fld, cap_tol = raster.occ, 0.06
    radius = 0.65 * size_mm + 2.0
    d0 = _unit(d)
    ts = np.arange(-reach_mm, reach_mm + 1e-9, step_mm)
    p = np.asarray(p, float)
    th = _angles2(d0)
    h = 1.0

    def g(theta, point):
        r = _centroid_fit(raster, fld, other, point, _dir2(theta), radius, ts, cap_tol)
        if r is None:
            return None
        return _angles2(r[1]) - theta, r

    first = g(th, p)
    if first is None:         # no complete run along the start direction: try neighbouring starts
        for off in ((6.0, 0.0), (-6.0, 0.0), (0.0, 6.0), (0.0, -6.0), (12.0, 0.0), (-12.0, 0.0)):
            first = g(th + np.array(off), p)
            if first is not None:
                th = th + np.array(off)
                break
        else:
            return None
    g0, r0 = first
    # later passes: only the neighbourhood of the useful run
    lo_t, hi_t = r0[2]
    ts = np.arange(lo_t - 3.0, hi_t + 3.0 + 1e-9, step_mm)
    best = (float(np.abs(g0).max()), r0[0], th + g0, r0[3])
    for _ in range(n_iter):
        p = r0[0]
        if np.abs(g0).max() < 0.05:
            break
        J = np.zeros((2, 2))
        for i in range(2):
            e = np.zeros(2)
            e[i] = h
            gi = g(th + e, p)
            if gi is None:
                J[:, i] = -e / h
            else:
                J[:, i] = (gi[0] - g0) / h
        try:
            step = np.linalg.solve(J, -g0)
        except np.linalg.LinAlgError:
            step = g0
        if not np.all(np.isfinite(step)):
            step = g0
        n = np.abs(step).max()
        if n > 5.0:
            step *= 5.0 / n
        th = th + step
        nxt = g(th, p)
        if nxt is None:
            break
        g0, r0 = nxt
        if np.abs(g0).max() < best[0]:
            best = (float(np.abs(g0).max()), r0[0], th.copy(), r0[3])
    _, p_best, th_best, rms = best
    d_best = _dir2(th_best)
    if d_best @ d0 < 0:
        d_best = -d_best
    if rms > 0.4 or np.degrees(np.arccos(np.clip(d_best @ d0, -1.0, 1.0))) > max_turn_deg:
        return None
    return p_best, d_best


def band_zone_occ(raster: VertebraRaster, side: str, p: np.ndarray) -> np.ndarray | None:
    """Pedicle isolated from the vertebra mask alone: the bone on the ``side`` of the mid-sagittal
    plane between the posterior end of the pedicle segment (:func:`pedicle_segment_ap`) and the
    body's posterior wall — in that antero-posterior band the bone lateral to the canal is the
    pedicle (the laminae, facets and transverse processes arise behind it, the body in front) —
    the connected component at or nearest ``p``. Returns its occupancy field (the vertebra's
    occupancy inside, 0 outside; the band's faces act as the end faces of a sub-region) or None."""
    gl, ga, _ = raster.axes()
    lo, _ = pedicle_segment_ap(raster)
    hi = raster.body.posterior_ap_mm
    if hi - lo < 3.0:
        return None
    band = (ga >= lo) & (ga <= hi)
    lat = gl * SIDES[side] > 0
    m = raster.bone & band[None, :, None] & lat[:, None, None]
    lab, n = ndimage.label(m)
    if n == 0:
        return None
    ip = np.clip(np.round(raster.local_to_index(p)).astype(int), 0, np.array(m.shape) - 1)
    k = lab[tuple(ip)]
    if k == 0:
        idx = np.argwhere(lab > 0)
        dd = np.sum((idx - ip) ** 2, axis=1)
        j = int(np.argmin(dd))
        if np.sqrt(dd[j]) * raster.res > 4.0:
            return None
        k = lab[tuple(idx[j])]
    return np.where(lab == k, raster.occ, 0.0).astype(np.float32)


def pedicle_segment_ap(raster: VertebraRaster) -> tuple[float, float]:
    """Local AP range (mm) of the pedicle proper: the anterior 60 % of the canal's AP span up to the
    body's posterior wall (+1 mm). The posterior 40 % holds the lamina/facet junction."""
    ap0, ap1 = raster.canal_ap_range
    return ap0 + 0.4 * (ap1 - ap0), max(ap1, raster.body.posterior_ap_mm) + 1.0


def analyse_pedicle(raster: VertebraRaster, side: str) -> PedicleAnalysis:
    """Find the axis, isthmus and entry point of one pedicle (see module docstring)."""
    sgn = SIDES[side]
    zone, source = _zone(raster, side)
    res = raster.res
    if zone.sum() * res ** 3 < 15.0:
        return PedicleAnalysis(side, False, reason=f"no {side} pedicle found in the mask", source=source)
    gl, ga, gs = raster.axes()
    idx = np.argwhere(zone)
    ap0, ap1 = raster.canal_ap_range
    post = raster.body.posterior_ap_mm
    ap_lo, ap_hi = pedicle_segment_ap(raster)
    if ap_hi - ap_lo < 3.0:
        return PedicleAnalysis(side, False, reason=f"{side} pedicle too short to define an axis", source=source)
    ap_mid = 0.5 * (ap_lo + ap_hi)
    near = np.abs(ga[idx[:, 1]] - ap_mid) <= 2.0
    sel = idx[near] if near.sum() >= 4 else idx
    p0 = np.array([gl[sel[:, 0]].mean(), ap_mid, gs[sel[:, 2]].mean()])
    fit = _tunnel_axis(raster, sgn, p0, ap_lo, ap_hi)
    if fit is None:
        return PedicleAnalysis(side, False, reason=f"no bony corridor through the {side} pedicle", source=source)
    p, d, tunnel_area = fit
    # refine the isthmus: narrowest cross-section perpendicular to the axis near the row estimate
    secs = []
    for t in np.arange(-4.0, 4.0 + 1e-9, 0.5):
        sct = _section(raster, p + t * d, d)
        if sct is not None and sct["width"] > 0:
            secs.append((float(t), sct))
    if not secs:
        return PedicleAnalysis(side, False, reason=f"{side} pedicle cross-sections could not be isolated",
                               source=source)
    widths = np.array([s_["width"] for _, s_ in secs])
    k = int(np.argmin(widths))
    t_is, sec = secs[k]
    # the isthmus centre: the section's centroid projected onto the plane ⟂ d (re-centre the axis)
    isth = sec["centroid"]
    # the pedicle's own axis: line through the centroids of its complete cross-sections (⟂ axis), iterated
    fit = centroid_line_axis(raster, side, isth, d, size_mm=max(sec["width"], sec["height"]))
    if fit is not None:
        isth_c, d = fit
        isth = isth_c + ((isth - isth_c) @ d) * d
        secs = []
        for t in np.arange(-4.0, 4.0 + 1e-9, 0.5):
            sct = _section(raster, isth + t * d, d)
            if sct is not None and sct["width"] > 0:
                secs.append((float(t), sct))
        if secs:
            k = int(np.argmin([s_["width"] for _, s_ in secs]))
            t_is, sec = secs[k]
            isth = isth + t_is * d
            sec = _section(raster, isth, d) or sec
    entry = find_entry(raster, isth, d)
    if entry is None:
        return PedicleAnalysis(side, False, reason=f"no posterior entry point on the {side} pedicle axis",
                               source=source)
    conv, sag = axis_angles(d, sgn)
    return PedicleAnalysis(side, True, isthmus_local=isth, axis_local=d, entry_local=entry,
                           width_mm=float(sec["width"]), height_mm=float(sec["height"]),
                           inscribed_diameter_mm=float(sec["inscribed"]), area_mm2=float(sec["area"]),
                           convergence_deg=conv, sagittal_deg=sag, source=source,
                           profile=[(float(t - t_is), s_["width"], s_["area"]) for t, s_ in secs])


def find_entry(raster: VertebraRaster, start: np.ndarray, d: np.ndarray, reach_mm: float = 45.0) -> np.ndarray | None:
    """Posterior cortex point of the line through ``start`` with anterior direction ``d`` (local mm).

    Walks from ``start`` towards −d; the entry is the last bone→outside crossing, bridging gaps of
    at most ``ENTRY_GAP_MM`` (sub-voxel position by linear interpolation of the occupancy).
    """
    step = 0.25
    t = np.arange(0.0, reach_mm, step)
    pts = start[None, :] - t[:, None] * d[None, :]
    v = raster.sample(raster.occ, pts)
    inside = v >= 0.5
    if not inside[: int(4.0 / step)].any():
        return None
    k_last = None
    i = int(np.argmax(inside))
    n = len(t)
    while i < n:
        # advance to the end of this inside run
        while i < n and inside[i]:
            i += 1
        if i >= n:
            return None     # still in bone at the end of the reach (cut by the field of view)
        k_last = i
        # gap: does bone resume within ENTRY_GAP_MM?
        j = i
        while j < n and not inside[j] and (j - i) * step <= ENTRY_GAP_MM:
            j += 1
        if j < n and inside[j] and (j - i) * step <= ENTRY_GAP_MM:
            i = j
            continue
        break
    k = k_last
    v_in, v_out = v[k - 1], v[k]
    frac = np.clip((v_in - 0.5) / max(v_in - v_out, 1e-6), 0.0, 1.0)
    tt = t[k - 1] + frac * step
    return start - tt * d
