"""Vertebral strength by voxel finite elements: uniaxial compression between PMMA end caps.

Pipeline (:func:`compute_strength`): canonical voxel order (array axis k → superior = loading axis)
→ crop to the vertebra (+ caps) → optional isotropic resampling → density (calibrated image in
mg/cm³, or HU through a calibration) → modulus per voxel (named law; PMMA caps and cement) →
one hexahedron per voxel, largest connected solid → 0.2 mm axial displacement on the top face of the
superior cap, bottom face of the inferior cap fixed axially, lateral faces free, rigid-body modes
removed with three point constraints → PCG with a geometric/algebraic multigrid preconditioner →
reaction force, stiffness, failure-load estimate, element strain energy density and von Mises strain.

:func:`compare_augmentation` runs the same model for the intact (reference), fractured (as imaged)
and augmented (cement voxels → PMMA bonded to bone) states.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from kyphosim.errors import GridMismatchError, InputError, LabelError
from kyphosim.imaging.labels import vertebra_id, vertebra_name
from kyphosim.imaging.volume import Volume, voxel_count
from kyphosim.mechanics import solver as fe_solver
from kyphosim.mechanics.calibration import GENERIC, Calibration
from kyphosim.mechanics.element import hex8_centroid_strain_matrix, hex8_stiffness
from kyphosim.mechanics.failure import FailureCriterion, equivalent_strain, failure_load
from kyphosim.mechanics.materials import (MATERIAL_CODES, NEGLIGIBLE_MODULUS_MPA, PMMA_MODULUS_MPA,
                                          PMMA_YIELD_COMPRESSION_MPA, PMMA_YIELD_TENSION_MPA, POISSON_RATIO,
                                          get_law, get_yield_law)
from kyphosim.mechanics.nonlinear import PushoverResult, PushoverSettings, pushover
from kyphosim.mechanics.mesh import VoxelMesh, auto_caps, build_mesh

__all__ = ["SCHEMA", "COMPARISON_SCHEMA", "StrengthResult", "ModelFields", "AugmentationComparison",
           "compute_strength", "compare_augmentation", "prepare_model", "ModelInput", "analyse_model",
           "run_pushover", "element_yield_mpa", "PushoverSettings"]

SCHEMA = "kyphosim.strength/1"
LINEAR_METHOD = "linear-critical-volume"
#: pushover element size used by ``nonlinear_resample_mm='auto'`` for models larger than
#: NONLINEAR_AUTO_MAX_ELEMENTS (grid convergence in docs/mechanics.md), mm
NONLINEAR_AUTO_MM = 2.0
NONLINEAR_AUTO_MAX_ELEMENTS = 20_000
NONLINEAR_METHOD = "nonlinear-pushover"
COMPARISON_SCHEMA = "kyphosim.strength-comparison/1"

Progress = Callable[[str], None]
#: mask-normalised density resampling (``KYPHOSIM_MASKED_RESAMPLING=0``: plain trilinear, the session-1 behaviour)
_MASKED_RESAMPLING = os.environ.get("KYPHOSIM_MASKED_RESAMPLING", "1") == "1"


@dataclass
class ModelFields:
    """Per-element results on the analysis grid (not written to JSON)."""

    grid: Volume                       # analysis grid (canonical RAS voxel order), data = material code
    mesh: VoxelMesh
    displacement_mm: np.ndarray        # (nn, 3)
    strain: np.ndarray                 # (ne, 6) centre strains (xx, yy, zz, γyz, γxz, γxy), array axes
    von_mises_strain: np.ndarray       # (ne,)
    strain_energy_density_mpa: np.ndarray  # (ne,) MPa = mJ/mm³
    yield_load_factor: np.ndarray      # (ne,) load factor to yield (inf for non-bone)
    secant_fraction: np.ndarray | None = None  # (ne,) s = E_secant/E at the end of the pushover (same mesh)

    def element_volume(self, values: np.ndarray, fill: float = 0.0) -> Volume:
        """Scatter element values onto the analysis grid as a Volume (float32)."""
        data = self.mesh.element_grid(values, fill=fill)
        return Volume(data, self.grid.affine, source_axcodes=self.grid.source_axcodes,
                      meta={"units": "various"})


@dataclass
class StrengthResult:
    """Outcome of one compression analysis (schema ``kyphosim.strength/1``)."""

    schema: str
    state: str
    stiffness_n_per_mm: float
    reaction_force_n: float
    applied_displacement_mm: float
    failure_load_n: float
    failure_load_factor: float
    material_law: dict[str, Any]
    materials: dict[str, Any]
    density: dict[str, Any]
    elements: int
    nodes: int
    dofs: int
    voxel_size_mm: list[float]
    model: dict[str, Any]
    loading: dict[str, Any]
    failure_criterion: dict[str, Any]
    solver: dict[str, Any]
    seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    fields: ModelFields | None = None
    #: how ``failure_load_n`` was obtained ("nonlinear-pushover" or "linear-critical-volume")
    failure_load_method: str = LINEAR_METHOD
    #: the linear critical-volume estimate (N), always computed on the linear model's grid
    failure_load_linear_estimate_n: float = float("nan")
    #: pushover report (curve, iterations, grid) when the nonlinear analysis ran
    nonlinear: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "fields"} if self.fields is None else \
            {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "fields"}
        return d


@dataclass
class AugmentationComparison:
    """Intact / fractured / augmented side by side (schema ``kyphosim.strength-comparison/1``)."""

    schema: str
    states: dict[str, StrengthResult]
    changes: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "states": {k: v.to_dict() for k, v in self.states.items()},
                "changes": self.changes, "notes": list(self.notes)}

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for name, r in self.states.items():
            rows.append({"state": name, "stiffness_n_per_mm": r.stiffness_n_per_mm,
                         "failure_load_n": r.failure_load_n, "failure_load_method": r.failure_load_method,
                         "failure_load_linear_estimate_n": r.failure_load_linear_estimate_n,
                         "reaction_force_n": r.reaction_force_n,
                         "elements": r.elements})
        return rows


@dataclass
class ModelInput:
    """Voxel model on the analysis grid: density (mg/cm³), material code and modulus per voxel."""

    grid: Volume                 # canonical voxel order; data = material code (uint8)
    density_mg_cm3: np.ndarray
    material: np.ndarray
    modulus_mpa: np.ndarray
    info: dict[str, Any]
    warnings: list[str]
    yield_compression_mpa: np.ndarray | None = None   # per voxel, MPa (inf: never yields); None: E·ε_y
    yield_tension_mpa: np.ndarray | None = None


# ----------------------------------------------------------------------------------- preparation
def _bone_weighted_resample(values, bone: np.ndarray, affine: np.ndarray, fallback, **grid) -> np.ndarray:
    """Linear resampling of ``values`` in which a new voxel averages bone voxels only: the
    interpolated ``values·bone`` divided by the interpolated ``bone`` weight w; ``fallback`` (an
    array on the new grid or a scalar) where w ≤ 1e-3. ``grid``: ``like=`` or ``spacing=`` as for
    :meth:`Volume.resample`. Returns float32 values on the new grid."""
    num = Volume(np.where(bone, np.asarray(values, np.float32), 0.0).astype(np.float32), affine)
    den = Volume(np.asarray(bone, np.float32), affine)
    w = np.asarray(den.resample(order=1, cval=0.0, **grid).data, np.float32)
    v = np.asarray(num.resample(order=1, cval=0.0, **grid).data, np.float32)
    return np.where(w > 1e-3, v / np.maximum(w, 1e-3), fallback).astype(np.float32)


def _as_label_volume(v: Volume, like: Volume, what: str) -> Volume:
    """``v`` as a label map on ``like``'s grid (nearest-neighbour resampling when the grids differ)."""
    data = np.asarray(v.data)
    if data.dtype == bool or np.issubdtype(data.dtype, np.floating):
        data = (data > 0).astype(np.uint8) if data.dtype == bool else np.rint(data).astype(np.int32)
    lab = Volume(data, v.affine, is_label=True, source_axcodes=v.source_axcodes, meta=dict(v.meta))
    if lab.same_grid(like):
        return lab
    out = lab.resample(like=like)
    return Volume(out.data, out.affine, is_label=True, source_axcodes=like.source_axcodes, meta=out.meta)


def _crop_pad(arr: np.ndarray, lo: np.ndarray, hi: np.ndarray, fill=0) -> np.ndarray:
    """arr[lo:hi] with zero padding where the range leaves the array."""
    shape = tuple(int(h - l) for l, h in zip(lo, hi))
    out = np.full(shape, fill, dtype=arr.dtype)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, arr.shape)
    dst_lo = src_lo - lo
    dst_hi = dst_lo + (src_hi - src_lo)
    out[tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))] = arr[tuple(slice(a, b) for a, b in zip(src_lo, src_hi))]
    return out


def body_axis(bone: np.ndarray, affine: np.ndarray, *, max_tilt_deg: float = 35.0) -> np.ndarray:
    """Unit world vector (RAS) of the vertebral body's superior axis: the mean normal of its two endplates.

    Over the body footprint seen along array axis k (:func:`~kyphosim.mechanics.mesh.body_footprint`,
    eroded by 2 voxels to skip the rim), the most superior and most inferior bone voxel of every column
    are fitted with least-squares planes (in mm); the axis is the normalised mean of the two plane
    normals. Returns the array k direction when the fit is unusable or tilts more than ``max_tilt_deg``.
    """
    from scipy import ndimage

    from kyphosim.imaging.volume import voxel_sizes
    from kyphosim.mechanics.mesh import body_footprint

    kdir = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    sp = voxel_sizes(affine)
    foot = body_footprint(bone, sp)
    # central part only: near the rim a tilted body shows its side wall, not its endplate
    depth = ndimage.distance_transform_edt(np.pad(foot, 1), sampling=sp[:2])[1:-1, 1:-1]
    foot = depth >= 0.35 * depth.max()
    body = bone & foot[:, :, None]
    cols = body.any(axis=2)
    if cols.sum() < 30:
        return kdir
    kk = np.arange(bone.shape[2])[None, None, :]
    top = np.where(body, kk, -1).max(axis=2)[cols] + 0.5
    bot = np.where(body, kk, bone.shape[2]).min(axis=2)[cols] - 0.5
    ij = np.argwhere(cols).astype(float)
    normals = []
    for h in (top, bot):
        pts = np.column_stack([ij[:, 0], ij[:, 1], h]) @ affine[:3, :3].T
        keep = np.ones(pts.shape[0], dtype=bool)
        for _ in range(4):  # plane fit with trimming of outlying columns (osteophytes, side wall, notches)
            c = pts[keep].mean(axis=0)
            _, _, vt = np.linalg.svd(pts[keep] - c, full_matrices=False)
            n = vt[2]
            res = np.abs((pts - c) @ n)
            new = res <= max(1.5 * float(np.median(res[keep])) + 1e-9, 0.75 * float(sp.min()))
            if new.sum() < 20 or np.array_equal(new, keep):
                break
            keep = new
        normals.append(n if n @ kdir > 0 else -n)
    ax = normals[0] + normals[1]
    ax /= np.linalg.norm(ax)
    if np.degrees(np.arccos(np.clip(ax @ kdir, -1, 1))) > max_tilt_deg:
        return kdir
    return ax


def _aligned_grid(bone: np.ndarray, affine: np.ndarray, axis: np.ndarray, spacing_mm: float,
                  margin_mm: tuple[float, float]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid whose third axis is ``axis`` and which covers ``bone`` with margins."""
    z = axis / np.linalg.norm(axis)
    x = np.array([1.0, 0.0, 0.0]) - z[0] * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)
    pts = np.argwhere(bone) @ affine[:3, :3].T + affine[:3, 3]
    local = pts @ R
    lo = local.min(axis=0) - np.array([margin_mm[0], margin_mm[0], margin_mm[1]])
    hi = local.max(axis=0) + np.array([margin_mm[0], margin_mm[0], margin_mm[1]])
    shape = tuple(int(np.ceil((h - l) / spacing_mm)) + 1 for l, h in zip(lo, hi))
    aff = np.eye(4)
    aff[:3, :3] = R * spacing_mm
    aff[:3, 3] = R @ lo
    return aff, shape  # type: ignore[return-value]


def _resolve_bone(lab: np.ndarray, level, bone_labels) -> tuple[np.ndarray, str]:
    present = set(np.unique(lab).tolist()) - {0}
    if bone_labels:
        ids = [int(b) for b in bone_labels]
        missing = [b for b in ids if b not in present]
        if len(missing) == len(ids):
            raise LabelError(f"none of the bone labels {ids} is present in the label map (present: {sorted(present)})")
        return np.isin(lab, ids), f"labels {','.join(map(str, ids))}"
    if level is not None:
        try:
            vid = vertebra_id(level)
        except ValueError as exc:
            raise LabelError(str(exc)) from None
        if vid not in present:
            raise LabelError(f"level {vertebra_name(vid)} (label {vid}) is not in the label map "
                             f"(present: {sorted(present)})")
        return lab == vid, vertebra_name(vid)
    if len(present) == 1:
        vid = present.pop()
        return lab == vid, f"label {vid}"
    raise LabelError(f"the label map holds several labels {sorted(present)}: choose one with level= "
                     f"(e.g. 'L1') or bone_labels= (e.g. 1,2,3,4 for a spineFE mask)")


def prepare_model(image: Volume, labels: Volume, *, level: str | int | None = None,
                  bone_labels: Sequence[int] | None = None, caps: str | Sequence[int] = "auto",
                  density: str = "calibrated", calibration: Calibration | None = None,
                  law: str = "kopperdahl", cement: Volume | None = None,
                  cap_modulus_mpa: float = PMMA_MODULUS_MPA, cement_modulus_mpa: float = PMMA_MODULUS_MPA,
                  cap_thickness_mm: float = 3.0, resample_mm: float | None = None,
                  body: Volume | None = None, align: str = "auto") -> ModelInput:
    """Build the voxel model (density, material, modulus) of one vertebra between PMMA caps.

    Parameters
    ----------
    image : Volume
        Calibrated density (mg/cm³ K2HPO4-equivalent, ``density='calibrated'``) or CT in HU
        (``density='hu'``).
    labels : Volume
        Label map on the image grid (VerSe ids, or spineFE sub-labels with caps).
    level, bone_labels
        Which voxels are bone: one VerSe level (e.g. ``'L1'``) or explicit label ids.
    caps : 'auto' or (inferior, superior) label ids
        End caps from the label map (their order is found from their position), or added on the
        endplates automatically (flat, ``cap_thickness_mm`` beyond the most prominent endplate voxel).
    cement : Volume, optional
        Cement mask (non-zero = cement); resampled with nearest neighbour when on another grid.
    resample_mm : float, optional
        Isotropic element size (mm); default: the image voxels.
    body : Volume, optional
        Vertebral-body mask (e.g. sub-region 1) that defines the auto-cap footprint.
    align : {'auto', 'body', 'scanner'}
        Loading axis. 'body': resample onto a grid whose k axis is the vertebral body's axis (principal
        axis of least spread, see :func:`body_axis`); 'scanner': the canonical S axis (array axis k after
        ``as_canonical``). 'auto' = 'body' with automatic caps, 'scanner' when caps come from labels
        (spineFE data are already aligned, array axis k = loading axis).
    """
    warnings: list[str] = []
    if density not in ("calibrated", "hu"):
        raise InputError(f"density must be 'calibrated' or 'hu', got {density!r}")
    if not labels.same_grid(image):
        raise GridMismatchError(f"labels {labels.shape} are not on the image grid {image.shape}; resample them first")
    img = image.as_canonical()
    lab = Volume(np.asarray(labels.data), labels.affine, is_label=True,
                 source_axcodes=labels.source_axcodes).as_canonical()
    labd = np.asarray(lab.data)
    if np.issubdtype(labd.dtype, np.floating):
        labd = np.rint(labd).astype(np.int32)
    bone, bone_desc = _resolve_bone(labd, level, bone_labels)
    if not bone.any():
        raise LabelError(f"no bone voxels for {bone_desc}")
    cap_inf = cap_sup = None
    if caps != "auto" and caps is not None:
        ids = [int(c) for c in caps]
        if len(ids) != 2:
            raise InputError(f"caps needs two label ids (inferior, superior) or 'auto', got {caps!r}")
        m0, m1 = labd == ids[0], labd == ids[1]
        if not m0.any() or not m1.any():
            raise LabelError(f"cap labels {ids} are not both present in the label map")
        k = np.arange(labd.shape[2])
        z0 = float((m0.sum(axis=(0, 1)) * k).sum() / m0.sum())
        z1 = float((m1.sum(axis=(0, 1)) * k).sum() / m1.sum())
        cap_inf, cap_sup = (m0, m1) if z0 < z1 else (m1, m0)
        bone &= ~(cap_inf | cap_sup)
    cem_vol = bod_vol = None
    if cement is not None:
        cem_vol = _as_label_volume(cement, image, "cement").as_canonical()
        if not np.any(cem_vol.data):
            warnings.append("the cement mask is empty")
            cem_vol = None
    if body is not None:
        bod_vol = _as_label_volume(body, image, "body").as_canonical()
    if align not in ("auto", "body", "scanner"):
        raise InputError(f"align must be auto, body or scanner, got {align!r}")
    if align == "auto":
        align = "scanner" if cap_inf is not None else "body"
    tilt_deg = 0.0
    if align == "body":
        axis = body_axis(bone, img.affine)
        tilt_deg = float(np.degrees(np.arccos(np.clip(axis[2], -1, 1))))
        if tilt_deg > 1.0:
            step = float(resample_mm or min(img.spacing))
            aff, shp = _aligned_grid(bone, img.affine, axis, step, (2.0 * step, cap_thickness_mm + 3.0 * step))
            like = Volume(np.zeros(shp, np.uint8), aff)
            fill0 = 0.0 if density == "calibrated" else -1024.0
            src = Volume(img.data, img.affine, meta=dict(img.meta))
            if _MASKED_RESAMPLING:  # mask-normalised, as for resample_mm below (bone averages bone only)
                plain = src.resample(like=like, order=1, cval=fill0)
                vals = _bone_weighted_resample(img.data, bone, img.affine, np.asarray(plain.data, np.float32),
                                               like=like)
                img = Volume(vals, plain.affine, meta=dict(plain.meta))
            else:
                img = src.resample(like=like, order=1, cval=fill0)
            lab = Volume(labd, lab.affine, is_label=True).resample(like=like)
            labd = np.asarray(lab.data)
            bone, bone_desc = _resolve_bone(labd, level, bone_labels)
            if cem_vol is not None:
                cem_vol = Volume((np.asarray(cem_vol.data) > 0).astype(np.uint8), cem_vol.affine,
                                 is_label=True).resample(like=like)
            if bod_vol is not None:
                bod_vol = Volume((np.asarray(bod_vol.data) > 0).astype(np.uint8), bod_vol.affine,
                                 is_label=True).resample(like=like)
            resample_mm = None  # already on the aligned grid
            warnings_note = f"loading axis = vertebral body axis ({tilt_deg:.1f}° from the scanner S axis)"
            warnings.append(warnings_note)
    cem = np.asarray(cem_vol.data) > 0 if cem_vol is not None else None
    bod = np.asarray(bod_vol.data) > 0 if bod_vol is not None else None

    # crop (with room for automatic caps along k)
    solid = bone.copy()
    if cap_inf is not None:
        solid |= cap_inf | cap_sup
    idx = np.argwhere(solid)
    lo = idx.min(axis=0) - 1
    hi = idx.max(axis=0) + 2
    sp = img.spacing
    if cap_inf is None:
        extra = int(np.ceil(cap_thickness_mm / sp[2])) + 2
        if resample_mm:
            extra = int(np.ceil((cap_thickness_mm + 2 * resample_mm) / sp[2])) + 2
        lo[2] -= extra
        hi[2] += extra
    shift = np.eye(4)
    shift[:3, 3] = lo
    affine = img.affine @ shift
    fill_val = 0.0 if density == "calibrated" else -1024.0
    dens = _crop_pad(np.asarray(img.data, dtype=np.float32), lo, hi, fill=fill_val)
    codes = np.zeros(dens.shape, dtype=np.uint8)
    codes[_crop_pad(bone, lo, hi, False)] = MATERIAL_CODES["bone"]
    if cap_inf is not None:
        codes[_crop_pad(cap_inf, lo, hi, False)] = MATERIAL_CODES["cap_inferior"]
        codes[_crop_pad(cap_sup, lo, hi, False)] = MATERIAL_CODES["cap_superior"]
    cem_c = _crop_pad(cem, lo, hi, False) if cem is not None else None
    bod_c = _crop_pad(bod, lo, hi, False) if bod is not None else None
    if cem is not None and cem_c.sum() < cem.sum():
        warnings.append(f"{int(cem.sum() - cem_c.sum())} cement voxels lie outside the analysed vertebra's box and were ignored")

    grid = Volume(codes, affine, is_label=True, source_axcodes=image.source_axcodes)
    if resample_mm:
        dvol = Volume(dens, affine, source_axcodes=image.source_axcodes, meta={"units": "density"})
        if _MASKED_RESAMPLING:
            # mask-normalised interpolation: a bone voxel of the new grid averages bone voxels only (the
            # background — air, disc, cap labels at 0 mg/cm³ — would otherwise dilute the cortex and endplates)
            # (a bone voxel of the new grid has a bone voxel nearest to it, so w > 0 wherever the value is used)
            dens = _bone_weighted_resample(dens, codes == MATERIAL_CODES["bone"], affine, np.float32(fill_val),
                                           spacing=resample_mm)
        else:
            dens = np.asarray(dvol.resample(spacing=resample_mm, cval=fill_val).data, dtype=np.float32)
        g2 = grid.resample(spacing=resample_mm)
        codes = np.asarray(g2.data, dtype=np.uint8)
        if cem_c is not None:
            cem_c = np.asarray(Volume(cem_c.astype(np.uint8), affine, is_label=True).resample(spacing=resample_mm).data) > 0
        if bod_c is not None:
            bod_c = np.asarray(Volume(bod_c.astype(np.uint8), affine, is_label=True).resample(spacing=resample_mm).data) > 0
        grid = Volume(codes, g2.affine, is_label=True, source_axcodes=image.source_axcodes)
    spacing = grid.spacing

    cap_mode = "labels"
    if not np.any(codes == MATERIAL_CODES["cap_inferior"]):
        thick = voxel_count(cap_thickness_mm, spacing[2])
        inf_m, sup_m, planes = auto_caps(codes == MATERIAL_CODES["bone"], thickness_vox=thick, body=bod_c,
                                           spacing=spacing)
        codes[inf_m] = MATERIAL_CODES["cap_inferior"]
        codes[sup_m] = MATERIAL_CODES["cap_superior"]
        cap_mode = f"auto ({thick} voxels = {thick * spacing[2]:.2g} mm beyond the endplates)"
    if cem_c is not None:
        put = cem_c & (codes != MATERIAL_CODES["cap_inferior"]) & (codes != MATERIAL_CODES["cap_superior"])
        codes[put] = MATERIAL_CODES["cement"]

    # density and modulus
    if density == "hu":
        cal = calibration or GENERIC
        rho = cal.density_mg_cm3(dens)
        dens_info = {"input": "hu", "calibration": cal.summary()}
        if cal.approximate:
            warnings.append("HU converted with the generic (approximate) calibration: " + cal.source)
    else:
        rho = dens.astype(np.float64)
        dens_info = {"input": "calibrated", "units": "mg/cm³ K2HPO4-equivalent"}
    lawobj = get_law(law)
    E = np.zeros(codes.shape, dtype=np.float64)
    b = codes == MATERIAL_CODES["bone"]
    E[b] = lawobj.modulus_mpa(rho[b] / 1000.0)
    E[(codes == MATERIAL_CODES["cap_inferior"]) | (codes == MATERIAL_CODES["cap_superior"])] = cap_modulus_mpa
    E[codes == MATERIAL_CODES["cement"]] = cement_modulus_mpa
    ylaw = get_yield_law(law)
    syc = np.full(codes.shape, np.inf)
    syc[b] = ylaw.compression_mpa(rho[b] / 1000.0, E[b])
    syt = syc * ylaw.tension_ratio
    pm = (codes == MATERIAL_CODES["cap_inferior"]) | (codes == MATERIAL_CODES["cap_superior"]) | \
        (codes == MATERIAL_CODES["cement"])
    syc[pm] = PMMA_YIELD_COMPRESSION_MPA
    syt[pm] = PMMA_YIELD_TENSION_MPA
    grid = Volume(codes, grid.affine, is_label=True, source_axcodes=image.source_axcodes)
    info = {"bone": bone_desc, "yield_law": ylaw, "caps": cap_mode, "density": dens_info, "law": lawobj,
            "loading_axis": align, "axis_tilt_deg": tilt_deg,
            "mean_bone_density_mg_cm3": float(rho[b].mean()) if b.any() else float("nan"),
            "bone_voxels_nonpositive_density": int(np.count_nonzero(rho[b] <= 0))}
    return ModelInput(grid, rho, codes, E, info, warnings, syc, syt)


# ----------------------------------------------------------------------------------- analysis
def _face_nodes(mesh: VoxelMesh, code: int, top: bool) -> np.ndarray:
    """Nodes on the face of a cap seen from outside along k: per (i, j) column, the extreme cap voxel's face."""
    sel = np.nonzero(mesh.material == code)[0]
    if sel.size == 0:
        raise InputError("an end cap is missing from the connected model (caps must touch the bone)")
    e = mesh.elem_ijk[sel].astype(np.int64)
    key = e[:, 0] * (int(mesh.grid_shape[1]) + 1) + e[:, 1]
    order = np.lexsort((e[:, 2] if top else -e[:, 2], key))
    ks = key[order]
    last = np.r_[ks[1:] != ks[:-1], True]
    ext = sel[order[last]]
    local = [4, 5, 6, 7] if top else [0, 1, 2, 3]
    return np.unique(mesh.conn[ext][:, local])


def _rigid_body_constraints(mesh: VoxelMesh, nodes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Three lateral constraints that remove x/y translation and rotation about the loading axis."""
    xyz = mesh.node_ijk[nodes] * mesh.spacing
    c = xyz.mean(axis=0)
    a = nodes[int(np.argmin(np.linalg.norm(xyz - c, axis=1)))]
    pa = mesh.node_ijk[a] * mesh.spacing
    dist = np.linalg.norm(xyz[:, :2] - pa[:2], axis=1)
    b = nodes[int(np.argmax(dist))]
    d = mesh.node_ijk[b] * mesh.spacing - pa
    comp = 1 if abs(d[0]) >= abs(d[1]) else 0
    dofs = np.array([3 * a, 3 * a + 1, 3 * b + comp], dtype=np.int64)
    return dofs, [f"node {int(a)}: u_i = u_j = 0", f"node {int(b)}: u_{'ij'[comp]} = 0"]


def element_yield_mpa(model: ModelInput, mesh: VoxelMesh) -> tuple[np.ndarray, np.ndarray]:
    """Compressive and tensile yield stress (MPa) per mesh element.

    From the model's yield grids when present; otherwise (hand-built models) strain-based: σ_y = E·ε_y with
    the Kopperdahl & Keaveny 1998 yield strains (0.84 % / 0.78 %) for bone and 70 / 50 MPa for PMMA codes.
    Elements of negligible modulus never yield (``inf``).
    """
    i, j, k = mesh.elem_ijk.T
    if model.yield_compression_mpa is not None and model.yield_tension_mpa is not None:
        syc = np.asarray(model.yield_compression_mpa, float)[i, j, k]
        syt = np.asarray(model.yield_tension_mpa, float)[i, j, k]
    else:
        c = FailureCriterion()
        syc = mesh.modulus_mpa * c.yield_strain_compression
        syt = mesh.modulus_mpa * c.yield_strain_tension
        pm = np.isin(mesh.material, [MATERIAL_CODES["cap_inferior"], MATERIAL_CODES["cap_superior"],
                                     MATERIAL_CODES["cement"]])
        syc = np.where(pm, PMMA_YIELD_COMPRESSION_MPA, syc)
        syt = np.where(pm, PMMA_YIELD_TENSION_MPA, syt)
    dead = mesh.modulus_mpa <= 1.5 * NEGLIGIBLE_MODULUS_MPA
    return np.where(dead, np.inf, syc), np.where(dead, np.inf, syt)


def _loading(mesh: VoxelMesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    top = _face_nodes(mesh, MATERIAL_CODES["cap_superior"], True)
    bot = _face_nodes(mesh, MATERIAL_CODES["cap_inferior"], False)
    if np.intersect1d(top, bot).size:
        raise InputError("the loading faces of the two caps share nodes (caps too close)")
    rbm, rbm_desc = _rigid_body_constraints(mesh, bot)
    return top, bot, rbm, rbm_desc


def run_pushover(model: ModelInput, settings: PushoverSettings = PushoverSettings(), *,
                 poisson_ratio: float = POISSON_RATIO, progress: Progress | None = None,
                 threads: int | None = None) -> tuple[PushoverResult, VoxelMesh]:
    """Nonlinear pushover of a prepared model (:mod:`kyphosim.mechanics.nonlinear`); returns the result and
    the mesh it ran on."""
    mesh = build_mesh(model.modulus_mpa, model.material, model.grid.spacing)
    K0 = hex8_stiffness(mesh.spacing, poisson_ratio)
    top, bot, rbm, _ = _loading(mesh)
    syc, syt = element_yield_mpa(model, mesh)
    bone = (mesh.material == MATERIAL_CODES["bone"]) & (mesh.modulus_mpa > 1.5 * NEGLIGIBLE_MODULUS_MPA)
    res = pushover(mesh, K0, top, bot, rbm, syc, syt, nu=poisson_ratio, settings=settings, bone=bone,
                   threads=threads, progress=progress)
    return res, mesh


def analyse_model(model: ModelInput, *, state: str = "as_imaged", displacement_mm: float = 0.2,
                  poisson_ratio: float = POISSON_RATIO, solver: str = "gmg", tol: float = 1e-6,
                  criterion: FailureCriterion = FailureCriterion(), keep_fields: bool = True,
                  progress: Progress | None = None, law_name: str = "kopperdahl",
                  cap_modulus_mpa: float = PMMA_MODULUS_MPA, cement_modulus_mpa: float = PMMA_MODULUS_MPA,
                  t_start: float | None = None, nonlinear: PushoverSettings | None = None,
                  pushover_model: ModelInput | None = None) -> StrengthResult:
    """Mesh, constrain, solve and post-process a prepared :class:`ModelInput` (see :func:`compute_strength`).

    The model needs both cap materials (codes ``cap_inferior`` and ``cap_superior``); the top face of the
    superior cap moves by ``−displacement_mm`` along k, the bottom face of the inferior cap is fixed along k.
    With ``nonlinear`` a displacement-controlled pushover (:mod:`kyphosim.mechanics.nonlinear`) gives
    ``failure_load_n`` (peak reaction); it runs on ``pushover_model`` (e.g. a coarser grid of the same
    vertebra) when given, else on the linear mesh. The linear estimate stays in
    ``failure_load_linear_estimate_n``.
    """
    t_start = time.perf_counter() if t_start is None else t_start
    c_start = time.process_time()
    say = progress or (lambda msg: None)
    say(f"{state}: meshing")
    mesh = build_mesh(model.modulus_mpa, model.material, model.grid.spacing)
    warnings = list(model.warnings)
    dropped = int(np.count_nonzero(model.material)) - mesh.n_elements
    if dropped:
        warnings.append(f"{dropped} voxels not connected to the main solid were left out")
    K0 = hex8_stiffness(mesh.spacing, poisson_ratio)
    top, bot, rbm, rbm_desc = _loading(mesh)
    fixed = np.concatenate([3 * top + 2, 3 * bot + 2, rbm])
    values = np.concatenate([np.full(top.size, -abs(displacement_mm)), np.zeros(bot.size + rbm.size)])
    t_asm = time.perf_counter()
    c_asm = time.process_time()
    say(f"{state}: solving {mesh.n_dofs:,} unknowns ({solver})")
    u, info = fe_solver.solve(mesh, K0, fixed, values, method=solver, tol=tol)
    if not info.converged:
        warnings.append(f"solver stopped at relative residual {info.relative_residual:.2e} > {tol:.0e}")
    say(f"{state}: post-processing")
    f = fe_solver.matvec(mesh, K0, u)
    r_top = float(f[3 * top + 2].sum())
    r_bot = float(f[3 * bot + 2].sum())
    reaction = abs(r_top)
    stiffness = reaction / abs(displacement_mm)
    # element centre strains and strain energy density
    U = u.reshape(-1, 3)[mesh.conn].reshape(mesh.n_elements, 24)
    B0 = hex8_centroid_strain_matrix(mesh.spacing)
    strain = U @ B0.T
    sed = 0.5 * mesh.modulus_mpa * np.einsum("ei,ij,ej->e", U, K0, U) / mesh.voxel_volume_mm3
    eq = equivalent_strain(strain)
    bone = (mesh.material == MATERIAL_CODES["bone"]) & (mesh.modulus_mpa > NEGLIGIBLE_MODULUS_MPA * 1.5)
    vol = np.full(int(bone.sum()), mesh.voxel_volume_mm3)
    F_fail, lam, lam_e = failure_load(reaction, strain[bone], vol, criterion)
    lam_full = np.full(mesh.n_elements, np.inf)
    lam_full[bone] = lam_e
    method, F_lin, nl, sec = LINEAR_METHOD, F_fail, None, None
    if nonlinear is not None:
        say(f"{state}: nonlinear pushover")
        if pushover_model is None:
            syc, syt = element_yield_mpa(model, mesh)
            po = pushover(mesh, K0, top, bot, rbm, syc, syt, nu=poisson_ratio, settings=nonlinear, bone=bone,
                          progress=lambda m: say(f"{state}: {m}"))
            pmesh = mesh
            sec = po.secant_fraction
        else:
            po, pmesh = run_pushover(pushover_model, nonlinear, poisson_ratio=poisson_ratio,
                                     progress=lambda m: say(f"{state}: {m}"))
        nl = {**po.to_dict(), "voxel_size_mm": [float(v) for v in pmesh.spacing], "elements": pmesh.n_elements,
              "dofs": pmesh.n_dofs, "same_grid_as_linear": pushover_model is None,
              "yield_law": _yield_law_desc(model),
              "material": "secant damage: elastic–perfectly plastic under monotonic loading, "
                          "max principal trial stress vs asymmetric yield stresses"}
        if not po.all_converged:
            warnings.append("the pushover did not meet its equilibrium tolerance in every increment "
                            "(see nonlinear.curve)")
        if np.isfinite(po.failure_load_n) and po.failure_load_n > 0:
            F_fail, method = po.failure_load_n, NONLINEAR_METHOD
    t_end = time.perf_counter()
    law = get_law(law_name)
    counts = {name: int(np.count_nonzero(mesh.material == code)) for name, code in MATERIAL_CODES.items()}
    vv = mesh.voxel_volume_mm3
    res = StrengthResult(
        schema=SCHEMA, state=state, stiffness_n_per_mm=stiffness, reaction_force_n=reaction,
        applied_displacement_mm=abs(displacement_mm), failure_load_n=F_fail, failure_load_factor=lam,
        material_law={"name": law.name, "formula": law.formula(), "source": law.source},
        materials={"poisson_ratio": poisson_ratio, "cap_modulus_mpa": cap_modulus_mpa,
                   "cement_modulus_mpa": cement_modulus_mpa, "negligible_modulus_mpa": NEGLIGIBLE_MODULUS_MPA},
        density={**model.info["density"], "mean_bone_density_mg_cm3": model.info["mean_bone_density_mg_cm3"],
                 "bone_voxels_nonpositive_density": model.info["bone_voxels_nonpositive_density"]},
        elements=mesh.n_elements, nodes=mesh.n_nodes, dofs=mesh.n_dofs,
        voxel_size_mm=[float(s) for s in mesh.spacing],
        model={"bone": model.info["bone"], "caps": model.info["caps"],
               "element_counts": counts, "bone_volume_ml": counts["bone"] * vv / 1000.0,
               "cement_volume_ml": counts["cement"] * vv / 1000.0,
               "mesh_memory_mb": mesh.memory_bytes() / 2**20},
        loading={"axis": ("vertebral body axis" if model.info.get("loading_axis") == "body" else
                          "array axis k of the canonical grid (superior)"),
                 "axis_tilt_from_scanner_deg": model.info.get("axis_tilt_deg", 0.0), "top_nodes": int(top.size),
                 "bottom_nodes": int(bot.size), "rigid_body_constraints": rbm_desc,
                 "reaction_top_n": r_top, "reaction_bottom_n": r_bot,
                 "equilibrium_error": abs(r_top + r_bot) / max(reaction, 1e-300)},
        failure_criterion={"name": criterion.name, "yield_strain_compression": criterion.yield_strain_compression,
                           "yield_strain_tension": criterion.yield_strain_tension,
                           "critical_volume_fraction": criterion.critical_volume_fraction},
        solver={"name": info.name, "iterations": info.iterations, "relative_residual": info.relative_residual,
                "tolerance": tol, "converged": info.converged, "levels": info.levels, "threads": info.threads,
                "coarse_dofs": info.coarse_dofs},
        seconds={"assembly": (t_asm - t_start) + info.seconds_setup, "solve": info.seconds_solve,
                 "postprocess": t_end - t_asm - info.seconds_setup - info.seconds_solve,
                 "total": t_end - t_start,
                 "cpu_assembly": (c_asm - c_start) + info.cpu_setup, "cpu_solve": info.cpu_solve,
                 "cpu_total": time.process_time() - c_start},
        warnings=warnings, failure_load_method=method, failure_load_linear_estimate_n=F_lin, nonlinear=nl,
    )
    if keep_fields:
        res.fields = ModelFields(model.grid, mesh, u.reshape(-1, 3), strain, eq, sed, lam_full, sec)
    return res


def _yield_law_desc(model: ModelInput) -> dict[str, Any]:
    yl = model.info.get("yield_law")
    if yl is None or model.yield_compression_mpa is None:
        return {"name": "strain-based", "formula": "σ_y = E·ε_y (0.84 % / 0.78 %)",
                "source": "Kopperdahl & Keaveny 1998 (clinical-reference §5 [U])",
                "pmma_yield_mpa": [PMMA_YIELD_COMPRESSION_MPA, PMMA_YIELD_TENSION_MPA]}
    return {"name": yl.name, "formula": yl.formula(), "source": yl.source,
            "pmma_yield_mpa": [PMMA_YIELD_COMPRESSION_MPA, PMMA_YIELD_TENSION_MPA]}


def compute_strength(image: Volume, labels: Volume, *, level: str | int | None = None,
                     bone_labels: Sequence[int] | None = None, caps: str | Sequence[int] = "auto",
                     density: str = "calibrated", calibration: Calibration | None = None,
                     law: str = "kopperdahl", cement: Volume | None = None,
                     displacement_mm: float = 0.2, poisson_ratio: float = POISSON_RATIO,
                     cap_modulus_mpa: float = PMMA_MODULUS_MPA, cement_modulus_mpa: float = PMMA_MODULUS_MPA,
                     cap_thickness_mm: float = 3.0, resample_mm: float | None = None, body: Volume | None = None,
                     align: str = "auto", solver: str = "gmg", tol: float = 1e-6,
                     criterion: FailureCriterion = FailureCriterion(), state: str = "as_imaged",
                     keep_fields: bool = True, progress: Progress | None = None, nonlinear: bool = True,
                     nonlinear_resample_mm: float | str | None = "auto",
                     pushover_settings: PushoverSettings = PushoverSettings()) -> StrengthResult:
    """Voxel-FE compression analysis of one vertebra (see module docstring).

    Returns a :class:`StrengthResult`: ``stiffness_n_per_mm`` (N/mm), ``reaction_force_n`` (N) at
    ``displacement_mm`` (mm) from the linear analysis; ``failure_load_n`` (N) = peak reaction of the
    nonlinear pushover (``nonlinear=True``; ``failure_load_method``) or the linear critical-volume estimate
    (``nonlinear=False``; always in ``failure_load_linear_estimate_n``); solver and timing report;
    ``fields`` holds per-element strains and strain energy density for maps.

    ``nonlinear_resample_mm``: element size of the pushover model. ``'auto'`` = the linear grid when it
    has at most :data:`NONLINEAR_AUTO_MAX_ELEMENTS` elements, else :data:`NONLINEAR_AUTO_MM`; ``None`` =
    the linear grid; a number = that isotropic size (mm).
    """
    if not (displacement_mm and np.isfinite(displacement_mm)):
        raise InputError("displacement_mm must be a non-zero number of millimetres")
    t0 = time.perf_counter()
    if progress:
        progress(f"{state}: building the voxel model")
    model = prepare_model(image, labels, level=level, bone_labels=bone_labels, caps=caps, density=density,
                          calibration=calibration, law=law, cement=cement, cap_modulus_mpa=cap_modulus_mpa,
                          cement_modulus_mpa=cement_modulus_mpa, cap_thickness_mm=cap_thickness_mm,
                          resample_mm=resample_mm, body=body, align=align)
    pmodel = None
    if nonlinear:
        nl_mm = nonlinear_resample_mm
        if nl_mm == "auto":
            n_el = int(np.count_nonzero(model.material))
            fine = float(min(model.grid.spacing)) < NONLINEAR_AUTO_MM - 1e-6
            nl_mm = NONLINEAR_AUTO_MM if (fine and n_el > NONLINEAR_AUTO_MAX_ELEMENTS) else None
        if nl_mm is not None and not np.allclose(model.grid.spacing, float(nl_mm)):
            if progress:
                progress(f"{state}: building the {float(nl_mm):g} mm pushover model")
            pmodel = prepare_model(image, labels, level=level, bone_labels=bone_labels, caps=caps, density=density,
                                   calibration=calibration, law=law, cement=cement,
                                   cap_modulus_mpa=cap_modulus_mpa, cement_modulus_mpa=cement_modulus_mpa,
                                   cap_thickness_mm=cap_thickness_mm, resample_mm=float(nl_mm), body=body,
                                   align=align)
    return analyse_model(model, state=state, displacement_mm=displacement_mm, poisson_ratio=poisson_ratio, solver=solver,
                tol=tol, criterion=criterion, keep_fields=keep_fields, progress=progress, law_name=law,
                cap_modulus_mpa=cap_modulus_mpa, cement_modulus_mpa=cement_modulus_mpa, t_start=t0,
                nonlinear=pushover_settings if nonlinear else None, pushover_model=pmodel)


def _pct(new: float, ref: float) -> float:
    return 100.0 * (new - ref) / ref if ref and np.isfinite(ref) and np.isfinite(new) else float("nan")


def compare_augmentation(image: Volume, labels: Volume, cement_mask: Volume | None, *,
                         level: str | int | None = None, bone_labels: Sequence[int] | None = None,
                         intact_image: Volume | None = None, intact_labels: Volume | None = None,
                         intact_level: str | int | None = None, intact_bone_labels: Sequence[int] | None = None,
                         progress: Progress | None = None, **kwargs: Any) -> AugmentationComparison:
    """Intact / fractured / augmented stiffness and strength side by side.

    Parameters
    ----------
    image, labels : Volume
        The CT (or calibrated density) and labels of the fractured level, as imaged.
    cement_mask : Volume or None
        Cement voxels (e.g. the set cast from :mod:`kyphosim.simulation`); they become PMMA bonded
        to bone (``cement_modulus_mpa``). ``None`` skips the augmented state.
    intact_* : optional
        The intact reference: another image/labels (a pre-fracture scan) and/or another level of the
        same scan (``intact_level``, e.g. an adjacent unfractured vertebra). Skipped when not given.
    kwargs
        Passed to :func:`compute_strength` (density, calibration, law, caps, resample_mm, ...).

    Returns
    -------
    AugmentationComparison
        ``changes`` holds percent changes of stiffness and failure load: augmented vs fractured,
        and fractured/augmented vs intact when the intact state is present.
    """
    states: dict[str, StrengthResult] = {}
    notes: list[str] = []
    if intact_image is not None or intact_level is not None or intact_bone_labels is not None:
        states["intact"] = compute_strength(intact_image if intact_image is not None else image,
                                            intact_labels if intact_labels is not None else labels,
                                            level=intact_level if intact_level is not None else level,
                                            bone_labels=intact_bone_labels, state="intact", progress=progress,
                                            **kwargs)
        if intact_image is None and intact_level is not None:
            notes.append(f"intact reference = level {intact_level} of the same scan (a different vertebra)")
    states["fractured"] = compute_strength(image, labels, level=level, bone_labels=bone_labels, state="fractured",
                                           progress=progress, **kwargs)
    if cement_mask is not None:
        states["augmented"] = compute_strength(image, labels, level=level, bone_labels=bone_labels,
                                               cement=cement_mask, state="augmented", progress=progress, **kwargs)
    changes: dict[str, dict[str, float]] = {}
    pairs = [("augmented", "fractured"), ("fractured", "intact"), ("augmented", "intact")]
    for new, ref in pairs:
        if new in states and ref in states:
            changes[f"{new}_vs_{ref}"] = {
                "stiffness_percent": _pct(states[new].stiffness_n_per_mm, states[ref].stiffness_n_per_mm),
                "failure_load_percent": _pct(states[new].failure_load_n, states[ref].failure_load_n),
                "failure_load_linear_estimate_percent": _pct(states[new].failure_load_linear_estimate_n,
                                                             states[ref].failure_load_linear_estimate_n)}
    return AugmentationComparison(COMPARISON_SCHEMA, states, changes, notes)
