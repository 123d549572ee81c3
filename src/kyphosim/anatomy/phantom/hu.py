"""Tissue Hounsfield values and the vBMD → HU calibration of the phantom's virtual scanner.

Calibration (QCT-like, K2HPO4-equivalent scale): a voxel of trabecular bone whose marrow is
water-equivalent and whose mineral density is ρ (mg/cm³) reads

    HU = HU_MARROW + HU_PER_MG_CM3 · ρ

with HU_MARROW = 0 HU and HU_PER_MG_CM3 = 1.25 HU per mg/cm³. This puts young-adult trabecular
bone (≈ 180 mg/cm³) at ≈ 225 HU and osteoporotic bone (80 mg/cm³) at 100 HU, in line with the
opportunistic-CT norms of clinical-reference §2 (L1 226 ± 44 HU below 30 y, Jang 2019; L1 ≤ 110 HU
> 90 % specific for osteoporosis, Pickhardt 2013). Cortical bone (≈ 1000 mg/cm³) is ≈ 1250 HU.
Reference soft tissues keep fixed values; their K2HPO4-equivalent densities under the same line,
``(HU − HU_MARROW) / HU_PER_MG_CM3``, are listed in :data:`REFERENCE_TISSUES` for phantomless
calibration. A virtual scanner gain/offset (``PhantomSpec.hu_gain/hu_offset``) maps every value
``HU → offset + gain·HU`` afterwards.
"""

from __future__ import annotations

__all__ = ["HU_MARROW", "HU_PER_MG_CM3", "CORTICAL_MG_CM3", "TISSUE_HU", "REFERENCE_TISSUES",
           "hu_from_vbmd", "vbmd_from_hu"]

HU_MARROW = 0.0           # HU of marrow-filled bone at zero mineral (intercept)
HU_PER_MG_CM3 = 1.25      # HU per mg/cm³ K2HPO4-equivalent mineral (slope)
CORTICAL_MG_CM3 = 1000.0  # cortical shell / endplate mineral density, mg/cm³ (→ 1250 HU)
POSTERIOR_TRAB_FACTOR = 2.0  # posterior-element cancellous bone is denser than the body's

TISSUE_HU: dict[str, float] = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -100.0,
    "muscle": 50.0,
    "blood": 40.0,
    "organ": 40.0,        # liver / kidney / bowel wall, unenhanced
    "disc": 80.0,         # annulus and nucleus, average
    "csf": 15.0,          # thecal sac contents in the canal
    "fluid": 15.0,        # fluid-filled fracture cleft
    "gas": -900.0,        # vacuum cleft (Kümmell)
    "facet_joint": 30.0,
    "background": 20.0,   # medium of a phantom without soft tissue
}

#: tissues usable for phantomless calibration: nominal HU at gain 1 / offset 0
REFERENCE_TISSUES = {k: TISSUE_HU[k] for k in ("air", "fat", "muscle", "blood")}


def hu_from_vbmd(vbmd_mg_cm3):
    """Model HU of trabecular bone of mineral density ``vbmd_mg_cm3`` (before scanner gain/offset)."""
    return HU_MARROW + HU_PER_MG_CM3 * vbmd_mg_cm3


def vbmd_from_hu(hu):
    """Inverse of :func:`hu_from_vbmd`, mg/cm³."""
    return (hu - HU_MARROW) / HU_PER_MG_CM3
