"""Bone density from the CT: trabecular ROI, opportunistic HU category, internal vBMD calibration.

* Trabecular HU: median HU in the vertebral body eroded by ``erode_mm`` (default 4 mm, as the
  TotalSegmentator spine report; ``docs/peers.md``) from every surface (cortex and endplates) and
  without the posterior 25 % of the depth (basivertebral vein).
* Opportunistic category from the L1 (or nearest non-fractured level) median HU with the Pickhardt et
  al. 2013 thresholds (Ann Intern Med; clinical-reference §2): > 160 HU normal, 110–160 osteopenia,
  ≤ 110 osteoporosis (160 HU: 90 % sensitive, 110 HU: > 90 % specific). Configurable.
* vBMD (mg/cm³ K2HPO4): internal (phantomless) calibration in the spirit of Michalski et al. 2020 /
  Bonelab Ogo: the HU of air, adipose tissue, skeletal muscle and blood measured in the same scan are
  regressed on their nominal HU, giving a per-scan linear correction of scanner gain and offset; the
  corrected HU is converted to K2HPO4-equivalent density with a slope that maps the published
  opportunistic HU thresholds onto the QCT vBMD thresholds (``HU_PER_MG_CM3``). Null with a flag when
  fewer than three reference tissues (air among them) are found (cropped field of view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from kyphosim.assess.geometry import BodyGeometry
from kyphosim.imaging.volume import Volume, apply_affine, voxel_count

__all__ = ["trabecular_hu", "osteoporosis_category", "internal_calibration", "PICKHARDT_THRESHOLDS_HU",
           "QCT_THRESHOLDS_MG_CM3", "vbmd_category", "CalibrationResult"]

#: Pickhardt 2013: ≤ 110 HU osteoporosis (> 90 % specific), ≤ 160 HU osteopenia or worse (90 % sensitive)
PICKHARDT_THRESHOLDS_HU = {"osteoporosis_max": 110.0, "osteopenia_max": 160.0}
#: ACR/consensus QCT: < 80 osteoporosis, 80–120 low bone density, > 120 normal (mg/cm³)
QCT_THRESHOLDS_MG_CM3 = {"osteoporosis_below": 80.0, "normal_above": 120.0}

# Nominal HU of the reference tissues on a well-calibrated scanner at 120 kVp (textbook values:
# air −1000, subcutaneous fat ≈ −100, skeletal muscle ≈ +50, unenhanced blood ≈ +40 HU). The per-scan
# fit measured = intercept + slope × nominal corrects gain and offset of the scanner.
NOMINAL_TISSUE_HU = {"air": -1000.0, "adipose": -100.0, "muscle": 50.0, "blood": 40.0}
#: HU per mg/cm³ K2HPO4 of trabecular bone on a calibrated scanner: the slope that maps the published
#: opportunistic HU thresholds onto the QCT vBMD thresholds of clinical-reference §2
#: (110 HU ↔ 80 mg/cm³: 1.375; 160 HU ↔ 120 mg/cm³: 1.333; mean 1.354), intercept 0 (water-like marrow).
HU_PER_MG_CM3 = 0.5 * (110.0 / 80.0 + 160.0 / 120.0)
_E_KEV = 120.0  # tube voltage the nominal values refer to (kVp), reported in the calibration record


def _ideal_hu(tissue: str) -> float:
    return NOMINAL_TISSUE_HU[tissue]


def _mg_cm3_per_hu() -> float:
    return 1.0 / HU_PER_MG_CM3


def trabecular_hu(ct: Volume, geo: BodyGeometry, *, erode_mm: float = 4.0,
                  exclude_posterior_fraction: float = 0.25) -> tuple[float | None, int, list[str]]:
    """Median HU of the eroded trabecular ROI of one body; returns (HU or None, voxels, flags)."""
    flags: list[str] = []
    body, aff = geo.body_mask_crop()
    lo = np.asarray(geo._crop_lo)
    # tighten the crop to the body's bounding box (+1 voxel)
    nz = np.argwhere(body)
    if nz.size == 0:
        return None, 0, flags + ["trabecular_roi_empty"]
    b0 = np.maximum(nz.min(axis=0) - 1, 0)
    b1 = nz.max(axis=0) + 2
    body = body[b0[0]:b1[0], b0[1]:b1[1], b0[2]:b1[2]]
    lo = lo + b0
    aff = aff.copy()
    aff[:3, 3] = apply_affine(geo._labels_affine, lo)
    sl = tuple(slice(int(a), int(a) + s) for a, s in zip(lo, body.shape))
    vals_all = ct.data[sl]
    sp = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    # distance to the body surface on a grid of ≥ 1.5 mm blocks (fast), brought back by nearest
    f = voxel_count(1.5, sp)
    shp = np.ceil(np.asarray(body.shape) / f).astype(int)
    padb = np.zeros(shp * f, bool)
    padb[:body.shape[0], :body.shape[1], :body.shape[2]] = body
    coarse = padb.reshape(shp[0], f[0], shp[1], f[1], shp[2], f[2]).mean(axis=(1, 3, 5)) >= 0.5
    dc = ndimage.distance_transform_edt(np.pad(coarse, 1), sampling=sp * f)[1:-1, 1:-1, 1:-1]
    dist = np.repeat(np.repeat(np.repeat(dc, f[0], 0), f[1], 1), f[2], 2)[:body.shape[0], :body.shape[1],
                                                                        :body.shape[2]]
    dist = np.where(body, dist, 0.0)
    # distances are multiples of the block size (e.g. exactly 4.0 mm on 1 mm voxels): compare with a
    # 1 µm slack, or header round-off (0.99999998 mm voxels) moves a whole shell of blocks out of the ROI
    e = erode_mm
    roi = dist >= e - 1e-3
    while roi.sum() < 20 and e > 1.0:
        e *= 0.7
        roi = dist >= e - 1e-3
        if "roi_erosion_reduced" not in flags:
            flags.append("roi_erosion_reduced")
    if roi.sum() == 0:
        return None, 0, flags + ["trabecular_roi_empty"]
    idx = np.argwhere(roi)
    loc = geo.frame.to_local(apply_affine(aff, idx))
    keep = loc[:, 1] >= geo.posterior_ap_mm + exclude_posterior_fraction * geo.depth_mm
    if keep.sum() >= 10:
        idx = idx[keep]
    v = vals_all[tuple(idx.T)].astype(float)
    return float(np.median(v)), int(v.size), flags


def osteoporosis_category(hu: float | None, thresholds: dict | None = None) -> str | None:
    if hu is None or not np.isfinite(hu):
        return None
    t = thresholds or PICKHARDT_THRESHOLDS_HU
    if hu <= t["osteoporosis_max"]:
        return "osteoporosis"
    if hu <= t["osteopenia_max"]:
        return "osteopenia"
    return "normal"


def vbmd_category(mg: float | None) -> str | None:
    if mg is None or not np.isfinite(mg):
        return None
    if mg < QCT_THRESHOLDS_MG_CM3["osteoporosis_below"]:
        return "osteoporosis"
    if mg <= QCT_THRESHOLDS_MG_CM3["normal_above"]:
        return "low_bone_density"
    return "normal"


@dataclass
class CalibrationResult:
    tissues_hu: dict[str, float]
    used: list[str]
    slope: float
    intercept_hu: float
    r2: float | None
    mg_cm3_per_hu: float
    flags: list[str]

    def to_mg_cm3(self, hu: float | None) -> float | None:
        if hu is None or not np.isfinite(hu):
            return None
        hu_ideal = (hu - self.intercept_hu) / self.slope
        return float(hu_ideal * self.mg_cm3_per_hu)


def _reference_tissues(ct: Volume, spine_mask: np.ndarray, body_centres_vox: np.ndarray,
                       ap_world: np.ndarray) -> dict[str, float]:
    """Median HU of air, adipose, muscle and blood found in the scan (those that are present)."""
    data = ct.data
    sp = ct.spacing
    # subsample for speed (≈ 3 mm)
    step = voxel_count(3.0, sp)
    sub = data[::step[0], ::step[1], ::step[2]].astype(np.float32)
    out: dict[str, float] = {}
    # smooth local mean/std in a 3×3×3 neighbourhood to keep only homogeneous tissue
    mean = ndimage.uniform_filter(sub, 3)
    sq = ndimage.uniform_filter(sub * sub, 3)
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    homog = std < 40.0
    # body outline: largest component above −500 HU, holes filled slice-wise is costly → 3-D fill
    body = ndimage.binary_fill_holes(sub > -500)
    air = (sub < -950) & ~body & homog
    if air.sum() >= 50:
        out["air"] = float(np.median(sub[air]))
    fat = (mean > -200) & (mean < -50) & (std < 25.0) & body
    fat = ndimage.binary_erosion(fat)
    if fat.sum() >= 50:
        out["adipose"] = float(np.median(sub[fat]))
    soft = (mean > -20) & (mean < 120) & (std < 25.0) & body & ~spine_mask[::step[0], ::step[1], ::step[2]]
    if soft.sum() >= 50:
        # muscle: posterior to the vertebral bodies (paraspinal); blood: anterior (aorta)
        grid = np.argwhere(soft) * step
        world = apply_affine(ct.affine, grid)
        centre = apply_affine(ct.affine, body_centres_vox.mean(axis=0))
        ap_off = (world - centre) @ ap_world
        lat = np.linalg.norm((world - centre) - np.outer(ap_off, ap_world), axis=1)
        vals = sub[soft]
        musc = (ap_off < -30) & (ap_off > -90) & (lat < 80)
        if musc.sum() >= 50:
            out["muscle"] = float(np.median(vals[musc]))
        blood = (ap_off > 20) & (ap_off < 70) & (lat < 45)
        if blood.sum() >= 50:
            out["blood"] = float(np.median(vals[blood]))
    return out


def internal_calibration(ct: Volume, spine_mask: np.ndarray, body_centres_vox: np.ndarray,
                         ap_world: np.ndarray) -> CalibrationResult:
    """Fit measured HU = intercept + slope × ideal HU over the reference tissues found."""
    tissues = _reference_tissues(ct, spine_mask, body_centres_vox, ap_world)
    flags: list[str] = []
    used = [t for t in ("air", "adipose", "muscle", "blood") if t in tissues]
    if "blood" in tissues and tissues["blood"] > 100.0:
        used.remove("blood")
        flags.append("blood_contrast_enhanced_not_used")
    missing = [t for t in ("air", "adipose", "muscle", "blood") if t not in tissues]
    if missing:
        flags.append("calibration_tissue_missing:" + ",".join(missing))
    k = _mg_cm3_per_hu()
    if len(used) < 3 or "air" not in used:
        return CalibrationResult(tissues, used, float("nan"), float("nan"), None, k,
                                 flags + ["vbmd_calibration_unavailable"])
    x = np.array([_ideal_hu(t) for t in used])
    y = np.array([tissues[t] for t in used])
    A = np.column_stack([np.ones_like(x), x])
    (b0, b1), *_ = np.linalg.lstsq(A, y, rcond=None)
    pred = A @ np.array([b0, b1])
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else None
    if not (0.7 < b1 < 1.3):
        flags.append("vbmd_calibration_implausible")
    return CalibrationResult(tissues, used, float(b1), float(b0), r2, k, flags)
