"""The vertebra voxel model: a body-aligned grid around the treated level with tissue classes and
bone mineral density.

The grid is resampled from the CT into the body's local frame (axis i = LR, j = AP pointing
anterior, k = SI pointing superior; when the *inferior* endplate is the depressed one the k axis
is flipped so that the depressed endplate is always on +k; the affine carries the flip, so world
coordinates stay right). Every array of :class:`VertebraModel` lives on that grid.

Density: ρ_QCT [mg/cm³ K2HPO4-equivalent] = a·HU + b (``SimParams.hu_to_bmd_*``), only inside
this vertebra; the crush strength and the permeability are functions of it (docs/simulation.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from kyphosim.errors import InputError, LabelError
from kyphosim.imaging.labels import craniocaudal_order, vertebra_name
from kyphosim.imaging.volume import Volume
from kyphosim.simulation.geometry import column_surfaces, measure_heights, subvoxel_surfaces
from kyphosim.simulation.params import DEFAULT_PARAMS, SimParams

__all__ = ["Tissue", "Frame", "FractureInfo", "VertebraModel", "build_model", "estimate_frame",
           "label_clearance", "local_template", "to_input_grid"]


class Tissue(IntEnum):
    """Tissue classes of the model grid."""

    SOFT = 0             # soft tissue / anything outside bone
    TRABECULAR = 1
    CORTEX = 2           # cortical shell of the body (side walls)
    ENDPLATE_SUP = 3     # (model +k side: the depressed endplate when there is one)
    ENDPLATE_INF = 4
    FRACTURE = 5         # fracture (impaction) zone
    CLEFT = 6            # intravertebral cleft (gas/fluid)
    CANAL = 7
    DISC = 8
    BASIVERTEBRAL = 9    # basivertebral foramen + vein trunk
    SEGMENTAL_EXIT = 10  # segmental-vein / nutrient foramina on the cortex
    POSTERIOR = 11       # pedicles and posterior elements of this vertebra
    CORTICAL_DEFECT = 12  # broken cortex (fracture line reaching the wall)
    ENDPLATE_BREAK = 13  # broken endplate at the rim of the depression
    NEIGHBOUR = 14       # adjacent vertebrae
    GAP = 15             # opened by endplate lift
    CHANNEL = 16         # removed by the cannula / drill
    SEALED = 17          # exit (vein/foramen/crack) collapsed by the balloon and plugged with compacted bone


EXIT_TYPE = {int(Tissue.BASIVERTEBRAL): "B", int(Tissue.SEGMENTAL_EXIT): "S",
             int(Tissue.CORTICAL_DEFECT): "C", int(Tissue.ENDPLATE_BREAK): "D"}


@dataclass
class Frame:
    """Local frame of a vertebral body: origin (world mm) and unit axes (world)."""

    origin: np.ndarray
    lr: np.ndarray
    ap: np.ndarray
    si: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        return np.stack([self.lr, self.ap, self.si], axis=1)


@dataclass
class FractureInfo:
    """Depressed-endplate geometry on the model grid (2-D maps over the (i, j) columns)."""

    side: str                    # 'superior' | 'inferior' | 'none' (anatomical)
    footprint: np.ndarray        # bool (I, J): columns of the depressed fragment
    deficit_vox: np.ndarray      # float (I, J): missing height (voxels) relative to the posterior plane
    kf: np.ndarray               # int (I, J): fracture-line row; the fragment is k > kf
    age: str                     # 'acute' | 'chronic'
    heal_fraction: float         # 0 acute (broken interface) … 1 healed
    band_density_ratio: float    # fracture band / trabecular ρ
    band_rho_mg_cm3: float
    mean_deficit_mm: float
    cleft_volume_ml: float
    zf: np.ndarray | None = None  # float (I, J): fracture line (continuous k index; kf = ⌊zf⌋)


@dataclass
class VertebraModel:
    """The treated vertebra on a body-aligned grid. Arrays are (I, J, K) = (LR, AP, SI)."""

    level: int
    name: str
    affine: np.ndarray           # local voxel → world mm (includes the flip when ``flipped``)
    spacing_mm: float
    hu: np.ndarray               # float32
    rho: np.ndarray              # float64, mg/cm³ (0 outside this vertebra)
    tissue: np.ndarray           # uint8 Tissue
    body: np.ndarray             # bool: vertebral body (outer bone boundary)
    vert: np.ndarray             # bool: this vertebra
    frame: Frame
    flipped: bool
    fracture: FractureInfo
    geometry: dict[str, float]
    trabecular_bmd_mg_cm3: float
    params: SimParams
    notes: list[str] = field(default_factory=list)
    clearance: Volume | None = None  # signed distance (mm, + inside) to this vertebra's label surface

    def clearance_mm(self, xyz: np.ndarray) -> np.ndarray:
        """Signed distance (mm, positive inside) of world points to the vertebra's surface, read on
        the label map's own grid (:func:`label_clearance`), so it does not depend on the model grid.
        Falls back to the model body mask (voxel staircase) when no clearance map was built."""
        pts = np.atleast_2d(np.asarray(xyz, float))
        if self.clearance is None:
            ijk = np.round(self.world_to_index(pts)).astype(int)
            ok = np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=1)
            out = np.full(len(pts), -1.0)
            out[ok] = np.where(self.body[tuple(ijk[ok].T)], 1.0, -1.0)
            return out
        vox = self.clearance.world_to_voxel(pts)
        return ndi.map_coordinates(self.clearance.data, vox.T, order=1, mode="constant", cval=-10.0)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.hu.shape  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        return self.spacing_mm ** 3 / 1000.0

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(xyz, float) - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        return np.asarray(ijk, float) @ self.affine[:3, :3].T + self.affine[:3, 3]

    def template(self) -> Volume:
        return Volume(np.zeros(self.shape, np.uint8), self.affine, is_label=True)

    def heights(self, body: np.ndarray | None = None) -> dict[str, float]:
        return measure_heights(self.body if body is None else body, self.spacing_mm)

    def summary(self) -> dict[str, Any]:
        f = self.fracture
        return {"level": self.name, "grid_shape": list(self.shape), "spacing_mm": self.spacing_mm,
                "body_volume_ml": float(self.body.sum() * self.voxel_volume_ml),
                "trabecular_bmd_mg_cm3": self.trabecular_bmd_mg_cm3,
                "fracture_side": f.side, "fracture_age": f.age, "heal_fraction": f.heal_fraction,
                "band_density_ratio": f.band_density_ratio, "mean_deficit_mm": f.mean_deficit_mm,
                "cleft_volume_ml": f.cleft_volume_ml,
                "tissue_voxels": {t.name.lower(): int((self.tissue == t).sum()) for t in Tissue},
                **{k: v for k, v in self.geometry.items()}}


# ----------------------------------------------------------------------------------- frame
def _label_points(labels: Volume, label: int, max_points: int = 40000) -> np.ndarray:
    idx = np.argwhere(labels.data == label)
    if idx.shape[0] > max_points:
        idx = idx[:: idx.shape[0] // max_points + 1]
    return labels.voxel_to_world(idx)


def estimate_frame(labels: Volume, level: int) -> Frame:
    """A first local frame from the label map: SI from the neighbours' centroids (or world S),
    AP = world anterior made orthogonal to SI, LR = AP × SI. Refined on the body later."""
    pts = _label_points(labels, level)
    if pts.size == 0:
        raise LabelError(f"level {vertebra_name(level)} (id {level}) is not in the label map")
    c = pts.mean(axis=0)
    present = [int(v) for v in np.unique(labels.data) if v and int(v) in set(range(1, 26)) | {28}]
    order = craniocaudal_order(present)
    si = np.array([0.0, 0.0, 1.0])
    if level in order:
        pos = order.index(level)
        up = _label_points(labels, order[pos - 1], 8000).mean(axis=0) if pos > 0 else None
        dn = _label_points(labels, order[pos + 1], 8000).mean(axis=0) if pos + 1 < len(order) else None
        if up is not None and dn is not None:
            v = up - dn
        elif up is not None:
            v = up - c
        elif dn is not None:
            v = c - dn
        else:
            v = si
        if np.linalg.norm(v) > 1e-6 and v[2] > 0:
            si = v / np.linalg.norm(v)
    ap = np.array([0.0, 1.0, 0.0]) - si[1] * si
    ap /= np.linalg.norm(ap)
    lr = np.cross(ap, si)
    return Frame(c, lr, ap, si)


def local_template(frame: Frame, lo_mm: np.ndarray, hi_mm: np.ndarray, spacing_mm: float,
                   flip_k: bool = False) -> Volume:
    """An empty label volume on a grid aligned with ``frame`` covering local [lo, hi] mm."""
    n = np.maximum(1, np.ceil((np.asarray(hi_mm) - np.asarray(lo_mm)) / spacing_mm).astype(int) + 1)
    rot = frame.rotation
    aff = np.eye(4)
    aff[:3, :3] = rot * spacing_mm
    aff[:3, 3] = frame.origin + rot @ np.asarray(lo_mm, float)
    if flip_k:
        aff[:3, 3] = aff[:3, 3] + aff[:3, 2] * (n[2] - 1)
        aff[:3, 2] = -aff[:3, 2]
    return Volume(np.zeros(tuple(int(v) for v in n), np.uint8), aff, is_label=True)


def to_input_grid(local: np.ndarray, affine: np.ndarray, like: Volume, *, threshold: float = 0.5) -> Volume:
    """Resample a local-grid mask onto ``like``'s grid (linear interpolation ≥ threshold) → uint8 labels."""
    src = Volume(local.astype(np.float32), affine, meta={"units": "fraction"})
    out = src.resample(like=like, order=1, cval=0.0)
    data = (out.data >= threshold).astype(np.uint8)
    return Volume(data, like.affine, is_label=True, source_axcodes=like.source_axcodes)


# ----------------------------------------------------------------------------------- body
def _body_from_vertebra(vert: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a vertebra mask (local grid, +j anterior) into body and canal: the canal is the hole
    of the ring in each axial slice, the body the part anterior to the canal's front."""
    canal = np.zeros_like(vert)
    for k in range(vert.shape[2]):
        sl = vert[:, :, k]
        if sl.any():
            canal[:, :, k] = ndi.binary_fill_holes(sl) & ~sl
    lab, n = ndi.label(canal)
    if n:
        sizes = ndi.sum(canal, lab, index=np.arange(1, n + 1))
        canal = lab == (int(np.argmax(sizes)) + 1)
    js = np.argwhere(vert)[:, 1]
    if canal.sum() > 20:
        cj = np.argwhere(canal)
        fronts = [cj[cj[:, 2] == k, 1].max() for k in np.unique(cj[:, 2])]
        j_front = int(np.median(fronts))
    else:  # open ring: the body is the anterior half of the AP extent
        j_front = int(js.min() + 0.55 * (js.max() - js.min()))
    body = vert.copy()
    body[:, : j_front + 1, :] = False
    lab, n = ndi.label(body)
    if n > 1:
        sizes = ndi.sum(body, lab, index=np.arange(1, n + 1))
        body = lab == (int(np.argmax(sizes)) + 1)
    body = ndi.binary_fill_holes(body)
    return body, canal


def _refine_si(body: np.ndarray, frame: Frame) -> Frame:
    """SI = normal of the mean of the superior and inferior endplate planes (interior columns)."""
    top, bot, has = column_surfaces(body)
    has = _solid_columns(top, bot, has)
    inner = ndi.binary_erosion(has, iterations=max(1, int(0.15 * min(has.sum(axis=0).max(), has.sum(axis=1).max()))))
    if inner.sum() < 10:
        return frame
    pt = _robust_plane(top, inner)
    pb = _robust_plane(bot, inner)
    a, b = 0.5 * (pt[0] + pb[0]), 0.5 * (pt[1] + pb[1])
    n_local = np.array([-a, -b, 1.0])
    n_local /= np.linalg.norm(n_local)
    si = frame.rotation @ n_local
    ap = frame.ap - (frame.ap @ si) * si
    ap /= np.linalg.norm(ap)
    return Frame(frame.origin, np.cross(ap, si), ap, si)


def _grid_from_body(frame: Frame, body_pts_world: np.ndarray, margins: dict[str, tuple[float, float]]):
    loc = (body_pts_world - frame.origin) @ frame.rotation
    lo = loc.min(axis=0) - np.array([margins["lr"][0], margins["ap"][0], margins["si"][0]])
    hi = loc.max(axis=0) + np.array([margins["lr"][1], margins["ap"][1], margins["si"][1]])
    return lo, hi


def _robust_plane(surf: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Least-squares plane k = a·i + b·j + c over ``region``, refitted twice without outliers."""
    ii, jj = np.nonzero(region)
    A = np.c_[ii, jj, np.ones_like(ii)].astype(float)
    y = surf[region].astype(float)
    keep = np.ones(y.size, bool)
    coef = np.zeros(3)
    for _ in range(3):
        coef = np.linalg.lstsq(A[keep], y[keep], rcond=None)[0]
        res = np.abs(A @ coef - y)
        mad = np.median(res[keep]) + 0.5
        keep = res <= 3.0 * mad
        if keep.sum() < 6:
            break
    return coef


def _solid_columns(top: np.ndarray, bot: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Columns crossing the whole body (not the oblique edges of a tilted wall)."""
    ext = np.where(has, top - bot + 1, 0)
    med = np.median(ext[has]) if has.any() else 0
    return has & (ext >= 0.6 * med)


def _plane_deficit(surf: np.ndarray, region: np.ndarray, fit_region: np.ndarray, sign: float) -> np.ndarray:
    """Deficit (voxels) of a surface below the plane fitted on ``fit_region`` (sign +1 superior)."""
    coef = _robust_plane(surf, fit_region)
    I, J = np.indices(surf.shape)
    pred = coef[0] * I + coef[1] * J + coef[2]
    d = sign * (pred - surf)
    return np.where(region, np.maximum(d, 0.0), 0.0)


def _disk(shape2: tuple[int, int], ci: float, cj: float, r: float) -> np.ndarray:
    I, J = np.indices(shape2)
    return (I - ci) ** 2 + (J - cj) ** 2 <= r * r


# ----------------------------------------------------------------------------------- build
def build_model(ct: Volume, labels: Volume, level: int, *, resolution_mm: float = 0.5,
                subregions: Volume | None = None, params: SimParams = DEFAULT_PARAMS,
                fracture_age: str | None = None, crush_expected_height_mm: float | None = None) -> VertebraModel:
    """Build the voxel model of vertebra ``level`` (VerSe id) from a CT (HU) and its label map.

    Parameters
    ----------
    ct, labels : Volume
        CT in HU and vertebra labels (VerSe ids) on the same grid.
    resolution_mm : float
        Isotropic spacing of the model grid (0.5 mm default).
    subregions : Volume, optional
        ``SUBREGION_IDS`` map on the CT grid (body, pedicles, canal, basivertebral foramen, disc).
    fracture_age : {'acute', 'chronic'}, optional
        Overrides the image-based detection (sclerotic fracture band ⇒ chronic).
    """
    if resolution_mm <= 0 or resolution_mm > 2.0:
        raise InputError(f"resolution {resolution_mm} mm out of range (0, 2]")
    if not labels.same_grid(ct):
        raise InputError("labels and CT are not on the same grid (resample the labels first)")
    if subregions is not None and not subregions.same_grid(ct):
        raise InputError("sub-region map and CT are not on the same grid")
    if not np.any(labels.data == level):
        raise LabelError(f"level {vertebra_name(level)} (id {level}) is not in the label map")
    p = params
    notes: list[str] = []
    frame = estimate_frame(labels, level)

    # ---- coarse pass (1 mm) over the whole vertebra: find the body and refine the axes
    pts = _label_points(labels, level)
    loc = (pts - frame.origin) @ frame.rotation
    tmpl = local_template(frame, loc.min(axis=0) - 3, loc.max(axis=0) + 3, 1.0)
    vc = labels.resample(like=tmpl).data == level
    if subregions is not None and np.any(subregions.data == 1):
        sc = subregions.resample(like=tmpl).data
        body_c = vc & ((sc == 1) | (sc == 6))
        if body_c.sum() < 50:
            body_c, _ = _body_from_vertebra(vc)
    else:
        body_c, _ = _body_from_vertebra(vc)
    if body_c.sum() < 50:
        raise LabelError(f"could not find the vertebral body of {vertebra_name(level)} in the labels")
    frame = _refine_si(body_c, frame)
    body_pts = tmpl.voxel_to_world(np.argwhere(body_c))
    frame.origin = body_pts.mean(axis=0)
    si_margin = 7.0
    if crush_expected_height_mm is not None:
        # a crush lift raises the whole endplate by up to E − H: keep the lifted fragment (and the
        # disc above it) inside the grid so no bone mass is pushed out of it
        ext_si = np.ptp((body_pts - frame.origin) @ frame.si)
        si_margin += max(0.0, float(crush_expected_height_mm) - float(ext_si)) + 1.0
    lo, hi = _grid_from_body(frame, body_pts, {"lr": (5, 5), "ap": (24, 4), "si": (si_margin, si_margin)})

    # ---- fine grid; decide the depressed side first (flip so it is +k)
    h = float(resolution_mm)
    tmpl = local_template(frame, lo, hi, h)
    lab = labels.resample(like=tmpl).data
    vert = lab == level
    sub = subregions.resample(like=tmpl).data if subregions is not None else None
    if sub is not None and np.count_nonzero(vert & (sub == 1)) > 100:
        body = ndi.binary_fill_holes(vert & ((sub == 1) | (sub == 6)))
        canal = (sub == 5) & ~vert
        if not canal.any():
            _, canal = _body_from_vertebra(vert)
    else:
        body, canal = _body_from_vertebra(vert)
    top, bot, has = column_surfaces(body)
    # partial-volume occupancy of this vertebra (label mask interpolated linearly): sub-voxel
    # endplate surfaces for the side test and the fracture line (no ±h/2 staircase of the rows)
    frac = Volume((labels.data == level).astype(np.float32), labels.affine).resample(
        like=tmpl, order=1, cval=0.0).data
    zt, zb = subvoxel_surfaces(frac, top, bot, has)
    side, flip, side_ev = _depressed_side(top, bot, has, body, h, zt, zb,
                                          label_step_mm=_step_along(labels.affine, frame.si))
    if flip:
        tmpl = local_template(frame, lo, hi, h, flip_k=True)
        lab, vert, body, canal = lab[:, :, ::-1], vert[:, :, ::-1], body[:, :, ::-1], canal[:, :, ::-1]
        sub = sub[:, :, ::-1] if sub is not None else None
        frac = frac[:, :, ::-1]
    ct_local = ct.resample(like=Volume(np.zeros(tmpl.shape, np.float32), tmpl.affine), order=1)
    hu = ct_local.data.astype(np.float32)
    lab, vert, body, canal = (np.ascontiguousarray(a) for a in (lab, vert, body, canal))

    rho = np.where(vert, np.maximum(p.hu_to_bmd_slope * hu + p.hu_to_bmd_intercept, 0.0), 0.0).astype(np.float64)

    # ---- tissue classes
    tissue = np.zeros(body.shape, np.uint8)
    tissue[(lab > 0) & ~vert] = Tissue.NEIGHBOUR
    tissue[vert & ~body] = Tissue.POSTERIOR
    tissue[canal & (lab == 0)] = Tissue.CANAL
    r_sh = max(1, int(round(p.cortical_shell_mm / h)))
    inner = ndi.binary_erosion(body, iterations=r_sh)
    shell = body & ~inner
    up = np.zeros_like(body)
    up[:, :, :-r_sh] = body[:, :, r_sh:]
    dn = np.zeros_like(body)
    dn[:, :, r_sh:] = body[:, :, :-r_sh]
    ep_sup = shell & ~up
    ep_inf = shell & ~dn & ~ep_sup
    tissue[inner] = Tissue.TRABECULAR
    tissue[shell] = Tissue.CORTEX
    tissue[ep_sup] = Tissue.ENDPLATE_SUP
    tissue[ep_inf] = Tissue.ENDPLATE_INF
    top, bot, has = column_surfaces(body)
    foot = ndi.binary_dilation(has, iterations=int(round(2.0 / h)))
    K = np.arange(body.shape[2])[None, None, :]
    disc = (lab == 0) & ~canal & foot[:, :, None] & ((K > np.where(has, top, 10**6)[:, :, None]) |
                                                      (K < np.where(has, bot, -1)[:, :, None]))
    disc |= (lab == 0) & foot[:, :, None] & ~canal & ((K > top.max()) | (K < bot[has].min()))
    if sub is not None:
        disc |= (sub == 7) & (lab == 0)
    tissue[disc & (tissue == Tissue.SOFT)] = Tissue.DISC

    trab_vals = hu[inner]
    trab_med = float(np.median(trab_vals)) if trab_vals.size else 100.0
    # cleft: gas, or fluid well below the trabecular bone, as connected blobs ≥ 0.05 mL
    low = inner & ((hu < p.cleft_hu_max) | ((hu < min(40.0, p.fluid_cleft_fraction * trab_med)) & (trab_med > 60)))
    low = ndi.binary_opening(low, iterations=1)
    cl, n = ndi.label(low)
    cleft = np.zeros_like(low)
    if n:
        sizes = ndi.sum(low, cl, index=np.arange(1, n + 1)) * h ** 3 / 1000.0
        keep = np.flatnonzero(sizes >= 0.05) + 1
        cleft = np.isin(cl, keep)
    tissue[cleft] = Tissue.CLEFT
    trab_bmd = float(np.median(rho[inner & ~cleft])) if np.any(inner & ~cleft) else 0.0

    geom = measure_heights(body, h)
    bidx = np.argwhere(body)
    j_post, j_ant = int(bidx[:, 1].min()), int(bidx[:, 1].max())
    k_mid = int(round(bidx[:, 2].mean()))
    i_mid = float(bidx[:, 0].mean())
    depth_vox = j_ant - j_post + 1

    # ---- basivertebral foramen and vein trunk (posterior wall, mid-sagittal, mid-height)
    if sub is not None and np.count_nonzero(sub == 6) > 0:
        bv = ndi.binary_dilation(sub == 6, iterations=1) & body
    else:
        rb = 0.5 * p.basivertebral_diameter_mm / h
        disk = _disk((body.shape[0], body.shape[2]), i_mid, k_mid, rb)
        bv = np.zeros_like(body)
        jmax = j_post + int(round(p.basivertebral_depth_frac * depth_vox))
        bv[:, j_post:jmax + 1, :] = disk[:, None, :]
        bv &= body
        notes.append("basivertebral foramen placed at the posterior wall midline (no sub-region map)")
    tissue[bv] = Tissue.BASIVERTEBRAL

    # ---- segmental-vein / nutrient foramina on the anterolateral cortex
    rs = 0.5 * p.segmental_exit_diameter_mm / h + r_sh
    ring = shell & ~ep_sup & ~ep_inf
    j_lat = int(round(j_post + 0.6 * depth_vox))
    exits = np.zeros_like(body)
    row = body[:, j_lat, k_mid]
    if row.any():
        ii = np.flatnonzero(row)
        for ie in (ii.min(), ii.max()):
            exits |= _ball(body.shape, (ie, j_lat, k_mid), rs)
    col = body[int(round(i_mid)), :, k_mid]
    if col.any():
        exits |= _ball(body.shape, (int(round(i_mid)), np.flatnonzero(col).max(), k_mid), rs)
    tissue[exits & ring] = Tissue.SEGMENTAL_EXIT

    # ---- fracture: depressed endplate (model +k), fracture line, band, age, defects
    fr = _fracture(body, inner, tissue, rho, hu, h, side, fracture_age, p, depth_vox, j_post, cleft,
                   crush_expected_height_mm, frac=frac)
    notes.extend(fr.pop("notes"))
    info: FractureInfo = fr["info"]

    geom.update({"j_post": j_post, "j_ant": j_ant, "k_mid": k_mid, "i_mid": i_mid})
    geom.update({f"side_{k}": v for k, v in side_ev.items()})
    return VertebraModel(level=level, name=vertebra_name(level), affine=tmpl.affine.copy(), spacing_mm=h,
                         hu=hu, rho=rho, tissue=tissue, body=body, vert=vert, frame=frame, flipped=flip,
                         fracture=info, geometry=geom, trabecular_bmd_mg_cm3=trab_bmd, params=p, notes=notes,
                         clearance=label_clearance(labels, level))


def label_clearance(labels: Volume, level: int, margin_vox: int = 4) -> Volume:
    """Signed distance (mm; + inside, − outside) to the surface of vertebra ``level`` on a crop of
    the label map's own grid: Euclidean distance transforms of the mask and its complement (voxel
    spacing honoured), each less half a voxel so the zero level lies on the voxel faces. Read with
    trilinear interpolation it gives an instrument's clearance from the cortex independently of the
    model grid."""
    m = labels.data == level
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(axis=0) - margin_vox, 0)
    hi = np.minimum(idx.max(axis=0) + margin_vox + 1, np.asarray(m.shape))
    crop = m[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]
    sp = np.asarray(labels.spacing, float)
    half = 0.5 * float(sp.mean())
    d_in = ndi.distance_transform_edt(crop, sampling=sp) - half
    d_out = ndi.distance_transform_edt(~crop, sampling=sp) - half
    sd = np.where(crop, d_in, -d_out).astype(np.float32)
    aff = np.array(labels.affine, float).copy()
    aff[:3, 3] = labels.voxel_to_world(lo.astype(float))
    return Volume(sd, aff, meta={"units": "mm"})


def _ball(shape, c, r) -> np.ndarray:
    lo = [max(0, int(np.floor(ci - r))) for ci in c]
    hi = [min(s, int(np.ceil(ci + r)) + 1) for ci, s in zip(c, shape)]
    out = np.zeros(shape, bool)
    g = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = ((g[0] - c[0]) ** 2 + (g[1] - c[1]) ** 2 + (g[2] - c[2]) ** 2) <= r * r
    return out


def _step_along(affine: np.ndarray, direction: np.ndarray) -> float:
    """Extent (mm) of one voxel of the grid ``affine`` along the unit ``direction`` (world): the
    height of the staircase a surface normal to ``direction`` has on that grid."""
    edges = np.asarray(affine, float)[:3, :3]
    return float(np.abs(np.asarray(direction, float) @ edges).sum())


#: half-width of the cortical crack zone about the fracture line, mm [U]: 2.5 mm in all, the zone
#: the row rule (|k − kf| ≤ round(0.75 mm/h)) gave on the default 0.5 mm grid before session 4
CRACK_HALF_WIDTH_MM = 1.25
#: an inferior depression needs its plane residual below this fraction of the superior one [U]
SIDE_RATIO = 0.8
#: both residuals below this: planar deformity (a pure wedge) [U]
SIDE_PLANAR_MM = 0.175


def _depressed_side(top, bot, has, body, h: float = 0.5, zt=None, zb=None, label_step_mm: float = 0.0
                    ) -> tuple[str, bool, dict[str, float]]:
    """Which endplate is depressed: the one that departs more from a plane (mean absolute residual
    of a robust plane fit over the interior columns, 2 mm inside the footprint; an intact endplate
    is close to planar).

    The residuals are measured on the sub-voxel surfaces ``zt``/``zb`` (partial-volume occupancy,
    :func:`subvoxel_surfaces`) when given, else on the voxel rows (whose staircase adds ≈ h/4 to
    each residual and made the decision depend on the grid). The inferior endplate is taken only on
    evidence above resolution: residual ratio top/bottom < ``SIDE_RATIO`` *and* a residual gap
    larger than the mean quantisation error of the label map the surfaces come from, q = s/4 (a
    surface on a staircase of step s, at uniformly distributed offsets, departs from its plane by
    s/4 on average; s = ``label_step_mm``, the label voxel's extent along SI). Otherwise — planar
    deformities (both residuals < ``SIDE_PLANAR_MM``: a pure wedge tilts both surfaces alike in the
    body frame) and differences below resolution — the superior endplate, by far the commoner site
    of osteoporotic depression [U]. Returns (side, flip, evidence in mm)."""
    has = _solid_columns(top, bot, has)
    inner = ndi.binary_erosion(has, iterations=max(1, int(round(2.0 / h))))
    if inner.sum() < 20:
        return "none", False, {}
    surfs = (top, bot) if zt is None or zb is None else (zt, zb)
    res = []
    for surf in surfs:
        c = _robust_plane(surf, inner)
        ii, jj = np.nonzero(inner)
        res.append(float(np.mean(np.abs(c[0] * ii + c[1] * jj + c[2] - surf[inner]))) * h)
    margin = 0.25 * float(label_step_mm)
    ev = {"residual_superior_mm": round(res[0], 4), "residual_inferior_mm": round(res[1], 4),
          "residual_ratio": round(res[0] / max(res[1], 1e-9), 4), "resolution_margin_mm": round(margin, 4)}
    if max(res) < SIDE_PLANAR_MM or res[0] >= SIDE_RATIO * res[1] or res[1] - res[0] <= margin:
        return "superior", False, ev
    return "inferior", True, ev


def _reference_deficit(top, bot, region, post) -> np.ndarray:
    """Missing height (voxels) of the (depressed) top surface: the reference is the plane parallel
    to the intact bottom endplate, through the posterior third of the top surface."""
    cb = _robust_plane(bot, region)
    I, J = np.indices(top.shape)
    plane_b = cb[0] * I + cb[1] * J
    off = np.median((top - plane_b)[post])
    return np.where(region, np.maximum(plane_b + off - top, 0.0), 0.0)


def _fracture(body, inner, tissue, rho, hu, h, side, fracture_age, p: SimParams, depth_vox, j_post, cleft,
              crush_expected_height_mm: float | None = None, frac: np.ndarray | None = None):
    notes: list[str] = []
    top, bot, has = column_surfaces(body)
    if frac is not None:
        z_top, _ = subvoxel_surfaces(frac, top, bot, has)
        z_top = np.where(has, z_top, top + 0.5)
    else:
        z_top = top + 0.5                  # the voxel face
    has = _solid_columns(top, bot, has)
    rim = ndi.binary_erosion(has, iterations=max(1, int(round(1.5 / h))))
    jj = np.nonzero(rim)[1] if rim.any() else np.array([0, 1])
    j0, j1 = jj.min(), jj.max()
    post = rim & (np.arange(has.shape[1])[None, :] <= j0 + 0.3 * (j1 - j0))
    if side != "none" and post.sum() >= 6:
        # missing height of each column against the posterior height (Genant reference for wedge /
        # biconcave deformities), attributed to the depressed endplate
        ext = (top - bot + 1).astype(float)
        href = float(np.median(ext[post]))
        deficit = np.where(rim, np.maximum(href - ext, 0.0), 0.0)
        if crush_expected_height_mm is not None and crush_expected_height_mm / h > href:
            # crush (all heights reduced): the reference is the height expected from the adjacent
            # normal levels (the assessment's definition); every column also misses E − Hp_own
            deficit = np.where(rim, deficit + (crush_expected_height_mm / h - href), 0.0)
            notes.append(f"crush: reference height {crush_expected_height_mm:.1f} mm from the adjacent levels "
                         f"(own posterior {href * h:.1f} mm)")
    else:
        deficit = np.zeros(has.shape)
    footprint = rim & (deficit >= max(1.0, 1.0 / h))
    if footprint.any():
        # the fragment includes the rim columns around the depressed interior (the edge of the
        # endplate moves with it); they take the deficit of the nearest interior column
        _, (ni, nj) = ndi.distance_transform_edt(~footprint, return_indices=True)
        grow = ndi.binary_dilation(footprint, iterations=max(1, int(round(2.0 / h)))) & has & ~footprint
        deficit = np.where(grow, deficit[ni, nj], deficit)
        footprint = footprint | grow
    if footprint.sum() < 10:
        footprint = np.zeros_like(rim)
        deficit = np.zeros(has.shape)
        side = "none" if side == "none" else side
    # fracture line at a physical depth below the sub-voxel endplate surface (continuous k index
    # z_f; voxel k spans [k − ½, k + ½]); the fragment is the rows whose centre lies above it, so
    # the row interface kf + ½ is within ±h/2 of z_f, unbiased on every grid
    z_f = z_top - max(2.0, p.fragment_thickness_mm / h)
    kf = np.where(has, np.floor(z_f), 0).astype(int)
    # fracture band: 2 mm of trabecular bone below the fracture line under the depressed area
    # (voxels whose centre lies within 2 mm below z_f: 2 mm thick on average on every grid)
    band_vox = max(1.0, 2.0 / h)
    K = np.arange(body.shape[2])[None, None, :]
    zf3 = z_f[:, :, None]
    band = footprint[:, :, None] & (K <= zf3) & (K > zf3 - band_vox) & inner & ~cleft
    ref = inner & ~cleft & ~band & (K < zf3 - 2 * band_vox)
    rb = float(np.median(rho[band])) if band.any() else float("nan")
    rr = float(np.median(rho[ref])) if ref.any() else float("nan")
    ratio = rb / rr if (np.isfinite(rb) and np.isfinite(rr) and rr > 1e-6) else 1.0
    if fracture_age is None:
        age = "chronic" if ratio >= p.sclerosis_ratio_chronic else "acute"
        if footprint.any():
            notes.append(f"fracture age from the image: band/trabecular density ratio {ratio:.2f} → {age}")
    else:
        if fracture_age not in ("acute", "chronic"):
            raise InputError(f"fracture_age must be 'acute' or 'chronic', got {fracture_age!r}")
        age = fracture_age
    heal = 1.0 if age == "chronic" else 0.0
    tissue[band & (tissue == Tissue.TRABECULAR)] = Tissue.FRACTURE
    if footprint.any() and age == "acute":
        # cortical defects where the fracture line meets the anterior/lateral wall
        foot_d = ndi.binary_dilation(footprint, iterations=max(2, int(round(1.5 / h))))
        _, (ni, nj) = ndi.distance_transform_edt(~footprint, return_indices=True)
        zf_ext = z_f[ni, nj]
        wall = (tissue == Tissue.CORTEX)
        # the crack: wall voxels whose centre lies within CRACK_HALF_WIDTH_MM of the fracture line
        near = np.abs(K - zf_ext[:, :, None]) <= max(0.5, CRACK_HALF_WIDTH_MM / h)
        jmask = (np.arange(body.shape[1]) > j_post + 0.3 * depth_vox)[None, :, None]
        tissue[wall & foot_d[:, :, None] & near & jmask] = Tissue.CORTICAL_DEFECT
        # endplate breaks along the rim of the depression, where the step is steep
        gy = np.hypot(*np.gradient(deficit))
        edge = footprint & ~ndi.binary_erosion(footprint) & rim & (gy >= 0.5)
        epb = (tissue == Tissue.ENDPLATE_SUP) & edge[:, :, None]
        tissue[epb] = Tissue.ENDPLATE_BREAK
    # a cleft touching the endplate opens it (clefts communicate with the disc)
    if cleft.any():
        ep = (tissue == Tissue.ENDPLATE_SUP) | (tissue == Tissue.ENDPLATE_INF)
        touch = ep & ndi.binary_dilation(cleft, iterations=max(1, int(round(1.0 / h))))
        tissue[touch] = Tissue.ENDPLATE_BREAK
    anat_side = side
    info = FractureInfo(side=anat_side, footprint=footprint, deficit_vox=deficit, kf=kf, age=age,
                        heal_fraction=heal, band_density_ratio=float(ratio),
                        band_rho_mg_cm3=rb if np.isfinite(rb) else 0.0,
                        mean_deficit_mm=float(deficit[footprint].mean() * h) if footprint.any() else 0.0,
                        cleft_volume_ml=float(cleft.sum() * h ** 3 / 1000.0),
                        zf=np.where(has, z_f, kf + 0.5))
    return {"info": info, "notes": notes}
