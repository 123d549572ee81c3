"""Posterior-wall integrity: bulge of the posterior body wall into the spinal canal (retropulsion).

On the mid-sagittal band the posterior wall position is found along AP (sub-voxel, going posterior
from mid-depth) at SI positions from 10 % to 90 % of the body height. The reference is the straight line
joining the wall near the superior and the inferior endplate (mean of the outer three samples at each
end); the bulge is the largest distance the wall lies *posterior* to that line, in mm (0 for the
normal, anteriorly concave wall). Retropulsion matters for safety: cement leaking into the canal and
fragments pushed by the balloon (clinical-reference §6: posterior cortical defect as a relative
contraindication; Perez 2021).
"""

from __future__ import annotations

import numpy as np

from kyphosim.assess.geometry import BodyGeometry

__all__ = ["posterior_wall_bulge_mm"]


def posterior_wall_bulge_mm(geo: BodyGeometry) -> float | None:
    """Largest posterior protrusion (mm) of the wall beyond the line joining its ends; None if unknown."""
    si, ap = geo.posterior_wall_profile()
    ok = np.isfinite(ap)
    if ok.sum() < 7:
        return None
    si, ap = si[ok], ap[ok]
    s0, s1 = si[:3].mean(), si[-3:].mean()
    a0, a1 = ap[:3].mean(), ap[-3:].mean()
    if abs(s1 - s0) < 1e-6:
        return None
    ref = a0 + (si - s0) * (a1 - a0) / (s1 - s0)
    bulge = float(np.max(ref - ap))
    return max(0.0, bulge)
