"""Sagittal angles from endplate planes: local kyphotic angle and the regional Cobb angle.

Angles are measured in the spine's sagittal plane (normal = mean LR axis of the bodies). The angle of
an endplate is the tilt of its plane normal towards anterior, θ = atan2(n·AP, n·SI); an angle between
an upper and a lower endplate is θ_upper − θ_lower, positive = kyphosis (the upper endplate faces
more anteriorly), negative = lordosis. The local kyphotic angle of a level is measured from the
superior endplate of the level above to the inferior endplate of the level below (bisegmental Cobb,
``docs/peers.md``: outcome metrics of kyphoplasty); the regional angle from the superior endplate of the
cranial-most measured level to the inferior endplate of the caudal-most one.
"""

from __future__ import annotations

import numpy as np

from kyphosim.assess.geometry import BodyGeometry

__all__ = ["sagittal_axes", "endplate_angle_deg", "angle_between_deg", "local_kyphosis_deg",
           "regional_kyphosis_deg", "regional_levels"]


def sagittal_axes(geos: list[BodyGeometry]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common (lr, ap, si) of the spine: mean of the bodies' axes, orthonormalised."""
    lr = np.mean([g.frame.lr for g in geos], axis=0)
    si = np.mean([g.frame.si for g in geos], axis=0)
    lr /= np.linalg.norm(lr)
    si = si - (si @ lr) * lr
    si /= np.linalg.norm(si)
    ap = np.cross(si, lr)
    return lr, ap, si


def endplate_angle_deg(normal: np.ndarray, axes) -> float:
    _, ap, si = axes
    return float(np.degrees(np.arctan2(normal @ ap, normal @ si)))


def angle_between_deg(upper_normal: np.ndarray, lower_normal: np.ndarray, axes) -> float:
    """Signed sagittal angle from a lower to an upper endplate (positive = kyphosis)."""
    return endplate_angle_deg(upper_normal, axes) - endplate_angle_deg(lower_normal, axes)


def _normal(g: BodyGeometry, which: str) -> np.ndarray | None:
    if "cut_by_fov" in g.flags:      # an endplate at the edge of the scan may be the scan's edge
        return None
    ep = g.endplate(which, rim_only=True)
    return None if ep is None else ep.normal


def local_kyphosis_deg(above: BodyGeometry | None, below: BodyGeometry | None, axes) -> float | None:
    """Superior endplate of ``above`` to inferior endplate of ``below`` (deg), None if either is missing."""
    if above is None or below is None:
        return None
    nu, nl = _normal(above, "superior"), _normal(below, "inferior")
    if nu is None or nl is None:
        return None
    return angle_between_deg(nu, nl, axes)


def regional_kyphosis_deg(geos: list[BodyGeometry], axes) -> float | None:
    """Cobb angle between the cranial-most superior and caudal-most inferior endplate (deg)."""
    top = [g for g in geos if _normal(g, "superior") is not None]
    bot = [g for g in geos if _normal(g, "inferior") is not None]
    if not top or not bot or geos.index(top[0]) >= geos.index(bot[-1]):
        return None
    return local_kyphosis_deg(top[0], bot[-1], axes)


def regional_levels(geos: list[BodyGeometry]) -> str | None:
    """'T12-L5': the levels whose endplates the regional angle uses."""
    top = [g for g in geos if _normal(g, "superior") is not None]
    bot = [g for g in geos if _normal(g, "inferior") is not None]
    if not top or not bot or geos.index(top[0]) >= geos.index(bot[-1]):
        return None
    return f"{top[0].name}-{bot[-1].name}"
