"""Access: the working cannula along each planned trajectory; bone in its way is removed.

Kyphoplasty: the working cannula (gauge from the plan, 8 G by default) ends a few mm inside the
posterior wall; a drill then opens a channel of the deflated balloon's diameter (3.2 mm) from the
cannula tip to the planned target, where the balloon will sit. Vertebroplasty: the needle
(11 G by default) goes straight to the target and cement leaves at its tip.
Removed bone mass is reported (drilling is not compaction and is excluded from the mass balance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kyphosim.errors import InputError
from kyphosim.simulation.model import Tissue, VertebraModel
from kyphosim.simulation.params import BALLOONS, GAUGE_OD_MM, SimParams

__all__ = ["Access", "make_access", "segment_distance"]


@dataclass
class Access:
    """One working channel, in model index coordinates (isotropic grid) and world mm."""

    side: str
    entry_mm: np.ndarray
    target_mm: np.ndarray
    gauge: int
    od_mm: float
    axis: np.ndarray            # unit vector (index space == scaled local mm)
    wall_ijk: np.ndarray        # where the trajectory crosses the posterior wall
    tip_ijk: np.ndarray         # cannula / needle tip
    target_ijk: np.ndarray
    channel_ijk: tuple[np.ndarray, np.ndarray] | None   # drilled segment (KP) start, end
    removed_mass_mg: float
    cannula_voxels: int

    def as_dict(self) -> dict:
        return {"side": self.side, "entry_mm": self.entry_mm.round(2).tolist(),
                "target_mm": self.target_mm.round(2).tolist(), "gauge": self.gauge, "od_mm": self.od_mm,
                "removed_bone_mass_mg": round(self.removed_mass_mg, 3)}


def segment_distance(shape: tuple[int, int, int], a: np.ndarray, b: np.ndarray, r_max: float,
                     ) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray]:
    """Distance (voxels) of every voxel in the bounding box of segment a→b (± r_max) to the segment.

    Returns the box slices, the distance array and the axial coordinate t (voxels from a).
    """
    lo = np.maximum(np.floor(np.minimum(a, b) - r_max - 1).astype(int), 0)
    hi = np.minimum(np.ceil(np.maximum(a, b) + r_max + 2).astype(int), np.asarray(shape))
    if np.any(hi <= lo):
        box = tuple(slice(0, 0) for _ in range(3))
        return box, np.zeros((0, 0, 0)), np.zeros((0, 0, 0))
    g = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = b - a
    L = float(np.linalg.norm(d))
    u = d / L if L > 0 else np.array([0.0, 1.0, 0.0])
    rel = [g[i] - a[i] for i in range(3)]
    t = rel[0] * u[0] + rel[1] * u[1] + rel[2] * u[2]
    tc = np.clip(t, 0.0, L)
    dist2 = sum((rel[i] - tc * u[i]) ** 2 for i in range(3))
    box = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    return box, np.sqrt(dist2), t


def _first_body_hit(model: VertebraModel, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = int(np.ceil(np.linalg.norm(b - a) * 2)) + 2
    pts = a[None, :] + np.linspace(0, 1, n)[:, None] * (b - a)[None, :]
    ijk = np.round(pts).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.asarray(model.shape)), axis=1)
    hit = np.zeros(n, bool)
    hit[ok] = model.body[ijk[ok, 0], ijk[ok, 1], ijk[ok, 2]]
    if not hit.any():
        raise InputError("the trajectory does not reach the vertebral body of the treated level")
    return pts[int(np.argmax(hit))]


def make_access(model: VertebraModel, trajectories: list[dict], technique: str, *,
                balloon_length_mm: float, params: SimParams) -> list[Access]:
    """Open the working channels (modifies ``model.tissue``/``model.rho`` in place)."""
    h = model.spacing_mm
    out: list[Access] = []
    for tr in trajectories:
        entry = np.asarray(tr["entry_mm"], float)
        target = np.asarray(tr["target_mm"], float)
        default_g = params.kp_gauge if technique == "kyphoplasty" else params.vp_gauge
        gauge = int(tr.get("gauge") or default_g)
        od = float(tr.get("od_mm") or GAUGE_OD_MM.get(gauge, GAUGE_OD_MM[default_g]))
        a = model.world_to_index(entry)
        b = model.world_to_index(target)
        if not np.all((b >= 0) & (b <= np.asarray(model.shape) - 1)):
            raise InputError(f"trajectory target {target.round(1).tolist()} mm lies outside the model of "
                             f"{model.name}")
        axis = (b - a) / np.linalg.norm(b - a)
        # the instrument's tip must lie in trabecular bone with its whole cross-section: clearance
        # from the vertebra's surface ≥ tool radius + cortical shell (deflated balloon for KP, the
        # needle for VP), measured in mm on the label map's own grid (``model.clearance_mm``), so
        # the decision does not depend on the model grid. A target closer to the surface (e.g.
        # above a depressed endplate) is moved back along the trajectory to the deepest point that
        # has the clearance (0.05 mm steps).
        dev = BALLOONS.get(int(round(balloon_length_mm)))
        r_tool = 0.5 * (dev.deflated_diameter_mm if (technique == "kyphoplasty" and dev is not None) else od)
        need_mm = r_tool + params.cortical_shell_mm
        if float(model.clearance_mm(model.index_to_world(b))[0]) < need_mm:
            n = int(np.ceil(np.linalg.norm(b - a) * h / 0.05)) + 1
            pts = b[None, :] - (np.arange(n) * 0.05 / h)[:, None] * axis[None, :]
            clear = model.clearance_mm(model.index_to_world(pts))
            ijk = np.round(pts).astype(int)
            ok = np.all((ijk >= 0) & (ijk < np.asarray(model.shape)), axis=1)
            in_body = np.zeros(n, bool)
            in_body[ok] = model.body[ijk[ok, 0], ijk[ok, 1], ijk[ok, 2]]
            good = (clear >= need_mm) & in_body
            if not good.any():
                good = (clear > 0) & in_body
                if not good.any():
                    raise InputError(f"trajectory target {target.round(1).tolist()} mm is not inside the body of "
                                     f"{model.name}")
                good = good & (clear >= clear[good].max() - 1e-6)
            moved = float(np.argmax(good)) * 0.05
            b = pts[int(np.argmax(good))]
            target = model.index_to_world(b)
            model.notes.append(f"{tr.get('side', '')} target moved back {moved:.1f} mm along the trajectory "
                               f"(clearance from the cortex < {need_mm:.1f} mm)")
        wall = _first_body_hit(model, a, b)
        if technique == "kyphoplasty":
            tip = wall + axis * (params.cannula_tip_inside_wall_mm / h)
            L = balloon_length_mm / h
            start = b - axis * L if (b - tip) @ axis >= L else tip.copy()
            channel = (start, start + axis * L)     # the balloon's segment (drilled channel)
        else:
            tip = b.copy()
            channel = None
        box, dist, _ = segment_distance(model.shape, a, tip, 0.5 * od / h)
        can = dist <= 0.5 * od / h
        removed = float(model.rho[box][can].sum())
        model.rho[box][can] = 0.0
        model.tissue[box][can] = Tissue.CHANNEL
        out.append(Access(side=str(tr.get("side", f"side{len(out)}")), entry_mm=entry, target_mm=target,
                          gauge=gauge, od_mm=od, axis=axis, wall_ijk=wall, tip_ijk=tip, target_ijk=b,
                          channel_ijk=channel, removed_mass_mg=removed * model.voxel_volume_ml,
                          cannula_voxels=int(can.sum())))
    return out
