"""Digitally reconstructed radiographs (simulated C-arm fluoroscopy) from a CT :class:`Volume`.

Model
-----
* HU → linear attenuation at an effective energy of 60 keV:
  μ = μ_water · max(0, 1 + HU/1000), μ_water = 0.02059 mm⁻¹ (NIST XCOM, 60 keV).
* Beer–Lambert: I/I₀ = exp(−∫ μ ds) along the ray from the focal spot to each detector pixel.
  Default quadrature (``sampling='joseph'``): Joseph's method — one sample on every voxel plane
  of the ray's dominant axis (step = voxel size / cos of the ray's angle to that axis), trilinear
  interpolation evaluated on the plane (bilinear in-plane), end samples weighted by their share
  of the clipped ray; factorised (separable interpolation) when the planes are parallel to the
  detector. ``sampling='trilinear'`` (or an explicit ``step_mm``): trilinear samples at a fixed
  step ≤ the smallest voxel size (midpoint rule).
* Instruments: analytic objects add (μ_object − μ_displaced)·chord exactly; mask objects replace μ
  inside the mask before projection.
* Display: the log image (line integral) windowed and inverted like a fluoroscopy monitor (dense
  structures dark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from kyphosim.errors import InputError
from kyphosim.imaging.volume import Volume
from kyphosim.planning.fluoro.geometry import CArmGeometry, carm_geometry
from kyphosim.planning.fluoro.kernel import (planes_layout, prepare_joseph_volume, prepare_planes_volume,
                                             project_volume, project_volume_joseph, project_volume_planes)
from kyphosim.planning.instruments import MU_WATER_60KEV_PER_MM, MaskObject

__all__ = ["DRR", "render_drr", "hu_to_mu", "EFFECTIVE_ENERGY_KEV", "clear_cache", "SAMPLINGS"]

SAMPLINGS = ("auto", "joseph", "trilinear")

#: Effective photon energy of the simulated C-arm beam, keV (a ~70–80 kVp fluoroscopy spectrum).
EFFECTIVE_ENERGY_KEV = 60.0


def hu_to_mu(hu: np.ndarray, mu_water_per_mm: float = MU_WATER_60KEV_PER_MM) -> np.ndarray:
    """Hounsfield units → linear attenuation (mm⁻¹): μ = μ_water·max(0, 1 + HU/1000), float32."""
    mu = np.asarray(hu, dtype=np.float32) * np.float32(mu_water_per_mm / 1000.0) + np.float32(mu_water_per_mm)
    np.maximum(mu, 0.0, out=mu)
    return mu


class _MuCache:
    """μ volumes (and their kernel layouts) of the last few CTs, so that repeated renders of one CT
    (views, instruments, fluoroscopy sequences) convert HU → μ once. An entry is keyed by the
    identity of the HU array (held by a weak reference, so a freed array never matches a new one)
    plus its shape, affine, μ_water and a strided checksum (catches most in-place edits; call
    :func:`clear_cache` after modifying a CT array in place)."""

    def __init__(self, size: int = 4):
        self.size = size
        self.entries: list[dict] = []

    @staticmethod
    def _fingerprint(data: np.ndarray) -> float:
        """Sum of a strided subsample (about 17³ voxels, a view: no copy of the CT)."""
        sl = tuple(slice(None, None, max(1, n // 17)) for n in data.shape)
        return float(np.sum(data[sl], dtype=np.float64))

    def get(self, volume: Volume, mu_water: float) -> dict:
        data = volume.data
        key = (data.shape, volume.affine.tobytes(), float(mu_water))
        fp = self._fingerprint(data)
        for e in self.entries:
            if e["ref"]() is data and e["key"] == key and e["fp"] == fp:
                return e
        import weakref
        try:
            ref = weakref.ref(data)
        except TypeError:            # not weak-referenceable: do not cache
            return {"mu": hu_to_mu(data, mu_water)}
        e = {"ref": ref, "key": key, "fp": fp, "mu": hu_to_mu(data, mu_water)}
        self.entries.insert(0, e)
        del self.entries[self.size:]
        return e


_CACHE = _MuCache()


def clear_cache() -> None:
    """Forget the cached μ volumes (after editing a CT array in place)."""
    _CACHE.entries.clear()


def _line_integrals(mu: np.ndarray, affine: np.ndarray, geom: CArmGeometry, sampling: str, step: float,
                    entry: dict | None) -> np.ndarray:
    """∫ μ ds per pixel with the chosen quadrature (prepared layouts cached in ``entry``)."""
    if sampling == "trilinear":
        return project_volume(mu, affine, geom, step_mm=step)
    layout = planes_layout(affine, geom)
    if layout is not None and min(mu.shape) >= 2:
        key = ("planes", layout)
        prep = entry.get(key) if entry is not None else None
        if prep is None:
            prep = prepare_planes_volume(mu, layout)
            if entry is not None:
                entry[key] = prep
        out = project_volume_planes(mu, affine, geom, layout, prep)
        if out is not None:
            return out
    if min(mu.shape) < 2:
        return project_volume(mu, affine, geom, step_mm=step)
    prep = entry.get("joseph") if entry is not None else None
    if prep is None:
        prep = prepare_joseph_volume(mu)
        if entry is not None:
            entry["joseph"] = prep
    return project_volume_joseph(mu, affine, geom, padded=prep)


@dataclass(frozen=True, eq=False)
class DRR:
    """A simulated radiograph.

    Attributes
    ----------
    line_integral : ndarray (rows, cols)
        ∫ μ ds through the CT (and mask objects), dimensionless.
    instruments_line_integral : ndarray (rows, cols)
        Extra ∫ (μ − μ_displaced) ds of the analytic instruments.
    geometry : CArmGeometry
    overlays : dict[str, ndarray]
        Path length (mm) through each overlay mask, per pixel (its silhouette where > 0).
    step_mm : float
        Ray sampling step.
    """

    line_integral: np.ndarray
    instruments_line_integral: np.ndarray
    geometry: CArmGeometry
    overlays: dict[str, np.ndarray] = field(default_factory=dict)
    step_mm: float = 1.0
    energy_kev: float = EFFECTIVE_ENERGY_KEV
    schema: str = "kyphosim.drr/1"

    @property
    def total_line_integral(self) -> np.ndarray:
        return self.line_integral + self.instruments_line_integral

    def intensity(self) -> np.ndarray:
        """Transmitted fraction I/I₀ = exp(−∫μ ds)."""
        return np.exp(-self.total_line_integral)

    def window(self) -> tuple[float, float]:
        """Default display window (line-integral units) from the anatomy only (instruments excluded)."""
        p = self.line_integral
        body = p[p > 0.05 * max(float(p.max()), 1e-6)]
        if body.size < 16:
            return 0.0, max(float(p.max()), 1e-3)
        lo, hi = np.percentile(body, [2.0, 99.8])
        return float(lo), float(max(hi, lo + 1e-3))

    def display(self, window: tuple[float, float] | None = None, *, gamma: float = 0.9) -> np.ndarray:
        """Fluoroscopy-like grey image in [0, 1]: log image windowed and inverted (dense = dark)."""
        lo, hi = self.window() if window is None else window
        x = np.clip((self.total_line_integral - lo) / (hi - lo), 0.0, 1.0)
        return (1.0 - x) ** gamma

    def project(self, points_mm) -> np.ndarray:
        """World points (..., 3) → (row, col) pixel coordinates (..., 2)."""
        return self.geometry.project(points_mm)


def _ray_bundle(geom: CArmGeometry):
    pts = geom.pixel_centers_mm().reshape(-1, 3)
    d = pts - geom.source_mm
    lengths = np.linalg.norm(d, axis=1)
    return np.broadcast_to(geom.source_mm, d.shape), d / lengths[:, None], lengths


def render_drr(volume: Volume, view: str | CArmGeometry = "ap", *, isocenter_mm=None,
               instruments: Iterable = (), overlays: Mapping[str, Volume] | None = None,
               step_mm: float | None = None, sampling: str = "auto", values: str = "hu",
               mu_water_per_mm: float = MU_WATER_60KEV_PER_MM, **geometry_kwargs) -> DRR:
    """Render a DRR of ``volume`` with radiopaque instruments.

    Parameters
    ----------
    volume : Volume
        CT in HU (``values='hu'``) or a map of μ in mm⁻¹ (``values='mu'``); any orientation.
    view : str or CArmGeometry
        'ap', 'lateral', 'oblique-left', 'oblique-right' (see :func:`carm_geometry`) or a
        ready geometry.
    isocenter_mm : (3,) array_like, optional
        Centre of rotation, world mm; default the centre of the volume.
    instruments : iterable
        :class:`~kyphosim.planning.instruments.Cylinder`/``Capsule``/``Ellipsoid`` (e.g. from
        ``Cannula(...)``, ``Balloon(...)``) and :class:`~kyphosim.planning.instruments.MaskObject`.
    overlays : dict name → Volume, optional
        Label masks whose projected path length is returned (for outlines such as the pedicles).
    step_mm : float, optional
        Ray sampling step of the trilinear quadrature (must not exceed the smallest voxel size);
        giving it selects ``sampling='trilinear'``.
    sampling : {'auto', 'joseph', 'trilinear'}
        'joseph' (the default of 'auto' without ``step_mm``): one sample per voxel plane along each
        ray (see the module docstring); 'trilinear': fixed step (default the smallest voxel size).
    **geometry_kwargs
        Passed to :func:`carm_geometry` (``rows``, ``pixel_mm``, ``sdd_mm``, ``sid_mm``,
        ``direction``, ``oblique_deg`` …).

    Returns
    -------
    DRR
    """
    if not isinstance(volume, Volume):
        raise InputError("render_drr needs a kyphosim Volume (load it with kyphosim.imaging.load_ct)")
    if values not in ("hu", "mu"):
        raise InputError(f"values must be 'hu' or 'mu', got {values!r}")
    if sampling not in SAMPLINGS:
        raise InputError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if sampling == "auto":
        sampling = "trilinear" if step_mm is not None else "joseph"
    vmin = float(np.min(volume.spacing))
    step = vmin if step_mm is None else float(step_mm)
    if not (0 < step <= vmin * (1 + 1e-6)):
        raise InputError(f"ray step {step} mm must be positive and at most the smallest voxel size {vmin:.3g} mm")
    if isinstance(view, CArmGeometry):
        geom = view
    else:
        if isocenter_mm is None:
            lo, hi = volume.world_bounds()
            isocenter_mm = (lo + hi) / 2.0
        geom = carm_geometry(view, isocenter_mm, **geometry_kwargs)

    entry = _CACHE.get(volume, mu_water_per_mm) if values == "hu" else None
    mu = entry["mu"] if entry is not None else np.asarray(volume.data, np.float32)
    analytic = []
    for obj in instruments:
        if isinstance(obj, MaskObject):
            f = obj.fraction_on(volume)
            if np.any(f > 0):
                mu = mu * (1.0 - f) + np.float32(obj.mu_per_mm) * f
                entry = None            # μ changed: no cached layouts
        elif hasattr(obj, "chord_mm"):
            analytic.append(obj)
        else:
            raise InputError(f"unsupported instrument {type(obj).__name__}: use Cannula/Balloon/"
                             f"Cylinder/Capsule/Ellipsoid/MaskObject")
    p = _line_integrals(mu, volume.affine, geom, sampling, step, entry)
    extra = np.zeros_like(p)
    if analytic:
        o, d, L = _ray_bundle(geom)
        acc = np.zeros(len(L))
        for obj in analytic:
            acc += (obj.mu_per_mm - obj.displaced_mu_per_mm) * obj.chord_mm(o, d, L)
        extra = acc.reshape(p.shape).astype(np.float32)
    ov: dict[str, np.ndarray] = {}
    for name, m in (overlays or {}).items():
        ostep = min(step, float(np.min(m.spacing)))
        ov[name] = project_volume(np.asarray(m.data > 0, np.float32), m.affine, geom, step_mm=ostep)
    return DRR(line_integral=p, instruments_line_integral=extra, geometry=geom, overlays=ov, step_mm=step)
