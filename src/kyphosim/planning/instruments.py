"""Radiopaque objects for the simulated fluoroscopy, placed in world RAS+ mm.

Analytic objects (cylinders, tubes, capsules, ellipsoids) are intersected exactly with every ray;
voxel objects (:class:`MaskObject`, e.g. the simulated cement or balloon mask) replace the CT's
attenuation where they lie. Linear attenuation coefficients are at the renderer's effective energy
(60 keV) in mm⁻¹; see ``docs/planning.md`` for their derivation.

Cannula outer diameters per gauge (Stubs wire gauge, clinical-reference §Unit helpers):
8 G 4.19 mm, 10 G 3.40 mm, 11 G 3.05 mm, 13 G 2.41 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kyphosim.errors import InputError
from kyphosim.imaging.volume import Volume

__all__ = [
    "MU_WATER_60KEV_PER_MM", "MATERIAL_MU_60KEV_PER_MM", "GAUGE_OD_MM", "cannula_outer_diameter_mm",
    "Cylinder", "Capsule", "Ellipsoid", "MaskObject", "Cannula", "Balloon", "AnalyticObject",
    "cannula_surface_points",
]

#: Linear attenuation of water at 60 keV: μ/ρ = 0.2059 cm²/g (NIST XCOM) × 1 g/cm³ = 0.02059 mm⁻¹.
MU_WATER_60KEV_PER_MM = 0.02059

#: Linear attenuation at 60 keV, mm⁻¹ (μ/ρ from NIST XCOM-type tables × density; [U] background values).
MATERIAL_MU_60KEV_PER_MM: dict[str, float] = {
    "water": MU_WATER_60KEV_PER_MM,
    # stainless steel ≈ iron, μ/ρ 1.205 cm²/g × 8.0 g/cm³
    "steel": 0.964,
    # 60 % iodinated contrast (≈ 180 mg I/mL, iodine μ/ρ ≈ 6.6 cm²/g at 60 keV) in water
    "contrast": 0.136,
    # PMMA with 30 wt % BaSO4 (ρ ≈ 1.52 g/cm³, μ/ρ ≈ 1.73 cm²/g at 60 keV)
    "cement": 0.263,
    # plain PMMA (ρ 1.18 g/cm³, μ/ρ 0.195 cm²/g)
    "pmma": 0.023,
}

#: Outer diameter of a needle/cannula by Stubs gauge, mm (clinical-reference.md, unit helpers).
GAUGE_OD_MM: dict[int, float] = {8: 4.19, 10: 3.40, 11: 3.05, 13: 2.41}

#: Wall thickness of a thin-wall working cannula, mm ([U] typical value).
CANNULA_WALL_MM = 0.30


def cannula_outer_diameter_mm(gauge: int) -> float:
    """Outer diameter (mm) of a cannula of the given gauge (8, 10, 11 or 13 G)."""
    try:
        return GAUGE_OD_MM[int(gauge)]
    except (KeyError, ValueError):
        raise InputError(f"gauge {gauge!r} is not supported (choose one of {sorted(GAUGE_OD_MM)})") from None


def cannula_surface_points(entry_mm, target_mm, outer_diameter_mm: float, *, n_ring: int = 16,
                           step_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Points on the outer surface of a straight cannula, world mm, for clearance checks against masks.

    Rings of ``n_ring`` points every ``step_mm`` from the entry to the target (exclusive). Returns the
    points (N, 3) and, per point, its distance along the axis from the entry (mm).
    """
    e, p = np.asarray(entry_mm, float), np.asarray(target_mm, float)
    length = float(np.linalg.norm(p - e))
    if length == 0.0:
        raise InputError("cannula entry and target coincide")
    d = (p - e) / length
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    a = np.cross(d, helper)
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    s = np.arange(0.0, length, step_mm)
    ang = np.linspace(0.0, 2 * np.pi, n_ring, endpoint=False)
    ring = outer_diameter_mm / 2 * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b)
    return (e + s[:, None, None] * d + ring[None]).reshape(-1, 3), np.repeat(s, n_ring)


def _mu(material_or_mu) -> float:
    if isinstance(material_or_mu, str):
        try:
            return MATERIAL_MU_60KEV_PER_MM[material_or_mu]
        except KeyError:
            raise InputError(f"unknown material {material_or_mu!r} "
                             f"(known: {', '.join(MATERIAL_MU_60KEV_PER_MM)})") from None
    mu = float(material_or_mu)
    if not np.isfinite(mu) or mu < 0:
        raise InputError(f"attenuation {mu} mm⁻¹ must be a non-negative number")
    return mu


class AnalyticObject(Protocol):
    name: str
    mu_per_mm: float
    displaced_mu_per_mm: float

    def chord_mm(self, origins: np.ndarray, dirs: np.ndarray, lengths: np.ndarray) -> np.ndarray: ...


def _cyl_interval(origins, dirs, p0, axis, h, radius):
    """Entry/exit ray parameters (mm) of a capped cylinder; NaN where missed."""
    w = origins - p0
    da = dirs @ axis
    wa = w @ axis
    dperp = dirs - da[:, None] * axis
    wperp = w - wa[:, None] * axis
    A = np.einsum("ij,ij->i", dperp, dperp)
    B = 2.0 * np.einsum("ij,ij->i", wperp, dperp)
    C = np.einsum("ij,ij->i", wperp, wperp) - radius ** 2
    tin = np.full(len(origins), -np.inf)
    tout = np.full(len(origins), np.inf)
    par = A < 1e-14
    disc = B * B - 4 * A * C
    with np.errstate(divide="ignore", invalid="ignore"):
        sq = np.sqrt(np.maximum(disc, 0.0))
        t1 = (-B - sq) / (2 * A)
        t2 = (-B + sq) / (2 * A)
    hit = ~par & (disc > 0)
    tin = np.where(hit, t1, tin)
    tout = np.where(hit, t2, tout)
    miss = (~par & (disc <= 0)) | (par & (C > 0))
    # slab 0 ≤ wa + t·da ≤ h
    with np.errstate(divide="ignore", invalid="ignore"):
        sa = (0.0 - wa) / da
        sb = (h - wa) / da
    slab_par = np.abs(da) < 1e-14
    lo = np.where(slab_par, -np.inf, np.minimum(sa, sb))
    hi = np.where(slab_par, np.inf, np.maximum(sa, sb))
    miss |= slab_par & ((wa < 0) | (wa > h))
    tin = np.maximum(tin, lo)
    tout = np.minimum(tout, hi)
    miss |= tout <= tin
    tin[miss] = np.nan
    tout[miss] = np.nan
    return tin, tout


def _ellipsoid_interval(origins, dirs, center, radii, axes):
    """Entry/exit parameters of an ellipsoid with semi-axes ``radii`` along the rows of ``axes``."""
    m = axes / radii[:, None]             # world → unit-sphere frame (linear part)
    o = (origins - center) @ m.T
    d = dirs @ m.T
    A = np.einsum("ij,ij->i", d, d)
    B = 2.0 * np.einsum("ij,ij->i", o, d)
    C = np.einsum("ij,ij->i", o, o) - 1.0
    disc = B * B - 4 * A * C
    sq = np.sqrt(np.maximum(disc, 0.0))
    t1 = (-B - sq) / (2 * A)
    t2 = (-B + sq) / (2 * A)
    miss = disc <= 0
    t1[miss] = np.nan
    t2[miss] = np.nan
    return t1, t2


def _clip_chord(tin, tout, lengths):
    a = np.clip(tin, 0.0, lengths)
    b = np.clip(tout, 0.0, lengths)
    return np.nan_to_num(np.maximum(b - a, 0.0))


@dataclass(frozen=True)
class Cylinder:
    """A capped cylinder (or a tube when ``inner_radius_mm`` > 0) from ``p0_mm`` to ``p1_mm`` (world mm)."""

    p0_mm: tuple[float, float, float]
    p1_mm: tuple[float, float, float]
    radius_mm: float
    mu_per_mm: float = MATERIAL_MU_60KEV_PER_MM["steel"]
    inner_radius_mm: float = 0.0
    displaced_mu_per_mm: float = MU_WATER_60KEV_PER_MM
    name: str = "cylinder"

    def __post_init__(self) -> None:
        if not (self.radius_mm > 0) or not (0 <= self.inner_radius_mm < self.radius_mm):
            raise InputError(f"{self.name}: radii {self.radius_mm}/{self.inner_radius_mm} mm are invalid")
        if np.linalg.norm(np.subtract(self.p1_mm, self.p0_mm)) < 1e-6:
            raise InputError(f"{self.name}: end points coincide")

    def chord_mm(self, origins, dirs, lengths):
        p0 = np.asarray(self.p0_mm, float)
        ax = np.asarray(self.p1_mm, float) - p0
        h = float(np.linalg.norm(ax))
        ax /= h
        out = _clip_chord(*_cyl_interval(origins, dirs, p0, ax, h, self.radius_mm), lengths)
        if self.inner_radius_mm > 0:
            out = out - _clip_chord(*_cyl_interval(origins, dirs, p0, ax, h, self.inner_radius_mm), lengths)
        return np.maximum(out, 0.0)


@dataclass(frozen=True)
class Capsule:
    """A cylinder with hemispherical ends (a balloon shape), axis ``p0_mm`` → ``p1_mm``, world mm."""

    p0_mm: tuple[float, float, float]
    p1_mm: tuple[float, float, float]
    radius_mm: float
    mu_per_mm: float = MATERIAL_MU_60KEV_PER_MM["contrast"]
    displaced_mu_per_mm: float = MU_WATER_60KEV_PER_MM
    name: str = "capsule"

    def __post_init__(self) -> None:
        if not (self.radius_mm > 0):
            raise InputError(f"{self.name}: radius {self.radius_mm} mm must be positive")

    def chord_mm(self, origins, dirs, lengths):
        p0 = np.asarray(self.p0_mm, float)
        p1 = np.asarray(self.p1_mm, float)
        ivs = []
        h = float(np.linalg.norm(p1 - p0))
        if h > 1e-9:
            ivs.append(_cyl_interval(origins, dirs, p0, (p1 - p0) / h, h, self.radius_mm))
        eye = np.eye(3)
        r = np.full(3, self.radius_mm)
        ivs.append(_ellipsoid_interval(origins, dirs, p0, r, eye))
        ivs.append(_ellipsoid_interval(origins, dirs, p1, r, eye))
        tin = np.fmin.reduce([iv[0] for iv in ivs])    # convex union: one interval
        tout = np.fmax.reduce([iv[1] for iv in ivs])
        return _clip_chord(tin, tout, lengths)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid: centre, semi-axes (mm) along the rows of ``axes`` (orthonormal world vectors)."""

    center_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    axes: tuple = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    mu_per_mm: float = MATERIAL_MU_60KEV_PER_MM["contrast"]
    displaced_mu_per_mm: float = MU_WATER_60KEV_PER_MM
    name: str = "ellipsoid"

    def chord_mm(self, origins, dirs, lengths):
        ax = np.asarray(self.axes, float)
        ax = ax / np.linalg.norm(ax, axis=1, keepdims=True)
        return _clip_chord(*_ellipsoid_interval(origins, dirs, np.asarray(self.center_mm, float),
                                                np.asarray(self.radii_mm, float), ax), lengths)


@dataclass(frozen=True, eq=False)
class MaskObject:
    """A voxel object (boolean mask or fraction map in [0, 1], any grid) of a given material.

    Inside the mask the CT's attenuation is replaced by ``mu_per_mm`` (partial voxels blend
    linearly). Use it for the simulated cement cast or an inflated balloon.
    """

    volume: Volume
    mu_per_mm: float = MATERIAL_MU_60KEV_PER_MM["cement"]
    name: str = "mask"

    def fraction_on(self, grid: Volume) -> np.ndarray:
        """Fraction of each voxel of ``grid`` covered by the object (linear resampling)."""
        f = Volume(np.asarray(self.volume.data, dtype=np.float32) if self.volume.data.dtype != bool
                   else self.volume.data.astype(np.float32), self.volume.affine, meta={"units": "fraction"})
        if not f.same_grid(grid):
            f = f.resample(like=grid, order=1, cval=0.0)
        return np.clip(f.data, 0.0, 1.0).astype(np.float32)


def Cannula(entry_mm, tip_mm, gauge: int = 10, *, stylet: bool = True, outside_mm: float = 60.0,
            name: str = "cannula") -> Cylinder:
    """A steel working cannula (with its trocar/stylet when ``stylet``) from outside the skin to ``tip_mm``.

    The tube runs from ``tip_mm`` back through ``entry_mm`` and ``outside_mm`` further out (the part
    in the soft tissues and outside the patient). Without the stylet it is a hollow tube with a
    0.30 mm wall.
    """
    e = np.asarray(entry_mm, float)
    t = np.asarray(tip_mm, float)
    d = t - e
    n = np.linalg.norm(d)
    if n < 1e-6:
        raise InputError("cannula entry and tip coincide")
    start = e - d / n * float(outside_mm)
    r = cannula_outer_diameter_mm(gauge) / 2.0
    return Cylinder(tuple(start), tuple(t), r, MATERIAL_MU_60KEV_PER_MM["steel"],
                    inner_radius_mm=0.0 if stylet else r - CANNULA_WALL_MM, name=name)


def Balloon(p0_mm, p1_mm, diameter_mm: float, *, material: str | float = "contrast",
            name: str = "balloon") -> Capsule:
    """An inflated kyphoplasty balloon filled with contrast: a capsule of the given diameter (mm)."""
    return Capsule(tuple(np.asarray(p0_mm, float)), tuple(np.asarray(p1_mm, float)), float(diameter_mm) / 2.0,
                   _mu(material), name=name)
