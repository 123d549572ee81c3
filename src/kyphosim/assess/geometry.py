"""Vertebral-body geometry: body isolation, local frame, endplate surfaces and heights.

This module is the geometric core that assessment, planning and simulation share. Everything is
computed in world RAS+ millimetres through the label map's affine, so any voxel order, anisotropic
spacing or oblique grid is handled, and every measurement is made in the body's own local frame
(never along the scanner axes).

Height convention (``docs/assessment.md`` and ``docs/phantom.md`` state the same):

* Local frame: SI = normal to the mean endplate plane (the normalised mean of the superior and
  inferior endplate plane normals, pointing superior); AP ⟂ SI in the mid-sagittal plane, pointing
  anterior; LR = AP × SI (points to the patient's right).
* Body depth D = extent of the body along AP on the mid-sagittal plane at mid-height.
* Ha, Hm, Hp = distance along SI between the superior and inferior outer bone surfaces at AP
  positions 10 %, 50 % and 90 % of D from the anterior margin, each the median over the central
  parasagittal band ``|LR| ≤ 20 %`` of the body width.

Boundaries are located with sub-voxel precision: the binary mask is read as a partial-volume
occupancy field (trilinear interpolation of the 0/1 voxels) and a surface is where that field crosses
0.5 along the sampled line (linear interpolation between samples), not by counting voxels.

Public API
----------
``vertebral_body_geometry(labels, label, subregions=None) -> BodyGeometry``
``BodyGeometry.measure_heights(...) -> BodyHeights``
``BodyGeometry.endplate(which) -> EndplateSurface``
``BodyGeometry.body_mask_volume() -> Volume``
``body_frame_local(...)`` helpers: ``BodyFrame.to_local`` / ``BodyFrame.to_world``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Sequence

import numpy as np
from scipy import ndimage

from kyphosim.errors import GridMismatchError, InputError, LabelError
from kyphosim.imaging.labels import SUBREGION_IDS, subregions_from_tptbox, vertebra_name
from kyphosim.imaging.volume import Volume, apply_affine

__all__ = [
    "BodyFrame", "EndplateSurface", "BodyHeights", "BodyGeometry", "vertebral_body_geometry",
    "prepare_subregions", "voxel_extent_along", "HEIGHT_FRACTIONS", "BAND_FRACTION",
]

#: AP positions of Ha, Hm, Hp as fractions of the body depth from the anterior margin.
HEIGHT_FRACTIONS: tuple[float, float, float] = (0.10, 0.50, 0.90)
#: half-width of the central parasagittal band, as a fraction of the body width.
BAND_FRACTION: float = 0.20
_RASTER_MM = 1.5          # resolution of the working raster used for frame and isolation (mm)
_STEP_MM = 0.3            # largest sampling step along measurement lines (mm)


# ----------------------------------------------------------------------------------- helpers
def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    if n < 1e-12:
        raise ValueError("zero-length vector")
    return v / n


def voxel_extent_along(affine: np.ndarray, direction: np.ndarray) -> float:
    """Extent (mm) of one voxel of grid ``affine`` along the world unit vector ``direction``.

    For a direction along an array axis this is that axis's spacing; for an oblique direction it is
    the voxel's projected support ``Σ |d · a_i|`` over the three voxel edge vectors ``a_i``.
    """
    cols = np.asarray(affine, float)[:3, :3]
    d = _unit(direction)
    return float(np.sum(np.abs(d @ cols)))


def prepare_subregions(subregions: Volume | np.ndarray | None) -> np.ndarray | None:
    """Sub-region data in kyphosim ids (TPTBox/VerSe ids 41–50 are mapped); None passes through."""
    if subregions is None:
        return None
    data = subregions.data if isinstance(subregions, Volume) else np.asarray(subregions)
    if data.size and int(data.max()) >= 41:
        return subregions_from_tptbox(data)
    return data


@dataclass(frozen=True)
class BodyFrame:
    """Local orthonormal frame of a vertebral body (world RAS+ mm).

    ``origin_mm`` is the body centre on the mid-sagittal plane at mid-height; ``lr``, ``ap``, ``si``
    are unit world vectors (LR to the right, AP anterior, SI superior; right-handed: lr = ap × si).
    Local coordinates are (lr, ap, si) in mm.
    """

    origin_mm: np.ndarray
    lr: np.ndarray
    ap: np.ndarray
    si: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        """3×3 matrix whose columns are lr, ap, si (local → world)."""
        return np.column_stack([self.lr, self.ap, self.si])

    def to_local(self, points_mm: np.ndarray) -> np.ndarray:
        """World points (..., 3) → local (lr, ap, si) mm."""
        return (np.asarray(points_mm, float) - self.origin_mm) @ self.rotation

    def to_world(self, local_mm: np.ndarray) -> np.ndarray:
        """Local (lr, ap, si) mm (..., 3) → world RAS+ mm."""
        return np.asarray(local_mm, float) @ self.rotation.T + self.origin_mm


@dataclass
class EndplateSurface:
    """Sub-voxel samples of one endplate's outer bone surface.

    ``local_mm`` holds (lr, ap, si) points in the body frame; ``points_mm`` the same in world mm.
    ``normal`` is the fitted plane's unit normal (world, pointing superior) and ``point_mm`` a point
    on it. ``tilt_ap`` is the plane's slope d(si)/d(ap) in the body frame.
    """

    which: str
    local_mm: np.ndarray
    points_mm: np.ndarray
    normal: np.ndarray
    point_mm: np.ndarray
    tilt_ap: float
    tilt_lr: float


@dataclass
class BodyHeights:
    """Ha, Hm, Hp (mm) and where they were measured.

    ``columns_mm`` gives, per height, the local (lr, ap) of every band column used and
    ``superior_si_mm`` / ``inferior_si_mm`` the boundary positions found on them (NaN = not found).
    """

    anterior_mm: float | None
    middle_mm: float | None
    posterior_mm: float | None
    ap_positions_mm: tuple[float, float, float]
    spread_mm: tuple[float, float, float]
    columns_mm: list[np.ndarray]
    superior_si_mm: list[np.ndarray]
    inferior_si_mm: list[np.ndarray]
    wedge_angle_deg: float | None = None
    profile_fractions: np.ndarray | None = None
    profile_mm: np.ndarray | None = None
    #: per height, the fraction of surface samples placed by the CT edge model (None: mask only)
    ct_refined_fraction: tuple[float, ...] | None = None

    def profile_min(self) -> tuple[float | None, float | None]:
        """Smallest height (mm) on the mid-sagittal profile 10–90 % of D and its AP fraction."""
        if self.profile_mm is None or not np.isfinite(self.profile_mm).any():
            return None, None
        k = int(np.nanargmin(self.profile_mm))
        return float(self.profile_mm[k]), float(self.profile_fractions[k])

    def as_tuple(self) -> tuple[float | None, float | None, float | None]:
        return self.anterior_mm, self.middle_mm, self.posterior_mm


# --------------------------------------------------------------------------------- sampler
class _Sampler:
    """Partial-volume occupancy of one mask crop, sampled at world points (trilinear)."""

    def __init__(self, occupancy: np.ndarray, affine: np.ndarray):
        self.occ = np.ascontiguousarray(occupancy, dtype=np.float32)
        self.affine = affine
        self.inv = np.linalg.inv(affine)
        self.shape = np.asarray(self.occ.shape)
        sp = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
        self.step_mm = float(np.clip(0.25 * sp.min(), 0.1, _STEP_MM))

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        pts = np.asarray(points_mm, float)
        ijk = apply_affine(self.inv, pts.reshape(-1, 3)).T
        vals = ndimage.map_coordinates(self.occ, ijk, order=1, mode="constant", cval=0.0, prefilter=False,
                                       output=np.float32)
        return vals.reshape(pts.shape[:-1])

    def lines(self, origins_mm: np.ndarray, direction: np.ndarray, t_mm: np.ndarray) -> np.ndarray:
        """Occupancy on lines ``origin + t·direction`` (M lines × T samples), computed in voxel space."""
        o = apply_affine(self.inv, origins_mm)                       # (M, 3) voxel
        d = self.inv[:3, :3] @ direction                              # voxel per mm
        t32 = t_mm.astype(np.float32)
        ijk = np.empty((3, o.shape[0], t32.size), np.float32)
        for a in range(3):
            ijk[a] = o[:, a, None].astype(np.float32) + t32[None, :] * np.float32(d[a])
        vals = ndimage.map_coordinates(self.occ, ijk.reshape(3, -1), order=1, mode="constant", cval=0.0,
                                       prefilter=False, output=np.float32)
        return vals.reshape(o.shape[0], t32.size)

    def near_edge(self, points_mm: np.ndarray, margin_vox: float = 1.0) -> np.ndarray:
        """True where a world point lies within ``margin_vox`` voxels of the crop's outer faces."""
        ijk = apply_affine(self.inv, np.asarray(points_mm, float).reshape(-1, 3))
        out = np.any((ijk < margin_vox - 0.5) | (ijk > self.shape - 0.5 - margin_vox), axis=1)
        return out.reshape(np.asarray(points_mm).shape[:-1])


def _boundaries_along(sampler: _Sampler, origins: np.ndarray, direction: np.ndarray, reach_mm: float,
                      step_mm: float | None = None, gap_mm: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances (mm) from each origin to the 0.5-crossings of the occupancy field.

    Walks from each origin (or, when the origin is outside, from the nearest inside sample on the
    line) towards +direction and −direction; returns (t_plus, t_minus) with NaN where no crossing
    was found within ``reach_mm`` or the line holds no inside sample. Holes shorter than ``gap_mm``
    along the line are bridged, so the outer surface is found.
    """
    origins = np.atleast_2d(np.asarray(origins, float))
    if step_mm is None:
        step_mm = sampler.step_mm
    t = np.arange(-reach_mm, reach_mm + step_mm / 2, step_mm)
    k0 = int(np.argmin(np.abs(t)))
    v = sampler.lines(origins, np.asarray(direction, float), t)
    inside = v >= 0.5
    if gap_mm > 0:
        # bridge internal holes of the mask (vein channels, defects) shorter than gap_mm
        g = max(1, int(np.ceil(gap_mm / step_mm)))
        inside = ndimage.binary_closing(inside, structure=np.ones((1, 2 * (g // 2) + 1), bool)) | inside
    idx = np.arange(t.size)
    dist = np.where(inside, np.abs(idx - k0), 10 ** 9)
    start = np.argmin(dist, axis=1)
    has_inside = inside.any(axis=1)
    # first outside sample above the start
    above = (~inside) & (idx[None, :] > start[:, None])
    up_found = above.any(axis=1)
    ku = np.where(up_found, np.argmax(above, axis=1), 0)
    below = (~inside) & (idx[None, :] < start[:, None])
    down_found = below.any(axis=1)
    kd = np.where(down_found, t.size - 1 - np.argmax(below[:, ::-1], axis=1), 0)
    rows = np.arange(origins.shape[0])

    def cross(k_out: np.ndarray, k_in: np.ndarray) -> np.ndarray:
        v_in = v[rows, k_in]
        v_out = v[rows, k_out]
        frac = np.clip((v_in - 0.5) / np.maximum(v_in - v_out, 1e-6), 0.0, 1.0)
        return t[k_in] + frac * (t[k_out] - t[k_in])

    t_plus = np.where(up_found & has_inside, cross(ku, np.maximum(ku - 1, 0)), np.nan)
    t_minus = np.where(down_found & has_inside, cross(kd, np.minimum(kd + 1, t.size - 1)), np.nan)
    return t_plus, t_minus


#: CT edge refinement is used when the voxel extent along SI is at most this (mm): the thin-plate model
#: was checked on phantom grids up to 3 mm along SI
CT_REFINE_MAX_VOXEL_MM = 3.5
#: the anterior/posterior wall fits sample at least this many voxels (along AP) beyond the blur on each side
WALL_SIDE_VOXELS = 1.0


# ------------------------------------------------------------------------------- the geometry
@dataclass
class BodyGeometry:
    """Geometry of one vertebral body (all lengths mm, all vectors world RAS+).

    Attributes
    ----------
    label, name : VerSe id and name.
    frame : :class:`BodyFrame` (origin on the mid-sagittal plane at mid-height).
    depth_mm, width_mm : body depth D (AP, mid-sagittal, mid-height) and width (LR, mid-height).
    anterior_ap_mm, posterior_ap_mm : local AP coordinate of the anterior and posterior margins.
    centre_height_mm : height along SI through the origin.
    source : 'subregions' (body from a sub-region mask) or 'geometric' (isolated anterior to the canal).
    flags : quality flags (``cut_by_fov``, ``fragmented_mask``, ``no_canal_found``, ...).
    voxel_si_mm : voxel extent along the SI axis (the height resolution of the input).
    """

    label: int
    name: str
    frame: BodyFrame
    depth_mm: float
    width_mm: float
    anterior_ap_mm: float
    posterior_ap_mm: float
    centre_height_mm: float
    source: str
    flags: list[str]
    voxel_si_mm: float
    _sampler: _Sampler = field(repr=False)
    _crop_lo: np.ndarray = field(repr=False)
    _body_crop: np.ndarray = field(repr=False)
    _labels_affine: np.ndarray = field(repr=False)
    _labels_shape: tuple[int, int, int] = field(repr=False)
    _reach_mm: float = field(repr=False, default=60.0)
    ct: Volume | None = field(repr=False, default=None)
    #: endplate thickness (mm) used for the CT edges of this body; None = the typical
    #: :data:`kyphosim.assess.edges.PLATE_MM` (``assess_spine`` sets it for markedly dense endplates)
    endplate_thickness_mm: float | None = field(repr=False, default=None)
    #: HU under the superior / inferior endplate and of the central trabecular bone (CT attached)
    subendplate_hu: tuple = field(repr=False, default=(None, None, None))
    #: a band under an endplate (set by ``assess_spine``; gates the endplate-thickness correction)
    subendplate_band: bool = field(repr=False, default=False)

    def with_occupancy(self, occupancy: np.ndarray, affine: np.ndarray) -> "BodyGeometry":
        """The same body frame and margins, reading the endplate surfaces from another occupancy
        grid (``occupancy`` 0–1 on the voxel grid of ``affine``, voxel → world mm) — e.g. the same
        body after an endplate moved. Mask-only (no CT attached); caches are not carried over."""
        return replace(self, _sampler=_Sampler(occupancy, np.asarray(affine, float)), ct=None)

    def attach_ct(self, ct: Volume | None) -> "BodyGeometry":
        """Use ``ct`` (HU, any grid) to place the endplate surfaces of the heights to sub-voxel precision.

        The surfaces found on the mask are refined within their voxel by the blurred thin-plate model of
        :mod:`kyphosim.assess.edges`; ``None`` detaches it (mask-only surfaces).
        """
        self.ct = ct
        self.__dict__.pop("_endplate_cache", None)
        self.__dict__.pop("_ct_crop", None)
        self.__dict__.pop("_ct_cols_cache", None)
        self.__dict__.pop("_ct_sigma", None)
        self.subendplate_hu = (None, None, None)
        self.subendplate_band = False
        if ct is not None:
            self._refine_margins_ct()
            if self.voxel_si_mm <= CT_REFINE_MAX_VOXEL_MM:
                self.subendplate_hu = self._subendplate_hu()
        return self

    def _subendplate_hu(self) -> tuple[float | None, float | None, float | None]:
        """Mean CT (HU) of the trabecular bone just under the superior and the inferior endplate and
        the median of the body's central trabecular bone, on the Ha/Hm/Hp columns (medians over columns).

        Under-endplate window: from ½ voxel + the plate (:data:`kyphosim.assess.edges.PLATE_MM`) +
        1.5 σ of the blur inside the mask surface, 3 mm deep, never past mid-height; centre: the middle
        30 % of each column's height, only where the under-endplate windows stay clear of it (else None:
        a collapsed body has no band-free centre).
        """
        from kyphosim.assess.edges import PLATE_MM, default_sigma_mm

        crop = self._crop_ct()
        if crop is None:
            return None, None, None
        _, columns = self._height_layout()
        LR = np.concatenate([c[0].ravel() for c in columns])
        AP = np.concatenate([c[1].ravel() for c in columns])
        tp = np.concatenate([c[2].ravel() for c in columns])
        tm = np.concatenate([c[3].ravel() for c in columns])
        sig = default_sigma_mm(self.voxel_si_mm)
        d0 = 0.5 * self.voxel_si_mm + PLATE_MM + 1.5 * sig
        ok = np.isfinite(tp) & np.isfinite(tm) & (0.5 * (tp - tm) >= d0 + 0.5)
        if ok.sum() < 5:
            return None, None, None
        org = self.frame.to_world(np.stack([LR[ok], AP[ok], np.zeros(int(ok.sum()))], axis=1))
        tp, tm = tp[ok], tm[ok]
        h = tp - tm
        u = np.linspace(0.0, 1.0, 13)
        d = d0 + u[None, :] * np.minimum(3.0, 0.5 * h - d0)[:, None]         # (M, 13), never past mid-height
        sup = crop.lines(org, self.frame.si, tp[:, None] - d)
        inf = crop.lines(org, self.frame.si, tm[:, None] + d)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            vals = [float(np.nanmedian(np.nanmean(sup, axis=1))), float(np.nanmedian(np.nanmean(inf, axis=1)))]
            room = 0.35 * h >= d0 + 3.0
            centre = None
            if room.sum() >= 5:
                v = np.linspace(-0.15, 0.15, 9)
                cen = crop.lines(org[room], self.frame.si, (0.5 * (tp + tm))[room, None] + h[room, None] * v[None, :])
                centre = float(np.nanmedian(np.nanmedian(cen, axis=1)))
        vals = [x if np.isfinite(x) else None for x in vals]
        return vals[0], vals[1], centre

    def _refine_margins_ct(self) -> None:
        """Anterior and posterior margins (hence D and the AP positions of Ha/Hm/Hp) placed on the CT.

        The same lines as the mask-based depth (mid-sagittal ±1.5 mm in LR, ±2 mm in SI around
        mid-height); each wall crossing is refined within its voxel along AP by the thin-plate model
        with the cortical shell's thickness (:data:`kyphosim.assess.edges.WALL_MM`). Lines without a
        clear cortex (the basivertebral foramen on the posterior wall) keep the mask crossing.
        """
        from kyphosim.assess.edges import WALL_MM, estimate_sigma, refine_surfaces

        crop = self._crop_ct()
        if crop is None:
            return
        f = self.frame
        LRo, SIo = np.meshgrid(np.array([-1.5, 0.0, 1.5]), np.linspace(-2.0, 2.0, 5), indexing="ij")
        loc = np.stack([LRo.ravel(), np.zeros(LRo.size), SIo.ravel()], axis=1)
        origins = f.to_world(loc)
        ta, tpo = _boundaries_along(self._sampler, origins, f.ap, self._reach_mm, gap_mm=0.0)
        if not (np.isfinite(ta).any() and np.isfinite(tpo).any()):
            return
        vox_ap = voxel_extent_along(self._labels_affine, f.ap)
        # at least one voxel of plateau beyond the blur on each side of the wall (trabecular core inside,
        # soft tissue / canal outside), so that a coarse AP axis still gives ≥ 4 knots for 4 unknowns
        side = WALL_SIDE_VOXELS * vox_ap
        sig = estimate_sigma(crop, [(origins, f.ap, ta, +1.0), (origins, f.ap, tpo, -1.0)], vox_ap,
                             plate_mm=WALL_MM, side_mm=side)
        ra, _ = refine_surfaces(crop, origins, f.ap, ta, +1.0, vox_ap, plate_mm=WALL_MM, sigma_mm=sig, side_mm=side)
        rp, _ = refine_surfaces(crop, origins, f.ap, tpo, -1.0, vox_ap, plate_mm=WALL_MM, sigma_mm=sig, side_mm=side)
        # the mask estimate of the same lines, to move the stored margins by the refinement only
        d_ant = _trimmed_mean(ra) - _trimmed_mean(ta)
        d_post = _trimmed_mean(rp) - _trimmed_mean(tpo)
        lim = 0.5 * vox_ap + 0.3
        self.anterior_ap_mm = float(self.anterior_ap_mm + np.clip(d_ant, -lim, lim))
        self.posterior_ap_mm = float(self.posterior_ap_mm + np.clip(d_post, -lim, lim))
        self.depth_mm = float(self.anterior_ap_mm - self.posterior_ap_mm)

    def _crop_ct(self):
        crop = self.__dict__.get("_ct_crop")
        if crop is None:
            from kyphosim.assess.edges import CTCrop

            body, aff = self.body_mask_crop()
            idx = np.argwhere(body)
            if idx.size == 0:
                return None
            w = apply_affine(aff, np.array([idx.min(axis=0), idx.max(axis=0)], float))
            crop = CTCrop(self.ct, w.min(axis=0), w.max(axis=0))
            self.__dict__["_ct_crop"] = crop
        return crop

    # ------------------------------------------------------------------ derived objects
    @property
    def centroid_mm(self) -> np.ndarray:
        return self.frame.origin_mm

    def body_mask_volume(self, like: Volume | None = None) -> Volume:
        """The isolated body as a boolean label map on the full label grid."""
        full = np.zeros(self._labels_shape, dtype=bool)
        lo = self._crop_lo
        sl = tuple(slice(int(a), int(a) + s) for a, s in zip(lo, self._body_crop.shape))
        full[sl] = self._body_crop
        return Volume(full, self._labels_affine.copy(), is_label=True,
                      source_axcodes=like.source_axcodes if like is not None else None,
                      meta={"label": self.label, "structure": "vertebral_body"})

    def body_mask_crop(self) -> tuple[np.ndarray, np.ndarray]:
        """(boolean body mask on the crop, crop affine voxel→world)."""
        aff = self._labels_affine.copy()
        aff[:3, 3] = apply_affine(self._labels_affine, self._crop_lo)
        return self._body_crop, aff

    def profile(self, lr_mm: np.ndarray, ap_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Superior and inferior surface positions (local SI mm) on the columns (lr, ap) (local mm).

        NaN where the column holds no body or the surface is cut by the field of view.
        """
        lr = np.atleast_1d(np.asarray(lr_mm, float))
        ap = np.atleast_1d(np.asarray(ap_mm, float))
        lr, ap = np.broadcast_arrays(lr, ap)
        loc = np.stack([lr.ravel(), ap.ravel(), np.zeros(lr.size)], axis=1)
        origins = self.frame.to_world(loc)
        tp, tm = _boundaries_along(self._sampler, origins, self.frame.si, self._reach_mm)
        sup_pts = origins + tp[:, None] * self.frame.si
        inf_pts = origins + tm[:, None] * self.frame.si
        tp = np.where(self._sampler.near_edge(np.nan_to_num(sup_pts)), np.nan, tp)
        tm = np.where(self._sampler.near_edge(np.nan_to_num(inf_pts)), np.nan, tm)
        return tp.reshape(lr.shape), tm.reshape(lr.shape)

    def _refine_ct(self, LR: np.ndarray, AP: np.ndarray, tp: np.ndarray, tm: np.ndarray):
        """CT-refined superior/inferior surfaces on the columns (LR, AP): (sup, inf, ok_sup, ok_inf,
        plate mass sup, plate mass inf), all shaped like ``tp`` (masses HU·mm, NaN where not refined)."""
        from kyphosim.assess.edges import refine_surfaces

        crop = self._crop_ct()
        if crop is None:
            z = np.zeros(tp.shape, bool)
            return tp, tm, z, z, np.full(tp.shape, np.nan), np.full(tp.shape, np.nan)
        loc = np.stack([LR.ravel(), AP.ravel(), np.zeros(LR.size)], axis=1)
        org = self.frame.to_world(loc)
        sig = self._ct_sigma_si()
        rp, okp, mp = refine_surfaces(crop, org, self.frame.si, tp.ravel(), +1.0, self.voxel_si_mm, sigma_mm=sig,
                                      return_mass=True)
        rm, okm, mm = refine_surfaces(crop, org, self.frame.si, tm.ravel(), -1.0, self.voxel_si_mm, sigma_mm=sig,
                                      return_mass=True)
        sh = tp.shape
        return rp.reshape(sh), rm.reshape(sh), okp.reshape(sh), okm.reshape(sh), mp.reshape(sh), mm.reshape(sh)

    def _ct_sigma_si(self) -> float | None:
        """Blur SD (mm) of the CT along SI at this body, estimated once from the Ha/Hm/Hp columns of both
        endplates (:func:`kyphosim.assess.edges.estimate_sigma`); None = the default rule."""
        if "_ct_sigma" in self.__dict__:
            return self.__dict__["_ct_sigma"]
        from kyphosim.assess.edges import estimate_sigma

        sig = None
        crop = self._crop_ct()
        if crop is not None:
            _, columns = self._height_layout()
            sets = []
            for LR, AP, tp, tm in columns:
                org = self.frame.to_world(np.stack([LR.ravel(), AP.ravel(), np.zeros(LR.size)], axis=1))
                sets += [(org, self.frame.si, tp.ravel(), +1.0), (org, self.frame.si, tm.ravel(), -1.0)]
            sig = estimate_sigma(crop, sets, self.voxel_si_mm)
        self.__dict__["_ct_sigma"] = sig
        return sig

    def _ct_height_columns(self, key, columns):
        """Refined surfaces of the height columns (cached per layout) — see :meth:`measure_heights`."""
        cache = self.__dict__.setdefault("_ct_cols_cache", {})
        if key not in cache:
            cache[key] = [self._refine_ct(LR, AP, tp, tm) for LR, AP, tp, tm in columns]
        return cache[key]

    def plate_mass_hu_mm(self) -> float | None:
        """Median fitted endplate mass (HU·mm) over the Ha/Hm/Hp columns of both endplates (CT attached).

        The mass (deblurred plate level above the trabecular level × the assumed plate thickness) does
        not depend on the blur; relative to the spine's other levels it tells a thicker or denser
        (sclerotic) endplate.
        """
        if self.ct is None or self.voxel_si_mm > CT_REFINE_MAX_VOXEL_MM:
            return None
        key, columns = self._height_layout()
        meds = []
        for r in self._ct_height_columns(key, columns):
            for ok, m in ((r[2], r[4]), (r[3], r[5])):
                if ok.sum() >= 3:
                    meds.append(float(np.median(m[ok])))
        return float(np.median(meds)) if meds else None

    def _height_layout(self, fractions: Sequence[float] = HEIGHT_FRACTIONS, band_fraction: float = BAND_FRACTION,
                       ap_dither_mm: float | None = None, n_lr: int = 9):
        """Band columns of each height and their mask surfaces (cached): (key, [(LR, AP, tp, tm)])."""
        D = self.depth_mm
        dither = min(1.5, 0.04 * D) if ap_dither_mm is None else float(ap_dither_mm)
        key = (tuple(float(f) for f in fractions), float(band_fraction), float(dither), int(n_lr),
               round(self.anterior_ap_mm, 6), round(D, 6), round(self.width_mm, 6))
        cache = self.__dict__.setdefault("_layout_cache", {})
        if key in cache:
            return key, cache[key]
        half = band_fraction * self.width_mm
        lr_vals = np.linspace(-half, half, n_lr)
        ap_offsets = np.linspace(-dither, dither, 5) if dither > 0 else np.zeros(1)
        columns = []
        for f in fractions:
            ap0 = self.anterior_ap_mm - f * D
            # keep the dither inside the body
            offs = ap_offsets[(ap0 + ap_offsets < self.anterior_ap_mm - 0.25) &
                              (ap0 + ap_offsets > self.posterior_ap_mm + 0.25)]
            if offs.size == 0:
                offs = np.zeros(1)
            LR, AP = np.meshgrid(lr_vals, ap0 + offs, indexing="ij")
            tp, tm = self.profile(LR, AP)
            columns.append((LR, AP, tp, tm))
        cache[key] = columns
        return key, columns

    def measure_heights(self, fractions: Sequence[float] = HEIGHT_FRACTIONS, *,
                        band_fraction: float = BAND_FRACTION, ap_dither_mm: float | None = None,
                        n_lr: int = 9) -> BodyHeights:
        """Ha, Hm, Hp (mm) at AP ``fractions`` of D from the anterior margin (contract convention).

        Each height is the median over ``n_lr`` columns spread over ``|LR| ≤ band_fraction × width``
        and, to average out voxel quantisation, over small AP offsets (``ap_dither_mm``, default
        ``min(1.5 mm, 4 % of D)``) around the nominal position. With a CT attached, every surface is
        placed within its voxel on the CT (:mod:`kyphosim.assess.edges`).
        """
        D = self.depth_mm
        half = band_fraction * self.width_mm
        lr_vals = np.linspace(-half, half, n_lr)
        vals, spreads, cols, sups, infs, aps = [], [], [], [], [], []
        use_ct = self.ct is not None and self.voxel_si_mm <= CT_REFINE_MAX_VOXEL_MM
        ct_frac: list[float] = []
        key, columns = self._height_layout(fractions, band_fraction, ap_dither_mm, n_lr)
        refined = self._ct_height_columns(key, columns) if use_ct else None
        # outer surface of a plate thicker than the model's: half the extra thickness further out
        thick_shift = 0.0
        if use_ct and self.endplate_thickness_mm is not None:
            from kyphosim.assess.edges import PLATE_MM

            thick_shift = 0.5 * (float(self.endplate_thickness_mm) - PLATE_MM)
        for q, (f, (LR, AP, tp, tm)) in enumerate(zip(fractions, columns)):
            ap0 = self.anterior_ap_mm - f * D
            if use_ct:
                rp, rm, okp, okm, mp, mm = refined[q]
                tp, tm = np.where(okp, rp + thick_shift, rp), np.where(okm, rm - thick_shift, rm)
                n = int(np.isfinite(rp).sum() + np.isfinite(rm).sum())
                ct_frac.append(float((okp.sum() + okm.sum()) / n) if n else 0.0)
            h = tp - tm
            # median over LR of the per-column mean over the AP dither
            with np.errstate(all="ignore"):
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    col_h = np.nanmean(np.where(np.isfinite(h), h, np.nan), axis=1)
            ok = np.isfinite(col_h)
            if ok.sum() >= max(3, n_lr // 2):
                vals.append(float(np.median(col_h[ok])))
                spreads.append(float(np.subtract(*np.percentile(col_h[ok], [75, 25]))))
            else:
                vals.append(None)
                spreads.append(float("nan"))
            cols.append(np.stack([LR.ravel(), AP.ravel()], axis=1))
            sups.append(tp.ravel())
            infs.append(tm.ravel())
            aps.append(float(ap0))
        # height profile along AP (median over the band), 10–90 % of D
        pf = np.linspace(0.10, 0.90, 17)
        LR, AP = np.meshgrid(lr_vals, self.anterior_ap_mm - pf * D, indexing="ij")
        tp, tm = self.profile(LR, AP)
        if use_ct:
            rp, rm, okp, okm, _, _ = self._refine_ct(LR, AP, tp, tm)
            tp, tm = np.where(okp, rp + thick_shift, rp), np.where(okm, rm - thick_shift, rm)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            hp_ = tp - tm
            okc = np.isfinite(hp_).sum(axis=0) >= max(3, n_lr // 2)
            prof = np.where(okc, np.nanmedian(np.where(np.isfinite(hp_), hp_, np.nan), axis=0), np.nan)
            # 3-point running mean (±5 % of D): one noisy column position does not make a depression
            padp = np.concatenate([prof[:1], prof, prof[-1:]])
            prof = (padp[:-2] + padp[1:-1] + padp[2:]) / 3.0
        return BodyHeights(vals[0], vals[1], vals[2], tuple(aps), tuple(spreads), cols, sups, infs,
                           wedge_angle_deg=self.wedge_angle_deg(), profile_fractions=pf, profile_mm=prof,
                           ct_refined_fraction=tuple(ct_frac) if use_ct else None)

    def wedge_angle_deg(self) -> float | None:
        """Angle between the superior and inferior endplate lines in the mid-sagittal band (deg).

        Lines are fitted to the sub-voxel surface points over the anterior (5–30 % of D) and
        posterior (70–95 %) thirds, so a central (biconcave) depression does not tilt them.
        Positive = anterior narrower (kyphotic).
        """
        sup, inf = self.endplate("superior", rim_only=True), self.endplate("inferior", rim_only=True)
        if sup is None or inf is None:
            return None
        return float(np.degrees(np.arctan(inf.tilt_ap) - np.arctan(sup.tilt_ap)))

    def endplate(self, which: str = "superior", *, rim_only: bool = False, band_fraction: float = 0.35,
                 n_lr: int = 9, n_ap: int = 25) -> EndplateSurface | None:
        """Sub-voxel samples of the superior or inferior endplate surface with a fitted plane.

        Samples a grid of (lr, ap) columns over ``|LR| ≤ band_fraction × width`` and AP 5–95 % of D
        (``rim_only``: only 5–30 % and 70–95 %). Returns None when too few columns hit the surface.
        """
        if which not in ("superior", "inferior"):
            raise ValueError("which must be 'superior' or 'inferior'")
        key = (which, rim_only, band_fraction, n_lr, n_ap)
        cache = self.__dict__.setdefault("_endplate_cache", {})
        if key in cache:
            return cache[key]
        D = self.depth_mm
        fr = np.linspace(0.05, 0.95, n_ap)
        if rim_only:
            fr = fr[(fr <= 0.30) | (fr >= 0.70)]
        ap = self.anterior_ap_mm - fr * D
        lr = np.linspace(-band_fraction * self.width_mm, band_fraction * self.width_mm, n_lr)
        LR, AP = np.meshgrid(lr, ap, indexing="ij")
        tp, tm = self.profile(LR, AP)
        si = tp if which == "superior" else tm
        ok = np.isfinite(si)
        if ok.sum() < 6:
            cache[key] = None
            return None
        loc = np.stack([LR[ok], AP[ok], si[ok]], axis=1)
        coef = _robust_plane(loc)
        a_lr, a_ap = coef[1], coef[2]
        n_loc = _unit(np.array([-a_lr, -a_ap, 1.0]))
        pt_loc = np.array([0.0, float(np.mean(loc[:, 1])), coef[0] + a_ap * float(np.mean(loc[:, 1]))])
        surf = EndplateSurface(which, loc, self.frame.to_world(loc), self.frame.rotation @ n_loc,
                               self.frame.to_world(pt_loc), float(a_ap), float(a_lr))
        cache[key] = surf
        return surf

    def posterior_wall_profile(self, n_si: int = 21, band_fraction: float = 0.10,
                               n_lr: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Posterior-wall AP position (local mm, median over a narrow central band) along SI.

        Returns (si_mm, ap_mm) for SI positions between 10 % and 90 % of the centre height.
        """
        tp, tm = self.profile(np.zeros(1), np.zeros(1))
        if not (np.isfinite(tp[0]) and np.isfinite(tm[0])):
            return np.empty(0), np.empty(0)
        si = tm[0] + (tp[0] - tm[0]) * np.linspace(0.1, 0.9, n_si)
        lr = np.linspace(-band_fraction * self.width_mm, band_fraction * self.width_mm, n_lr)
        LR, SI = np.meshgrid(lr, si, indexing="ij")
        start_ap = 0.5 * (self.anterior_ap_mm + self.posterior_ap_mm)
        loc = np.stack([LR.ravel(), np.full(LR.size, start_ap), SI.ravel()], axis=1)
        _, t_back = _boundaries_along(self._sampler, self.frame.to_world(loc), self.frame.ap, self._reach_mm,
                                      gap_mm=0.0)
        ap = start_ap + t_back.reshape(LR.shape)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return si, np.nanmedian(ap, axis=0)


def _trimmed_mean(x: np.ndarray, cut: float = 0.2) -> float:
    """Mean of the finite values between the ``cut`` and ``1 − cut`` quantiles."""
    v = np.sort(np.asarray(x, float)[np.isfinite(x)])
    k = int(np.floor(cut * v.size))
    return float(v[k:v.size - k].mean()) if v.size - 2 * k > 0 else float(np.median(v))


def _robust_plane(loc: np.ndarray, n_iter: int = 2, clip_mm: float = 2.0) -> np.ndarray:
    """Least-squares plane si = c0 + c1·lr + c2·ap with residual trimming; returns (c0, c1, c2)."""
    A = np.column_stack([np.ones(len(loc)), loc[:, 0], loc[:, 1]])
    keep = np.ones(len(loc), bool)
    coef = np.zeros(3)
    for _ in range(n_iter + 1):
        if keep.sum() < 3:
            break
        coef, *_ = np.linalg.lstsq(A[keep], loc[keep, 2], rcond=None)
        res = np.abs(A @ coef - loc[:, 2])
        thr = max(clip_mm, 2.5 * np.median(res[keep]))
        keep = res <= thr
    return coef


# ------------------------------------------------------------------------------ construction
def _initial_axes(si_hint: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    si = np.array([0.0, 0.0, 1.0]) if si_hint is None else _unit(si_hint)
    if si[2] < 0:
        si = -si
    ap = np.array([0.0, 1.0, 0.0]) - si[1] * si
    if np.linalg.norm(ap) < 0.2:  # degenerate: spine along y
        ap = np.array([0.0, 0.0, 1.0]) - si[2] * si
    ap = _unit(ap)
    lr = np.cross(ap, si)
    return lr, ap, si


def _raster(sampler: _Sampler, pts_world: np.ndarray, centre: np.ndarray, lr, ap, si,
            res: float = _RASTER_MM):
    """Resample the occupancy onto a local (lr, ap, si) grid covering ``pts_world``.

    Returns (mask [nl, na, ns] bool, axes origin (lr0, ap0, si0) in local mm, res).
    """
    R = np.column_stack([lr, ap, si])
    loc = (pts_world - centre) @ R
    lo = loc.min(axis=0) - 2.0 * res - 1.0
    hi = loc.max(axis=0) + 2.0 * res + 1.0
    n = np.maximum(np.ceil((hi - lo) / res).astype(int) + 1, 2)
    gl = lo[0] + res * np.arange(n[0])
    ga = lo[1] + res * np.arange(n[1])
    gs = lo[2] + res * np.arange(n[2])
    # world = centre + gl*lr + ga*ap + gs*si → voxel = inv @ world
    inv = sampler.inv
    M = inv[:3, :3] @ R                          # local → voxel (linear part)
    off = apply_affine(inv, centre)
    I = (off[:, None, None, None]
         + M[:, 0, None, None, None] * gl[None, :, None, None]
         + M[:, 1, None, None, None] * ga[None, None, :, None]
         + M[:, 2, None, None, None] * gs[None, None, None, :])
    occ = ndimage.map_coordinates(sampler.occ, I.reshape(3, -1).astype(np.float32), order=1,
                                  mode="constant", cval=0.0, prefilter=False,
                                  output=np.float32).reshape(n)
    return occ >= 0.5, lo, res


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, lab, np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def _isolate_body_raster(mask: np.ndarray, lo: np.ndarray, res: float) -> tuple[np.ndarray, dict]:
    """Body part of a whole-vertebra raster: the part anterior to the spinal canal.

    Returns (body mask, info) where info holds 'canal' (bool), 'cut_ap' (local mm), 'canal_centre'.
    """
    info: dict = {"canal": False}
    foot = mask.any(axis=2)
    if not foot.any():
        return mask, info
    filled = ndimage.binary_fill_holes(foot)
    holes = filled & ~foot
    lab, n = ndimage.label(holes)
    lr_axis = lo[0] + res * np.arange(mask.shape[0])
    ap_axis = lo[1] + res * np.arange(mask.shape[1])
    cut_ap = None
    if n:
        sizes = ndimage.sum_labels(holes, lab, np.arange(1, n + 1)) * res * res
        best = int(np.argmax(sizes)) + 1
        if sizes[best - 1] >= 20.0:
            ci, cj = np.nonzero(lab == best)
            c_lr = lr_axis[ci].mean()
            c_ap = ap_axis[cj].mean()
            near = np.abs(lr_axis[ci] - c_lr) <= max(2.0, 1.5 * res)
            # anterior edge of the canal's most anterior pixel
            cut_ap = (float(ap_axis[cj[near]].max()) if near.any() else float(ap_axis[cj].max())) + 0.5 * res
            info.update(canal=True, canal_centre=(float(c_lr), float(c_ap)))
    if cut_ap is None:
        # fallback: first run from anterior along the central band of the footprint
        cols = np.nonzero(foot.any(axis=1))[0]
        c_lr_idx = int(np.round(np.median(np.nonzero(foot)[0])))
        band = foot[max(0, c_lr_idx - 3):c_lr_idx + 4].mean(axis=0) >= 0.5
        idx = np.nonzero(band)[0]
        if idx.size:
            j = idx.max()              # most anterior occupied
            while j - 1 >= 0 and band[j - 1]:
                j -= 1
            cut_ap = float(ap_axis[j]) - res
        del cols
    if cut_ap is None:
        return mask, info
    info["cut_ap"] = cut_ap
    body = mask & (ap_axis[None, :, None] >= cut_ap)
    # keep the largest connected part (drops stray bits of processes anterior to the cut)
    lab3, n3 = ndimage.label(body)
    if n3 > 1:
        sizes = ndimage.sum_labels(body, lab3, np.arange(1, n3 + 1))
        body = lab3 == (int(np.argmax(sizes)) + 1)
    return body, info


def vertebral_body_geometry(labels: Volume, label: int, subregions: Volume | np.ndarray | None = None, *,
                            si_hint: np.ndarray | None = None, _bbox: tuple[slice, ...] | None = None,
                            _subregion_data: np.ndarray | None = None) -> BodyGeometry:
    """Isolate the vertebral body of ``label`` and compute its local frame and dimensions.

    Parameters
    ----------
    labels : Volume
        Vertebra label map with VerSe ids (any orientation and spacing).
    label : int
        VerSe id of the vertebra.
    subregions : Volume or ndarray, optional
        Sub-region map on the same grid (kyphosim ids, or TPTBox ids 41–50 which are mapped). When
        given, the body is sub-region 1 of this vertebra; otherwise it is isolated geometrically as
        the part anterior to the spinal canal.
    si_hint : array of 3, optional
        Approximate superior axis (world), e.g. the spine tangent from neighbouring centroids.

    Raises
    ------
    LabelError
        When the label is absent or its body cannot be isolated.
    """
    label = int(label)
    data = labels.data
    if _bbox is None:
        objs = ndimage.find_objects((data == label).astype(np.uint8))
        _bbox = objs[0] if objs else None
    if _bbox is None:
        raise LabelError(f"vertebra {label} is not in the label map")
    sub = None
    if subregions is not None or _subregion_data is not None:
        sub = _subregion_data if _subregion_data is not None else prepare_subregions(subregions)
        if sub.shape != data.shape:
            raise GridMismatchError(f"sub-region map {sub.shape} is not on the label grid {data.shape}")
    shape = np.asarray(data.shape)
    pad = 2
    lo = np.array([max(0, s.start - pad) for s in _bbox])
    hi = np.array([min(n, s.stop + pad) for s, n in zip(_bbox, shape)])
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    vert = data[sl] == label
    flags: list[str] = []
    touches = [(s.start == 0, s.stop == n) for s, n in zip(_bbox, shape)]
    if any(a or b for a, b in touches):
        flags.append("touches_fov")
    lab_cc, ncc = ndimage.label(vert)
    if ncc > 1:
        sizes = ndimage.sum_labels(vert, lab_cc, np.arange(1, ncc + 1))
        if sizes.max() < 0.95 * sizes.sum():
            flags.append("fragmented_mask")
    source = "geometric"
    body_vox = None
    if sub is not None:
        # the basivertebral foramen/vein lies inside the body's outline: it belongs to the body
        body_vox = vert & np.isin(sub[sl], (SUBREGION_IDS["vertebral_body"], SUBREGION_IDS["basivertebral_foramen"]))
        if body_vox.sum() >= 0.05 * vert.sum():
            source = "subregions"
        else:
            flags.append("subregion_body_missing")
            body_vox = None
    crop_aff = labels.affine.copy()
    crop_aff[:3, 3] = apply_affine(labels.affine, lo)
    occ_src = body_vox if body_vox is not None else vert
    sampler = _Sampler(occ_src, crop_aff)
    ijk = np.argwhere(occ_src)
    if ijk.shape[0] < 20:
        raise LabelError(f"vertebra {vertebra_name(label)}: only {ijk.shape[0]} voxels, too small to measure")
    pts = apply_affine(crop_aff, ijk)
    centre = pts.mean(axis=0)
    lr, ap, si = _initial_axes(si_hint)
    body_r = None
    info: dict = {}
    converged = False
    state = None
    for _ in range(4):
        m, rlo, res = _raster(sampler, pts, centre, lr, ap, si)
        if source == "subregions":
            body_r = _largest_component(m)
        else:
            body_r, info = _isolate_body_raster(m, rlo, res)
        bi = np.argwhere(body_r)
        if bi.shape[0] < 10:
            raise LabelError(f"vertebra {vertebra_name(label)}: no vertebral body could be isolated")
        bloc = rlo + res * bi
        R = np.column_stack([lr, ap, si])
        state = (centre, R, rlo, res, body_r, dict(info), bloc)
        c_loc = bloc.mean(axis=0)
        new_centre = centre + R @ c_loc
        # endplate planes from raster columns in the central body region
        ext_lr = np.percentile(bloc[:, 0], [2, 98])
        ext_ap = np.percentile(bloc[:, 1], [2, 98])
        W, Dr = ext_lr[1] - ext_lr[0], ext_ap[1] - ext_ap[0]
        top = np.full(body_r.shape[:2], -1)
        bot = np.full(body_r.shape[:2], -1)
        anyc = body_r.any(axis=2)
        top[anyc] = body_r.shape[2] - 1 - np.argmax(body_r[:, :, ::-1], axis=2)[anyc]
        bot[anyc] = np.argmax(body_r, axis=2)[anyc]
        gl = rlo[0] + res * np.arange(body_r.shape[0])
        ga = rlo[1] + res * np.arange(body_r.shape[1])
        GL, GA = np.meshgrid(gl, ga, indexing="ij")
        sel = anyc & (np.abs(GL - c_loc[0]) <= 0.3 * W) & (GA >= ext_ap[0] + 0.12 * Dr) & (GA <= ext_ap[1] - 0.12 * Dr)
        if sel.sum() < 6:
            converged = True
            break
        gs0 = rlo[2]
        sup_loc = np.column_stack([GL[sel], GA[sel], gs0 + res * top[sel] + 0.5 * res])
        inf_loc = np.column_stack([GL[sel], GA[sel], gs0 + res * bot[sel] - 0.5 * res])
        cs, ci_ = _robust_plane(sup_loc), _robust_plane(inf_loc)
        n_s = _unit([-cs[1], -cs[2], 1.0])
        n_i = _unit([-ci_[1], -ci_[2], 1.0])
        n_loc = _unit(n_s + n_i)
        si_new = _unit(R @ n_loc)
        # AP from the canal centre towards the body centre (in the axial plane)
        ap_dir = ap
        if info.get("canal"):
            c_lr, c_ap = info["canal_centre"]
            v_loc = np.array([c_loc[0] - c_lr, c_loc[1] - c_ap, 0.0])
            if v_loc[1] > 5.0:
                ap_dir = _unit(R @ v_loc)
        ap_new = _unit(ap_dir - (ap_dir @ si_new) * si_new)
        lr_new = np.cross(ap_new, si_new)
        change = np.degrees(max(np.arccos(np.clip(si_new @ si, -1, 1)), np.arccos(np.clip(ap_new @ ap, -1, 1))))
        lr, ap, si, centre = lr_new, ap_new, si_new, new_centre
        if change < 1.0:
            converged = True
            break
    if not converged:   # one more raster in the final frame
        m, rlo, res = _raster(sampler, pts, centre, lr, ap, si)
        body_r, info = (_largest_component(m), {}) if source == "subregions" else _isolate_body_raster(m, rlo, res)
        bloc = rlo + res * np.argwhere(body_r)
        state = (centre, np.column_stack([lr, ap, si]), rlo, res, body_r, dict(info), bloc)
        centre = centre + state[1] @ bloc.mean(axis=0)
    raster_centre, R_r, rlo, res, body_r, info, bloc = state
    if source != "subregions" and not info.get("canal"):
        flags.append("no_canal_found")
    R = np.column_stack([lr, ap, si])
    # body mask on the crop grid: crop voxels on the anterior side of the canal cut
    if source == "subregions":
        body_crop = occ_src.copy()
    else:
        cut = info.get("cut_ap")
        keep = np.ones(len(pts), bool)
        if cut is not None:
            keep &= (pts - raster_centre) @ R_r[:, 1] >= cut - 0.25 * res
        body_crop = np.zeros(occ_src.shape, bool)
        body_crop[tuple(ijk[keep].T)] = True
    loc_b = (pts[keep] if source != "subregions" else pts) - centre
    half_ext = np.abs(loc_b @ R).max(axis=0) if len(loc_b) else np.full(3, 30.0)
    reach = float(half_ext.max() + 10.0)
    if body_crop.any():
        for ax in range(3):
            prof = body_crop.any(axis=tuple(i for i in range(3) if i != ax))
            if (prof[0] and lo[ax] == 0) or (prof[-1] and hi[ax] == shape[ax]):
                flags.append("cut_by_fov")
                break
    geo_sampler = sampler
    if source != "subregions":
        geo_sampler = _Sampler(body_crop, crop_aff)
    # mid-height and depth by sub-voxel line search
    tp, tm = _boundaries_along(geo_sampler, centre[None], si, reach)
    if np.isfinite(tp[0]) and np.isfinite(tm[0]):
        centre = centre + 0.5 * (tp[0] + tm[0]) * si
        centre_h = float(tp[0] - tm[0])
    else:
        centre_h = float("nan")
    W_r = float(np.ptp(bloc[:, 0])) + res
    # depth on the mid-sagittal plane at mid-height: lines ±1.5 mm in LR (robust to a vein notch) and
    # ±2 mm in SI (dithers the voxel staircase of a tilted wall); trimmed mean of each margin
    LRo, SIo = np.meshgrid(np.array([-1.5, 0.0, 1.5]), np.linspace(-2.0, 2.0, 5), indexing="ij")
    origins = centre[None, :] + LRo.reshape(-1, 1) * lr[None, :] + SIo.reshape(-1, 1) * si[None, :]
    ta, tpo = _boundaries_along(geo_sampler, origins, ap, reach, gap_mm=0.0)
    ap_b = loc_b @ ap if len(loc_b) else np.array([15.0, -15.0])
    ant = _trimmed_mean(ta) if np.isfinite(ta).any() else float(ap_b.max())
    post = _trimmed_mean(tpo) if np.isfinite(tpo).any() else float(ap_b.min())
    # width at mid-height through the centre of the depth
    mid_ap = 0.5 * (ant + post)
    o = centre + mid_ap * ap
    tr, tl = _boundaries_along(geo_sampler, o[None], lr, reach, gap_mm=0.0)
    width = float(tr[0] - tl[0]) if np.isfinite(tr[0]) and np.isfinite(tl[0]) else W_r
    lr_shift = 0.5 * (tr[0] + tl[0]) if np.isfinite(tr[0]) and np.isfinite(tl[0]) else 0.0
    if abs(lr_shift) < 0.25 * width:
        centre = centre + lr_shift * lr
    frame = BodyFrame(centre, lr, ap, si)
    vox_si = voxel_extent_along(labels.affine, si)
    if vox_si > 2.0 + 1e-6:
        flags.append("coarse_slice_spacing")
    return BodyGeometry(
        label=label, name=vertebra_name(label), frame=frame, depth_mm=float(ant - post), width_mm=width,
        anterior_ap_mm=ant, posterior_ap_mm=post, centre_height_mm=centre_h, source=source, flags=flags,
        voxel_si_mm=vox_si, _sampler=geo_sampler, _crop_lo=lo, _body_crop=body_crop,
        _labels_affine=labels.affine, _labels_shape=labels.shape, _reach_mm=reach,
    )
