"""Quantitative morphometry of one vertebral body: Ha, Hm, Hp, ratios, wedge angle, resolution.

Heights follow the shared convention (``kyphosim.assess.geometry``): along the body's SI axis,
at 10 / 50 / 90 % of the depth from the anterior margin, median over the central band |LR| ≤ 20 % of
the width, with sub-voxel surfaces from the partial-volume occupancy of the mask, refined
on the CT when one is attached (``kyphosim.assess.edges``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kyphosim.assess.geometry import BodyGeometry

__all__ = ["Morphometry", "measure_morphometry", "height_uncertainty_mm"]


def height_uncertainty_mm(voxel_si_mm: float) -> float:
    """Resolution of a height measured from a mask: max(0.5 mm, half the voxel extent along SI)."""
    return float(max(0.5, 0.5 * voxel_si_mm))


@dataclass
class Morphometry:
    anterior_mm: float | None
    middle_mm: float | None
    posterior_mm: float | None
    ratio_anterior: float | None
    ratio_middle: float | None
    wedge_angle_deg: float | None
    depth_mm: float
    width_mm: float
    voxel_si_mm: float
    uncertainty_mm: float
    flags: list[str] = field(default_factory=list)
    profile_min_mm: float | None = None
    profile_min_fraction: float | None = None
    profile_fractions: list[float] | None = None
    profile_mm: list[float] | None = None

    @property
    def heights(self) -> tuple[float | None, float | None, float | None]:
        return self.anterior_mm, self.middle_mm, self.posterior_mm


def measure_morphometry(geo: BodyGeometry) -> Morphometry:
    """Heights (mm), ratios and wedge angle (deg) of one body."""
    h = geo.measure_heights()
    a, m, p = h.as_tuple()
    flags: list[str] = []
    if None in (a, m, p):
        flags.append("height_not_measurable")
    ra = a / p if a is not None and p else None
    rm = m / p if m is not None and p else None
    # a spread of the band heights much larger than the resolution hints at a mask defect
    unc = height_uncertainty_mm(geo.voxel_si_mm)
    if any(np.isfinite(s) and s > max(4.0, 4 * unc) for s in h.spread_mm):
        flags.append("irregular_endplates")
    if h.ct_refined_fraction is not None and min(h.ct_refined_fraction, default=1.0) < 0.5:
        # fewer than half the endplate samples of a height were placed on the CT: mask surfaces (±½ voxel)
        flags.append("ct_edges_fallback")
    pmin, fmin = h.profile_min()
    return Morphometry(a, m, p, ra, rm, h.wedge_angle_deg, geo.depth_mm, geo.width_mm, geo.voxel_si_mm,
                       unc, flags, pmin, fmin,
                       None if h.profile_fractions is None else [float(x) for x in h.profile_fractions],
                       None if h.profile_mm is None else [float(x) for x in h.profile_mm])
