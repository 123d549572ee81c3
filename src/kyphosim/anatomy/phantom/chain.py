"""Build the vertebrae of a spec: dimensions, fracture deformations, the sagittal chain, facet joints."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kyphosim.anatomy.phantom.geometry import Joint, VertebraShape, _rot_x
from kyphosim.anatomy.phantom.measure import measure_body
from kyphosim.anatomy.phantom.morphometry import level_dims
from kyphosim.anatomy.phantom.spec import GENANT_BANDS_PCT, PhantomSpec
from kyphosim.errors import InputError
from kyphosim.imaging.labels import vertebra_id

__all__ = ["build_shapes", "rng_for", "height_loss_pct"]

_PURPOSE = {"loss": 1, "density": 2, "field": 3, "soft": 4, "noise": 5, "size": 6}
_LINEAR = ("hp", "depth", "width", "ped_w", "ped_h", "canal_w", "canal_d", "disc_h", "sp_len", "sp_h", "tp_len")


def size_factor(spec: PhantomSpec) -> float:
    """Seeded whole-spine size factor ~ N(1, size_sd), clipped to ±3 SD (1 when size_sd = 0)."""
    if spec.size_sd <= 0:
        return 1.0
    z = float(np.clip(rng_for(spec.seed, 0, "size").standard_normal(), -3, 3))
    return 1.0 + spec.size_sd * z


def _scaled(d, f: float):
    return d if f == 1.0 else dataclasses.replace(d, **{k: getattr(d, k) * f for k in _LINEAR})


def rng_for(seed: int, label: int, purpose: str) -> np.random.Generator:
    """Independent random stream per (seed, level, purpose): adding a level never changes another's draws."""
    return np.random.default_rng([int(seed), int(label), _PURPOSE[purpose]])


def height_loss_pct(ha: float, hm: float, hp: float, expected: float) -> float:
    """Genant height loss, % = 100·(1 − min(Ha, Hm, Hp)/expected)."""
    return 100.0 * (1.0 - min(ha, hm, hp) / expected)


def _solve_amplitude(shape: VertebraShape, target_pct: float, intact_hp: float) -> float:
    """Deformation amplitude (mm) whose measured height loss equals ``target_pct``."""
    crush = shape.fracture.type == "crush"

    def loss(amp: float) -> float:
        shape.amp = amp
        m = measure_body(shape, fine=False)
        exp = intact_hp if crush else m.hp_mm
        v = height_loss_pct(m.ha_mm, m.hm_mm, m.hp_mm, exp) - target_pct
        return v if np.isfinite(v) else np.inf     # a body cut through counts as too much

    lo, hi = 0.0, 0.15 * shape.hp
    f_lo, f_hi = loss(lo), loss(hi)
    while f_hi < 0:
        lo, f_lo, hi = hi, f_hi, hi * 1.5
        if hi > 0.9 * shape.hp:
            raise InputError(f"fracture {shape.name}: cannot draw a {target_pct:.1f} % {shape.fracture.type} "
                             f"deformity with this geometry (lower the grade or the retropulsion)")
        f_hi = loss(hi)
    for _ in range(60):                 # Illinois regula falsi; bisection while f(hi) is inf
        if np.isfinite(f_hi):
            mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        else:
            mid = 0.5 * (lo + hi)
        f_mid = loss(mid)
        if abs(f_mid) < 0.01 or hi - lo < 0.002:
            lo = hi = mid
            break
        if f_mid < 0:
            lo, f_lo = mid, f_mid
            f_hi = f_hi / 2 if np.isfinite(f_hi) else f_hi
        else:
            hi, f_hi = mid, f_mid
            f_lo = f_lo / 2
    shape.amp = 0.5 * (lo + hi)
    return shape.amp


def _fit_line(shape: VertebraShape, which: str) -> tuple[float, float]:
    """(tilt_deg, z at y = 0) of the least-squares line through a mid-sagittal endplate profile."""
    yy = np.linspace(-0.4 * shape.D, 0.4 * shape.D, 41)
    zz = shape.z_sup(0.0, yy) if which == "sup" else shape.z_inf(0.0, yy)
    slope, icpt = np.polyfit(yy, zz, 1)
    return math.degrees(math.atan(-slope)), float(icpt)


def build_shapes(spec: PhantomSpec) -> tuple[list[VertebraShape], dict]:
    """Vertebrae of ``spec`` (cranial → caudal) placed in world RAS mm, and fracture draws.

    Returns the shapes and, per fractured level, ``{"target_loss_pct", "amp_mm", "intact_hp_mm"}``.
    """
    names = list(spec.levels)
    f = size_factor(spec)
    dims = [_scaled(level_dims(n), f) for n in names]
    shapes: list[VertebraShape] = []
    for i, (n, d) in enumerate(zip(names, dims)):
        above = dims[i - 1].disc_h if i > 0 else f * level_dims_above(n).disc_h
        shapes.append(VertebraShape(n, vertebra_id(n), d, disc_above=above, disc_below=d.disc_h,
                                    fracture=spec.fracture_at(n)))
    draws: dict = {}
    for s in shapes:
        if s.fracture is None:
            continue
        intact = measure_body(s, fine=False).hp_mm
        lo, hi = GENANT_BANDS_PCT[s.fracture.grade]
        target = float(rng_for(spec.seed, s.label, "loss").uniform(lo, hi))
        amp = _solve_amplitude(s, target, intact)
        if s.fracture.retropulsion_mm > 0:
            # scale the wall displacement so the bulge measured by the convention is the one asked
            # for, then re-solve the height loss with the final wall
            for _ in range(2):
                b = measure_body(s, fine=False).bulge_mm
                if b > 0.05:
                    s.retro_scale *= s.fracture.retropulsion_mm / b
                amp = _solve_amplitude(s, target, intact)
        draws[s.name] = {"target_loss_pct": target, "amp_mm": amp}
    _place_chain(shapes)
    _make_joints(shapes)
    return shapes, draws


def level_dims_above(name: str):
    """Dimensions of the level above ``name`` (itself for T1)."""
    order = [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    i = order.index(name)
    return level_dims(order[max(0, i - 1)])


def _place_chain(shapes: list[VertebraShape]) -> None:
    """Stack the bodies caudal → cranial through their discs; make the chord vertical."""
    n = len(shapes)
    phi = [0.0] * n
    origin = [np.zeros(3) for _ in range(n)]
    for k in range(n - 2, -1, -1):          # shapes[k] is above shapes[k + 1]
        lo, up = shapes[k + 1], shapes[k]
        t_sup, c_sup = _fit_line(lo, "sup")
        t_inf, c_inf = _fit_line(up, "inf")
        rot_lo = _rot_x(phi[k + 1]).T
        anchor = origin[k + 1] + rot_lo @ np.array([0.0, 0.0, c_sup])
        omega = up.dims.disc_wedge_deg
        tilt_sup_w = phi[k + 1] + t_sup
        tm = math.radians(tilt_sup_w + omega / 2)
        b = anchor + up.dims.disc_h * np.array([0.0, math.sin(tm), math.cos(tm)])
        phi[k] = tilt_sup_w + omega - t_inf
        origin[k] = b - _rot_x(phi[k]).T @ np.array([0.0, 0.0, c_inf])
    for s, p, o in zip(shapes, phi, origin):
        s.rot = _rot_x(p).T
        s.origin = o
    # make the chord from the lowest to the highest body vertical, centre at the origin
    cents = np.array([s.to_world(np.zeros(3)) for s in shapes])
    if n > 1:
        v = cents[0] - cents[-1]
        psi = math.degrees(math.atan2(v[1], v[2]))
        q = _rot_x(-psi).T
    else:
        q = np.eye(3)
    centre = (q @ cents.mean(axis=0))
    for s in shapes:
        s.rot = q @ s.rot
        s.origin = q @ s.origin - centre


def _joint(lo: VertebraShape, up_dims, offset_z: float, up_zped: float, up_ph: float,
           disc_h: float, up_hp: float) -> Joint:
    x_f = 0.5 * ((lo.cw / 2 + 0.55 * lo.pw + 3.0) + (up_dims.canal_w / 2 + 0.55 * up_dims.ped_w + 3.0))
    y_f = -lo.D / 2 - lo.Lp - 2.0
    beta = 0.5 * (lo.dims.facet_deg + up_dims.facet_deg)
    z_sap = (lo.z_ped - 2.0, lo.hp / 2 + disc_h + 0.3 * up_hp)
    z_iap = (lo.z_ped + lo.ph / 2 - 2.0, offset_z + up_zped - up_ph / 2 + 2.0)
    return Joint(x_f=x_f, y_f=y_f, beta_deg=beta, z_sap=z_sap, z_iap=z_iap)


def _make_joints(shapes: list[VertebraShape]) -> None:
    """Facet joints of every pair (and virtual partners at the ends) and the partner links used to
    keep each articular process ``FACET_CLEARANCE_MM`` off the other vertebra's bone."""
    n = len(shapes)
    for k in range(n):
        s = shapes[k]
        # upper joint (own frame): partner = the vertebra above, or a virtual copy of itself
        if k > 0:
            up = shapes[k - 1]
            R = s.rot.T @ up.rot
            t = s.rot.T @ (up.origin - s.origin)
            off = float(t[2])
            s.joint_up = _joint(s, up.dims, off, up.z_ped, up.ph, up.dims.disc_h, up.hp)
            up.joint_down = s.joint_up
            up.down_tf = (R, t)
            up.nb_down = s
            s.nb_up = up
            s.up_tf = (R.T, -(R.T @ t))             # own local → upper local
        else:
            off = s.hp + s.disc_above
            s.joint_up = _joint(s, s.dims, off, s.z_ped, s.ph, s.disc_above, s.hp)
            s.nb_up = s
            s.up_tf = (np.eye(3), np.array([0.0, 0.0, -off]))
        if k == n - 1:
            # lowest vertebra: its inferior processes meet a virtual copy of itself below
            off = s.hp + s.disc_below
            s.joint_down = _joint(s, s.dims, off, s.z_ped, s.ph, s.disc_below, s.hp)
            s.down_tf = (np.eye(3), np.array([0.0, 0.0, off]))
            s.nb_down = s
