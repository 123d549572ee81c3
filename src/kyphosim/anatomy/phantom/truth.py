"""truth.json: the known answers of a phantom, measured on the analytic shapes (docs/phantom.md)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from kyphosim.anatomy.phantom.chain import _fit_line, height_loss_pct
from kyphosim.anatomy.phantom.geometry import VertebraShape
from kyphosim.anatomy.phantom.hu import HU_MARROW, HU_PER_MG_CM3, REFERENCE_TISSUES, hu_from_vbmd
from kyphosim.anatomy.phantom.measure import genant_grade, measure_body, ray_extent
from kyphosim.anatomy.phantom.spec import PhantomSpec
from kyphosim.fileio import to_jsonable

__all__ = ["TRUTH_SCHEMA", "level_truth", "spine_truth", "build_truth", "world_tilt_deg"]

TRUTH_SCHEMA = "kyphosim.phantom-truth/1"


def world_tilt_deg(s: VertebraShape, local_tilt_deg: float) -> float:
    """Sagittal tilt in world (deg, SI axis towards anterior +) of a local tilt."""
    si = s.rot[:, 2]
    return math.degrees(math.atan2(si[1], si[2])) + local_tilt_deg


def _pe_sdf(s: VertebraShape):
    def f(p):
        return np.minimum.reduce([s.pedicle_sdf(p, -1)[0], s.pedicle_sdf(p, 1)[0], s.lamina_sdf(p),
                                  s.tp_sdf(p), s.facet_sdf(p), s.body_sdf(p)])
    return f


def _pedicle_truth(s: VertebraShape, side: int, m) -> dict[str, Any]:
    iso, d, _, _ = s.pedicle_frame(side)
    # entry: first bone met coming along the axis from behind
    f, _ = ray_extent(_pe_sdf(s), iso[None], d, -45.0, 0.0, 0.02)
    entry = iso + f[0] * d
    t_target = (-s.D / 2 + 0.7 * s.D - iso[1]) / d[1]
    target = iso + t_target * d
    # angles in the vertebra's measurement frame
    dl, da, ds = float(d @ m.lr), float(d @ m.ap), float(d @ m.si)
    conv = math.degrees(math.atan2(-side * dl, da))
    sag = math.degrees(math.atan2(-ds, math.hypot(dl, da)))
    return {"entry_mm": s.to_world(entry), "target_mm": s.to_world(target),
            "axis": s.rot @ d, "isthmus_mm": s.to_world(iso),
            "min_width_mm": float(s.pw), "min_height_mm": float(s.ph),
            "convergence_deg": conv, "sagittal_deg": sag,
            "entry_to_target_mm": float(np.linalg.norm(target - entry))}


def level_truth(s: VertebraShape, stats: dict, spec: PhantomSpec, draw: dict | None) -> dict[str, Any]:
    """Truth entry of one level (contract fields, world RAS mm)."""
    m = measure_body(s, fine=True)
    if s.fracture is not None:
        intact = copy.copy(s)
        intact.amp = 0.0
        intact.fracture = None
        mi = measure_body(intact, fine=True)
    else:
        mi = m
    intact_hp = mi.hp_mm
    crush = s.fracture is not None and s.fracture.type == "crush"
    ref = intact_hp if crush else m.hp_mm
    loss = height_loss_pct(m.ha_mm, m.hm_mm, m.hp_mm, ref)
    grade = genant_grade(loss)
    vbmd = stats["vbmd_mg_cm3"]
    fr = None
    if s.fracture is not None:
        fr = s.fracture.to_dict()
        if draw:
            fr["drawn_loss_pct"] = draw["target_loss_pct"]
            fr["deformation_mm"] = draw["amp_mm"]
    rot = s.rot
    return {
        "label": s.label,
        "name": s.name,
        "height_anterior_mm": m.ha_mm,
        "height_middle_mm": m.hm_mm,
        "height_posterior_mm": m.hp_mm,
        "expected_height_mm": intact_hp,
        "intact_heights_mm": {"anterior": mi.ha_mm, "middle": mi.hm_mm, "posterior": mi.hp_mm},
        "height_loss_pct": loss,
        "genant_grade": grade,
        "genant_type": s.fracture.type if (s.fracture is not None and grade > 0) else None,
        "wedge_angle_deg": m.wedge_angle_deg,
        "trabecular_hu": spec.hu_offset + spec.hu_gain * float(hu_from_vbmd(vbmd)),
        "vbmd_mg_cm3": vbmd,
        "vbmd_baseline_mg_cm3": stats["vbmd_baseline_mg_cm3"],
        "posterior_wall_bulge_mm": m.bulge_mm,
        "fracture": fr,
        "centroid_mm": s.to_world(m.centroid),
        "si_axis": rot @ m.si,
        "ap_axis": rot @ m.ap,
        "lr_axis": rot @ m.lr,
        "body_depth_mm": m.depth_mm,
        "body_width_mm": m.width_mm,
        "pedicles": {"left": _pedicle_truth(s, -1, m), "right": _pedicle_truth(s, 1, m)},
    }


def spine_truth(shapes: list[VertebraShape]) -> dict[str, Any]:
    """Regional kyphosis (Cobb: top superior endplate vs bottom inferior endplate, kyphotic +) and
    per level the vertebral (own endplates) and local (endplate above … endplate below) angles."""
    sup = [world_tilt_deg(s, _fit_line(s, "sup")[0]) for s in shapes]
    inf = [world_tilt_deg(s, _fit_line(s, "inf")[0]) for s in shapes]
    levels = {}
    n = len(shapes)
    for k, s in enumerate(shapes):
        top = sup[k - 1] if k > 0 else sup[k]
        bot = inf[k + 1] if k + 1 < n else inf[k]
        levels[s.name] = {"vertebral_kyphosis_deg": sup[k] - inf[k], "local_kyphosis_deg": top - bot}
    return {"regional_kyphosis_deg": sup[0] - inf[-1],
            "levels_kyphosis": levels,
            "top_level": shapes[0].name, "bottom_level": shapes[-1].name}


def build_truth(spec: PhantomSpec, shapes: list[VertebraShape], stats: dict, draws: dict,
                grid_info: dict) -> dict[str, Any]:
    """The truth dict (plain JSON types: lists, floats, None)."""
    return to_jsonable({
        "schema": TRUTH_SCHEMA,
        "spec": spec.to_dict(),
        "levels": [level_truth(s, stats[s.name], spec, draws.get(s.name)) for s in shapes],
        "spine": spine_truth(shapes),
        "hu_calibration": {
            "model": "HU = offset + gain * (intercept + slope * vBMD)",
            "intercept_hu": HU_MARROW, "slope_hu_per_mg_cm3": HU_PER_MG_CM3,
            "gain": spec.hu_gain, "offset_hu": spec.hu_offset,
            "reference_tissues_hu": {k: spec.hu_offset + spec.hu_gain * v for k, v in REFERENCE_TISSUES.items()},
        },
        "grid": grid_info,
    })
