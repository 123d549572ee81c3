"""Transpedicular trajectories: bipedicular (along each pedicle's own axis) and unipedicular
(one oblique trajectory through the isthmus to the midline), with safety margins.

Geometry (local body frame, mm): the trajectory is the straight segment entry → tip of a working
cannula of outer radius r (gauge table in :mod:`kyphosim.planning.instruments`).

* Bipedicular: entry on the posterior cortex, the pedicle axis through the isthmus centre, tip
  where the axis reaches ``TIP_FRACTION`` = 20 % of the body depth D behind the anterior margin
  (inside the anterior third), kept ≥ ``MIN_TIP_TO_ANTERIOR_MM`` from the anterior cortex along the
  line and ≥ ``MIN_TIP_OFF_MIDLINE_MM`` off the mid-sagittal plane (each tip on its own side).
* Unipedicular: tip on the mid-sagittal plane (lr = 0) at 25 % of D behind the anterior margin,
  mid-height; the line passes through the isthmus cross-section at the offset that maximises the
  minimum clearance; more oblique than the pedicle axis.

Margins reported per trajectory:
``clearance_canal_mm`` = min over the whole trajectory of (distance from the axis to the canal
surface − r); ``clearance_cortex_mm`` = min over the pedicle segment (the part of the line whose
local ap lies in the pedicle proper: the anterior 60 % of the canal's antero-posterior span up to the
body's posterior wall, the same segment that defines the pedicle axis) of (distance from the axis to
the outer bone surface − r). A trajectory is accepted when clearance_canal ≥ 1.0 mm and
clearance_cortex ≥ 0.5 mm (``MIN_CLEARANCE_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kyphosim.planning.instruments import cannula_outer_diameter_mm
from kyphosim.planning.pedicle import (SIDES, PedicleAnalysis, VertebraRaster, axis_angles, find_entry,
                                       pedicle_segment_ap)

__all__ = ["TrajectoryGeometry", "bipedicular_trajectory", "unipedicular_trajectory", "evaluate_line",
           "MIN_CLEARANCE_CANAL_MM", "MIN_CLEARANCE_CORTEX_MM", "TIP_FRACTION", "UNI_TIP_FRACTION"]

#: Minimum accepted distance between the cannula surface and the spinal canal, mm.
MIN_CLEARANCE_CANAL_MM = 1.0
#: Minimum accepted distance between the cannula surface and the pedicle's outer cortex, mm.
MIN_CLEARANCE_CORTEX_MM = 0.5
#: Tip position behind the anterior margin, fraction of the body depth (anterior third: < 1/3).
TIP_FRACTION = 0.20
UNI_TIP_FRACTION = 0.25
#: Tip distance to the anterior cortex along the line, minimum, mm.
MIN_TIP_TO_ANTERIOR_MM = 5.0
#: Bipedicular tips stay at least this far off the mid-sagittal plane, mm.
MIN_TIP_OFF_MIDLINE_MM = 3.0
#: Minimum tip distance to either endplate before a warning, mm.
MIN_TIP_TO_ENDPLATE_MM = 3.0


@dataclass
class TrajectoryGeometry:
    """One trajectory and its margins (local frame coordinates; world via the raster's frame)."""

    side: str
    kind: str                       # 'pedicle_axis' or 'unipedicular_oblique'
    gauge: int
    entry_local: np.ndarray
    tip_local: np.ndarray
    isthmus_local: np.ndarray
    clearance_canal_mm: float
    clearance_cortex_mm: float
    tip_to_anterior_cortex_mm: float
    tip_to_superior_endplate_mm: float
    tip_to_inferior_endplate_mm: float
    convergence_deg: float
    sagittal_deg: float
    length_mm: float
    pedicle_min_width_mm: float
    pedicle_height_mm: float
    pedicle_inscribed_diameter_mm: float
    length_in_body_mm: float
    feasible: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _body_exit_along(raster: VertebraRaster, p: np.ndarray, d: np.ndarray, reach: float = 60.0) -> float:
    """Distance (mm) from p along d to where the line leaves the vertebra's bone (NaN if never)."""
    t = np.arange(0.0, reach, 0.25)
    v = raster.sample(raster.occ, p[None, :] + t[:, None] * d[None, :])
    out = np.nonzero(v < 0.5)[0]
    return float(t[out[0]]) if out.size else float("nan")


def evaluate_line(raster: VertebraRaster, entry: np.ndarray, tip: np.ndarray, radius: float):
    """(clearance_canal_mm, clearance_cortex_mm) of a cannula of ``radius`` on entry → tip (local)."""
    L = float(np.linalg.norm(tip - entry))
    n = max(8, int(np.ceil(L / 0.25)))
    t = np.linspace(0.0, 1.0, n)
    pts = entry[None, :] + t[:, None] * (tip - entry)[None, :]
    canal = float(np.min(raster.canal_distance(pts))) - radius
    ap_lo, ap_hi = pedicle_segment_ap(raster)
    # pedicle segment: the pedicle proper (as used for its axis), beyond the first 3 mm after the entry
    seg = (pts[:, 1] >= ap_lo) & (pts[:, 1] <= ap_hi) & (t * L >= 3.0)
    if not seg.any():
        seg = t * L >= 3.0
    cortex = float(np.min(raster.cortex_distance(pts[seg]))) - radius
    return canal, cortex


def _tip_metrics(raster: VertebraRaster, entry: np.ndarray, tip: np.ndarray):
    d = (tip - entry) / np.linalg.norm(tip - entry)
    to_ant = _body_exit_along(raster, tip, d)
    sup, inf = raster.body.profile(np.array([tip[0]]), np.array([tip[1]]))
    return to_ant, float(sup[0] - tip[2]), float(tip[2] - inf[0])


def _length_in_body(raster: VertebraRaster, entry: np.ndarray, tip: np.ndarray) -> float:
    """Length (mm) of the segment anterior to the body's posterior wall (where a balloon can sit)."""
    post = raster.body.posterior_ap_mm
    d = tip - entry
    if tip[1] <= post:
        return 0.0
    t_post = (post - entry[1]) / d[1] if d[1] > 0 else 0.0
    return float(np.linalg.norm(d) * (1.0 - np.clip(t_post, 0.0, 1.0)))


def _finish(raster, side, kind, gauge, entry, tip, ped: PedicleAnalysis) -> TrajectoryGeometry:
    r = cannula_outer_diameter_mm(gauge) / 2.0
    canal, cortex = evaluate_line(raster, entry, tip, r)
    to_ant, to_sup, to_inf = _tip_metrics(raster, entry, tip)
    conv, sag = axis_angles(tip - entry, SIDES[side])
    reasons, warnings = [], []
    if canal < MIN_CLEARANCE_CANAL_MM:
        reasons.append(f"{side}: cannula within {canal:.1f} mm of the spinal canal "
                       f"(needs ≥ {MIN_CLEARANCE_CANAL_MM} mm)")
    if cortex < MIN_CLEARANCE_CORTEX_MM:
        reasons.append(f"{side}: pedicle too narrow for a {gauge} G cannula ({2 * r:.2f} mm): cortex clearance "
                       f"{cortex:.1f} mm (isthmus width {ped.width_mm:.1f} mm)")
    if np.isfinite(to_ant) and to_ant < MIN_TIP_TO_ANTERIOR_MM - 0.5:
        warnings.append(f"{side}: tip {to_ant:.1f} mm from the anterior cortex")
    for name, v in (("superior", to_sup), ("inferior", to_inf)):
        if np.isfinite(v) and v < MIN_TIP_TO_ENDPLATE_MM:
            warnings.append(f"{side}: tip {v:.1f} mm from the {name} endplate")
    return TrajectoryGeometry(
        side=side, kind=kind, gauge=int(gauge), entry_local=entry, tip_local=tip,
        isthmus_local=ped.isthmus_local, clearance_canal_mm=canal, clearance_cortex_mm=cortex,
        tip_to_anterior_cortex_mm=to_ant, tip_to_superior_endplate_mm=to_sup, tip_to_inferior_endplate_mm=to_inf,
        convergence_deg=conv, sagittal_deg=sag, length_mm=float(np.linalg.norm(tip - entry)),
        pedicle_min_width_mm=float(ped.width_mm), pedicle_height_mm=float(ped.height_mm),
        pedicle_inscribed_diameter_mm=float(ped.inscribed_diameter_mm),
        length_in_body_mm=_length_in_body(raster, entry, tip),
        feasible=not reasons, reasons=reasons, warnings=warnings)


def bipedicular_trajectory(raster: VertebraRaster, ped: PedicleAnalysis, gauge: int) -> TrajectoryGeometry:
    """Trajectory along the pedicle's own axis to the anterior third, tip off the midline."""
    body = raster.body
    d = ped.axis_local / np.linalg.norm(ped.axis_local)
    isth, entry = ped.isthmus_local, ped.entry_local
    ap_tip = body.anterior_ap_mm - TIP_FRACTION * body.depth_mm
    t = (ap_tip - isth[1]) / d[1]
    # keep the tip on its own side of the midline
    sgn = SIDES[ped.side]
    if d[0] * -sgn > 1e-9:     # converging towards the midline
        t_mid = (sgn * MIN_TIP_OFF_MIDLINE_MM - isth[0]) / d[0]
        if 0 < t_mid < t:
            t = t_mid
    tip = isth + t * d
    # keep the tip inside the body, ≥ MIN_TIP_TO_ANTERIOR_MM from the cortex along the line
    exit_d = _body_exit_along(raster, tip, d)
    if np.isfinite(exit_d) and exit_d < MIN_TIP_TO_ANTERIOR_MM:
        tip = tip - (MIN_TIP_TO_ANTERIOR_MM - exit_d) * d
    return _finish(raster, ped.side, "pedicle_axis", gauge, entry, tip, ped)


def unipedicular_trajectory(raster: VertebraRaster, ped: PedicleAnalysis, gauge: int) -> TrajectoryGeometry:
    """One oblique trajectory through the isthmus of ``ped`` to a tip near the midline."""
    body = raster.body
    ap_t = body.anterior_ap_mm - UNI_TIP_FRACTION * body.depth_mm
    sup, inf = body.profile(np.array([0.0]), np.array([ap_t]))
    si_t = 0.5 * (sup[0] + inf[0]) if np.isfinite(sup[0]) and np.isfinite(inf[0]) else ped.isthmus_local[2]
    target = np.array([0.0, ap_t, si_t])
    r = cannula_outer_diameter_mm(gauge) / 2.0
    d0 = ped.axis_local
    si = np.array([0.0, 0.0, 1.0])
    e2 = si - (si @ d0) * d0
    e2 /= np.linalg.norm(e2)
    e1 = np.cross(d0, e2)
    best = None
    for u in np.arange(-3.0, 3.01, 1.0):
        for v in np.arange(-3.0, 3.01, 1.0):
            p = ped.isthmus_local + u * e1 + v * e2
            d = (target - p) / np.linalg.norm(target - p)
            entry = find_entry(raster, p, d)
            if entry is None:
                continue
            canal, cortex = evaluate_line(raster, entry, target, r)
            score = min(canal - MIN_CLEARANCE_CANAL_MM, cortex - MIN_CLEARANCE_CORTEX_MM)
            if best is None or score > best[0]:
                best = (score, entry)
    if best is None:
        entry = ped.entry_local
    else:
        entry = best[1]
    d = (target - entry) / np.linalg.norm(target - entry)
    tip = target
    exit_d = _body_exit_along(raster, tip, d)
    if np.isfinite(exit_d) and exit_d < MIN_TIP_TO_ANTERIOR_MM:
        tip = tip - (MIN_TIP_TO_ANTERIOR_MM - exit_d) * d
    return _finish(raster, ped.side, "unipedicular_oblique", gauge, entry, tip, ped)
