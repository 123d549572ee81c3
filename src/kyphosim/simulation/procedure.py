"""The whole procedure, step by step: access → balloon inflation (endplate lift) → deflation →
cement injection (leaks) → set cast. Vertebroplasty is the same model without the balloon.

``simulate(ct, labels, level, ...)`` returns a :class:`SimulationResult` (schema
``kyphosim.simulation/1``) whose ``cavity``/``cement`` masks are Volumes on the CT grid.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kyphosim.errors import InputError
from kyphosim.imaging.labels import vertebra_id, vertebra_name
from kyphosim.imaging.volume import Volume
from kyphosim.simulation.access import make_access
from kyphosim.simulation.balloon import inflate
from kyphosim.simulation.cement import inject
from kyphosim.simulation.leaks import summarise_leaks
from kyphosim.simulation.lift import gap_fills, make_lift, shift_columns
from kyphosim.simulation.geometry import HeightGauge
from kyphosim.simulation.model import Tissue, VertebraModel, build_model, to_input_grid
from kyphosim.simulation.params import BALLOONS, CEMENTS, DEFAULT_PARAMS, PSI_TO_KPA, SimParams
from kyphosim.simulation.setcast import cast_metrics

__all__ = ["simulate", "SimulationResult", "Heights", "Step", "BalloonResult", "CementResult", "Leak",
           "trajectories_from_plan", "default_trajectories"]

SCHEMA = "kyphosim.simulation/1"


class Heights(BaseModel):
    anterior_mm: float
    middle_mm: float
    posterior_mm: float
    wedge_angle_deg: Optional[float] = None


class Step(BaseModel):
    name: str
    time_s: float
    pressure_kpa: Optional[float] = None
    volume_ml: Optional[float] = None
    heights: Heights
    note: str = ""


class BalloonResult(BaseModel):
    side: str
    length_mm: float
    max_pressure_kpa: float
    max_pressure_psi: float
    max_volume_ml: float
    device_max_volume_ml: float
    device_max_pressure_kpa: float
    stop_reason: str
    contact_area_mm2: float
    pv_curve: list[list[float]]


class Leak(BaseModel):
    type: Literal["B", "S", "C", "D", "canal"]
    volume_ml: float
    location_mm: list[float]
    extravertebral_ml: Optional[float] = None   # part beyond the exit (leak space), mL


class CementResult(BaseModel):
    volume_ml: float
    target_volume_ml: float
    grid_volume_ml: float
    fill_fraction: float
    endplate_contact: dict[str, float]
    interdigitation_depth_mm: Optional[float]
    viscosity: str
    viscosity_end_pa_s: float
    injection_start_min: float = 0.0      # minutes after mixing when the injection started
    yield_stress_end_pa: float = 0.0      # τ_y at the end of the injection
    max_pressure_kpa: float
    cannula_pressure_kpa: float
    stop_reason: str
    leaks: list[Leak]
    leak_summary: dict[str, Any]


class SimulationResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    schema_: str = Field(SCHEMA, alias="schema")
    technique: Literal["kyphoplasty", "vertebroplasty"]
    level: str
    approach: str
    resolution_mm: float
    balloon_length_mm: Optional[float]
    trajectories: list[dict]
    steps: list[Step]
    balloons: list[BalloonResult]
    heights: dict[str, Heights]
    height_restoration_pct: float
    anterior_height_gain_mm: float
    kyphotic_angle_change_deg: float
    cavity_volume_ml: float
    cement: CementResult
    bone: dict[str, Any]
    fracture: dict[str, Any]
    timings_s: dict[str, float]
    parameters: dict[str, Any]
    notes: list[str]
    seed: int = 0
    cavity: Optional[Volume] = Field(default=None, exclude=True)
    cement_mask: Optional[Volume] = Field(default=None, exclude=True)
    snapshots: Optional[dict] = Field(default=None, exclude=True)

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


# ------------------------------------------------------------------------------ trajectories
def trajectories_from_plan(plan: dict, level: int) -> list[dict]:
    """Trajectories of ``level`` from a ``kyphosim.plan/1`` dict."""
    for lv in plan.get("levels", []):
        key = lv.get("level", lv.get("name", lv.get("label")))
        try:
            lid = vertebra_id(key) if isinstance(key, str) else int(key)
        except (ValueError, TypeError):
            continue
        if lid == level:
            trs = lv.get("trajectories") or []
            out = []
            for t in trs:
                if "entry_mm" not in t or "target_mm" not in t:
                    raise InputError("plan trajectory without entry_mm/target_mm")
                out.append({"side": t.get("side", f"side{len(out)}"), "entry_mm": t["entry_mm"],
                            "target_mm": t["target_mm"], "gauge": t.get("gauge")})
            if not out:
                raise InputError(f"the plan has no trajectories for {vertebra_name(level)}")
            return out
    raise InputError(f"the plan has no level {vertebra_name(level)}")


def default_trajectories(model: VertebraModel, approach: str) -> list[dict]:
    """Transpedicular trajectories from the model when no plan is available: through the centroid
    of each pedicle (posterior-element voxels within 12 mm behind the body, either side of the
    midline) to the anterior third of the body (70 % of the depth from the posterior wall; 22 % of
    the width from the midline for bipedicular, the midline for unipedicular), at mid-height."""
    h = model.spacing_mm
    g = model.geometry
    i_mid, j_post, k_mid = g["i_mid"], g["j_post"], g["k_mid"]
    D, W = g["depth_mm"] / h, g["width_mm"] / h
    post = model.tissue == Tissue.POSTERIOR
    J = np.arange(model.shape[1])[None, :, None]
    zone = post & (J >= j_post - 12.0 / h) & (J <= j_post + 1)
    idx = np.argwhere(zone)
    sides = []
    for side, sgn in (("left", -1), ("right", 1)):
        sel = idx[(idx[:, 0] - i_mid) * sgn > 3.0 / h]
        if sel.shape[0] < 20:
            continue
        sides.append((side, sgn, sel.mean(axis=0)))
    if not sides:
        raise InputError(f"no pedicles found for {model.name}: give a plan (--plan)")
    if approach == "unipedicular":
        sides = sides[:1]
    out = []
    for side, sgn, ped in sides:
        lat = 0.0 if approach == "unipedicular" else sgn * 0.22 * W
        target = np.array([i_mid + lat, j_post + 0.70 * D, k_mid])
        d = target - ped
        d /= np.linalg.norm(d)
        entry = ped - d * (15.0 / h)
        out.append({"side": side, "entry_mm": model.index_to_world(entry).tolist(),
                    "target_mm": model.index_to_world(target).tolist(), "gauge": None})
    return out


def _auto_plan(ct: Volume, labels: Volume, level: int, technique: str, approach: str, subregions,
               params: SimParams) -> tuple[list[dict] | None, str]:
    """Trajectories from ``kyphosim.planning.plan_procedure`` (None when planning is unavailable or
    finds the level infeasible), and a note."""
    try:
        from kyphosim.planning.api import plan_procedure
    except Exception:
        try:
            from kyphosim.planning import plan_procedure  # type: ignore[attr-defined,no-redef]
        except Exception:
            return None, "planning not available"
    gauge = params.kp_gauge if technique == "kyphoplasty" else params.vp_gauge
    try:
        plan = plan_procedure(ct, labels, [level], approach=approach, gauge=gauge, subregions=subregions)
    except Exception as exc:  # noqa: BLE001 - reported, then the model's own trajectories are used
        return None, f"planning failed ({type(exc).__name__}: {str(exc)[:80]})"
    d = plan.to_json_dict() if hasattr(plan, "to_json_dict") else (
        plan.model_dump(mode="json") if hasattr(plan, "model_dump") else plan)
    try:
        return trajectories_from_plan(d, level), "trajectories from kyphosim.planning"
    except InputError as exc:
        return None, f"planning gave no trajectory ({exc})"


# ------------------------------------------------------------------------------ helpers
def _assessed_reference(labels: Volume, level: int, subregions: Volume | None) -> tuple[dict | None, str]:
    """Genant type, grade and expected (reference) height of ``level`` from the assessment module,
    on the label map reduced to the level and up to two neighbours on each side (morphometry only).
    Returns (None, why) when the assessment is unavailable or fails."""
    try:
        from kyphosim.assess.api import assess_spine
    except Exception:  # noqa: BLE001
        return None, "assessment not available for the reference height"
    try:
        data = labels.data
        ids = sorted(int(v) for v in np.unique(data) if 0 < v <= 28)
        rank = (lambda v: 19.5 if v == 28 else float(v))
        keep = [v for v in ids if abs(rank(v) - rank(level)) <= 2.0]
        sub_lab = Volume(np.where(np.isin(data, keep), data, 0).astype(data.dtype), labels.affine, is_label=True,
                         source_axcodes=labels.source_axcodes)
        sub = subregions if (subregions is not None and subregions.same_grid(labels)) else None
        res = assess_spine(None, sub_lab, subregions=sub, levels=[level])
        lv = next(x for x in res.levels if int(x.label) == int(level))
        return {"genant_type": lv.genant_type, "genant_grade": lv.genant_grade,
                "expected_height_mm": lv.expected_height_mm,
                "reference_levels": list(lv.reference_levels or [])}, ""
    except Exception as exc:  # noqa: BLE001 - the own posterior height is used, noted
        return None, f"assessment failed for the reference height ({type(exc).__name__})"


def _h(d: dict) -> Heights:
    return Heights(anterior_mm=round(d["anterior_mm"], 3), middle_mm=round(d["middle_mm"], 3),
                   posterior_mm=round(d["posterior_mm"], 3),
                   wedge_angle_deg=None if not np.isfinite(d["wedge_angle_deg"]) else round(d["wedge_angle_deg"], 3))


def _snapshot(model: VertebraModel, i: int, k: int, **masks: np.ndarray) -> dict:
    return {"sag_hu": model.hu[i].copy(), "ax_hu": model.hu[:, :, k].copy(),
            **{f"sag_{n}": m[i].copy() for n, m in masks.items()},
            **{f"ax_{n}": m[:, :, k].copy() for n, m in masks.items()}}


def simulate(ct: Volume, labels: Volume, level: int | str, *, plan: dict | None = None,
             technique: str = "kyphoplasty", approach: str = "bipedicular", balloon_length_mm: float = 15,
             cement_volume_ml: float | None = None, viscosity: str = "medium", resolution_mm: float = 0.5,
             subregions: Volume | None = None, seed: int = 0, fracture_age: str | None = None,
             params: SimParams = DEFAULT_PARAMS,
             progress: Callable[[str, float], None] | None = None) -> SimulationResult:
    """Simulate balloon kyphoplasty or vertebroplasty of one level.

    Parameters
    ----------
    ct, labels : Volume
        CT (HU) and vertebra labels (VerSe ids) on the same grid.
    level : int or str
        VerSe id or name ('L1').
    plan : dict, optional
        A ``kyphosim.plan/1`` dict; otherwise planning is called, else model-based trajectories.
    technique : 'kyphoplasty' | 'vertebroplasty'
    approach : 'bipedicular' | 'unipedicular'
    balloon_length_mm : 10, 15 or 20 (device, clinical-reference §3)
    cement_volume_ml : target volume; default KP = cavity × 1.15, VP = 20 % of the body (2–8 mL)
    viscosity : 'low' | 'medium' | 'high'
    resolution_mm : model grid spacing (mm)
    seed : recorded; the simulation is deterministic (no random numbers are drawn)
    fracture_age : 'acute' | 'chronic' to override the image-based detection
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    lid = vertebra_id(level) if isinstance(level, str) else int(level)
    if technique not in ("kyphoplasty", "vertebroplasty"):
        raise InputError(f"technique must be kyphoplasty or vertebroplasty, got {technique!r}")
    if approach not in ("bipedicular", "unipedicular"):
        raise InputError(f"approach must be bipedicular or unipedicular, got {approach!r}")
    if viscosity not in CEMENTS:
        raise InputError(f"viscosity must be one of {sorted(CEMENTS)}, got {viscosity!r}")
    if technique == "kyphoplasty" and int(round(balloon_length_mm)) not in BALLOONS:
        raise InputError(f"balloon length must be one of {sorted(BALLOONS)} mm, got {balloon_length_mm}")
    if cement_volume_ml is not None and not (0 < cement_volume_ml <= 15):
        raise InputError(f"cement volume {cement_volume_ml} mL out of range (0, 15]")
    report = progress or (lambda stage, frac: None)
    ct_c = ct
    report("model", 0.0)
    # Genant type and reference height by the assessment (crush: expected from the adjacent levels)
    assessed, why = _assessed_reference(labels, lid, subregions)
    crush_ref = None
    if assessed and assessed["genant_type"] == "crush" and assessed["expected_height_mm"]:
        crush_ref = float(assessed["expected_height_mm"])
    model = build_model(ct_c, labels, lid, resolution_mm=resolution_mm, subregions=subregions, params=params,
                        fracture_age=fracture_age, crush_expected_height_mm=crush_ref)
    timings["model"] = time.perf_counter() - t0
    notes = list(model.notes) + ([why] if why else [])
    th = time.perf_counter()

    gauge = HeightGauge(model.body, model.affine, lid, model.frame.si, model.spacing_mm)

    def heights_now() -> dict:
        hh, src = gauge(model.body)
        if src != "kyphosim.assess" and src not in notes:
            notes.append(f"heights measured by {src}")
        return hh

    h0 = heights_now()
    t_heights = time.perf_counter() - th
    vv = model.voxel_volume_ml
    clock = 0.0
    steps: list[Step] = [Step(name="before", time_s=0.0, heights=_h(h0), note="pre-operative CT")]

    # ---- trajectories
    t1 = time.perf_counter()
    if plan is not None:
        trs = trajectories_from_plan(plan, lid)
        notes.append("trajectories from the given plan")
    else:
        trs, why = _auto_plan(ct, labels, lid, technique, approach, subregions, params)
        notes.append(why)
        if not trs:
            trs = default_trajectories(model, approach)
            notes.append("trajectories from the model's pedicles")
    if approach == "unipedicular" and len(trs) > 1:
        trs = trs[:1]
    L = float(balloon_length_mm)
    accesses = make_access(model, trs, technique, balloon_length_mm=L, params=params)
    clock += 300.0 * len(accesses)                       # [U] ~5 min per working channel
    mid_i = int(round(np.mean([a.target_ijk[0] for a in accesses[:1]])))
    mid_k = int(round(np.mean([a.target_ijk[2] for a in accesses])))
    channel = model.tissue == Tissue.CHANNEL
    snaps = {"access": _snapshot(model, mid_i, mid_k, channel=channel)}
    steps.append(Step(name="access", time_s=clock, heights=_h(h0),
                      note=f"{len(accesses)} cannula(s), gauge {accesses[0].gauge}"))
    timings["access"] = time.perf_counter() - t1
    report("access", 1.0)

    lift = make_lift(model, params)
    h_infl = h0
    h_defl = h0
    balloons: list[BalloonResult] = []
    cavity = None
    mass_info: dict[str, Any] = {}
    if technique == "kyphoplasty":
        t2 = time.perf_counter()
        dev = BALLOONS[int(round(L))]
        res = inflate(model, accesses, [dev] * len(accesses), lift, params,
                      progress=lambda v: report("inflation", min(1.0, v / (dev.max_volume_ml * len(accesses)))))
        th = time.perf_counter()
        h_infl = heights_now() if np.any(lift.shift) else h0
        t_heights += time.perf_counter() - th
        vol_tot = sum(b.volume_ml for b in res.balloons)
        clock += vol_tot / params.inflation_rate_ml_min * 60.0
        pmax = max(b.max_pressure_kpa for b in res.balloons)
        for b in res.balloons:
            balloons.append(BalloonResult(side=b.side, length_mm=b.device.length_mm,
                                          max_pressure_kpa=round(b.max_pressure_kpa, 2),
                                          max_pressure_psi=round(b.max_pressure_kpa / PSI_TO_KPA, 1),
                                          max_volume_ml=round(b.volume_ml, 4),
                                          device_max_volume_ml=b.device.max_volume_ml,
                                          device_max_pressure_kpa=round(b.device.max_pressure_kpa, 1),
                                          stop_reason=b.stop_reason, contact_area_mm2=round(b.contact_area_mm2, 2),
                                          pv_curve=[[round(v, 4), round(p, 2)] for v, p in b.pv_curve]))
        mass_info = {"before_compaction_mg": res.mass_before_mg, "after_compaction_mg": res.mass_after_mg,
                     "unplaced_mg": res.unplaced_mass_mg, "mass_error_pct": res.mass_error_pct,
                     "drilled_mg": float(sum(a.removed_mass_mg for a in accesses))}
        snaps["inflation"] = _snapshot(model, mid_i, mid_k, balloon=res.occ > 0, rho=model.rho)
        steps.append(Step(name="inflation", time_s=clock, pressure_kpa=round(pmax, 2), volume_ml=round(vol_tot, 4),
                          heights=_h(h_infl), note=f"lift α = {res.alpha:.2f}, lift force {res.lift_force_n:.0f} N"))
        timings["inflation"] = time.perf_counter() - t2
        # ---- deflation: part of the lift is lost (preload), the cavity remains
        t3 = time.perf_counter()
        loss = params.deflation_loss_at_110n * min(1.0, params.preload_n / 110.0)
        a_after = lift.alpha * (1.0 - loss)
        fills = gap_fills(model)
        fills["occ"] = 0
        occ = res.occ
        shift_columns({"rho": model.rho, "tissue": model.tissue, "body": model.body, "hu": model.hu,
                       "vert": model.vert, "occ": occ}, fills, lift, lift.target_shift(a_after))
        lift.alpha = a_after
        cavity = occ > 0
        model.tissue[cavity & model.body] = Tissue.GAP
        clock += 30.0
        snaps["deflation"] = _snapshot(model, mid_i, mid_k, cavity=cavity)
        th = time.perf_counter()
        h_defl = heights_now() if np.any(lift.shift) else h0
        t_heights += time.perf_counter() - th
        steps.append(Step(name="deflation", time_s=clock, pressure_kpa=0.0, volume_ml=round(float(cavity.sum() * vv), 4),
                          heights=_h(h_defl),
                          note=f"{100 * loss:.0f} % of the lift lost without cement (preload {params.preload_n:.0f} N)"))
        timings["deflation"] = time.perf_counter() - t3
        report("deflation", 1.0)

    # ---- cement
    t4 = time.perf_counter()
    cav_ml = float(cavity.sum() * vv) if cavity is not None else 0.0
    body_ml = float(model.body.sum() * vv)
    if cement_volume_ml is not None:
        target = float(cement_volume_ml)
    elif technique == "kyphoplasty":
        target = float(np.clip(max(cav_ml * params.kp_cement_over_cavity, params.kp_min_fill_fraction * body_ml),
                               params.cement_volume_min_ml, params.cement_volume_max_ml))
    else:
        target = float(np.clip(params.vp_fill_fraction * body_ml, params.cement_volume_min_ml,
                               params.cement_volume_max_ml))
    grade = CEMENTS[viscosity]
    sources = [a.target_ijk if technique == "vertebroplasty" else 0.5 * (a.channel_ijk[0] + a.channel_ijk[1])
               for a in accesses]
    inj = inject(model, sources, cavity, grade, target, params, lift, [a.as_dict() for a in accesses],
                 progress=lambda v: report("cement", min(1.0, v / target)))
    cement = inj.cement_mask
    clock += inj.time_s
    th = time.perf_counter()
    h_after = h_defl if technique == "kyphoplasty" else h0      # cement does not move the endplate (limits)
    t_heights += time.perf_counter() - th
    snaps["cement"] = _snapshot(model, mid_i, mid_k, cement=inj.fill, cavity=cavity if cavity is not None
                                else np.zeros(model.shape, bool))
    steps.append(Step(name="cement injection", time_s=clock, pressure_kpa=round(inj.max_pressure_kpa, 3),
                      volume_ml=round(inj.injected_ml, 4), heights=_h(h_after), note=inj.stop_reason))
    timings["cement"] = time.perf_counter() - t4
    # ---- set
    t5 = time.perf_counter()
    cast = cast_metrics(model, cement, cavity)
    clock += params.setting_time_min * 60.0
    steps.append(Step(name="set", time_s=clock, volume_ml=round(inj.injected_ml, 4), heights=_h(h_after),
                      note="PMMA set (regular cement setting time, Boger 2008)"))
    leaks = [Leak(type=lk["type"], volume_ml=round(lk["volume_ml"], 5),
                  location_mm=[round(v, 2) for v in lk["location_mm"]],
                  extravertebral_ml=round(lk.get("extravertebral_ml", 0.0), 5)) for lk in inj.leaks]
    cem = CementResult(volume_ml=round(inj.injected_ml, 5), target_volume_ml=round(target, 4),
                       grid_volume_ml=round(inj.grid_cement_ml, 5), fill_fraction=round(cast["fill_fraction"], 5),
                       endplate_contact={k: round(v, 4) for k, v in cast["endplate_contact"].items()},
                       interdigitation_depth_mm=None if cast["interdigitation_depth_mm"] is None
                       else round(cast["interdigitation_depth_mm"], 3),
                       viscosity=viscosity, viscosity_end_pa_s=round(inj.viscosity_pa_s_end, 2),
                       injection_start_min=round(inj.start_min, 3),
                       yield_stress_end_pa=round(inj.yield_stress_pa_end, 2),
                       max_pressure_kpa=round(inj.max_pressure_kpa, 3),
                       cannula_pressure_kpa=round(inj.cannula_pressure_kpa, 2), stop_reason=inj.stop_reason,
                       leaks=leaks, leak_summary=summarise_leaks(inj.leaks))
    # ---- outcome numbers
    # restoration reference: the vertebra's own posterior height (wedge/biconcave), the height
    # expected from the adjacent levels for a crush (assessment definition, Genant)
    ref = crush_ref if crush_ref is not None else h0["posterior_mm"]
    key = "anterior_mm" if h0["anterior_mm"] <= h0["middle_mm"] else "middle_mm"
    lost = ref - h0[key]
    gain = h_after[key] - h0[key]
    restoration = float(100.0 * gain / lost) if lost >= 0.5 else 0.0
    dk = (h0["wedge_angle_deg"] - h_after["wedge_angle_deg"]) if np.isfinite(h0["wedge_angle_deg"]) and \
        np.isfinite(h_after["wedge_angle_deg"]) else 0.0
    snaps["set"] = _snapshot(model, mid_i, mid_k, cement=cement)
    snaps["meta"] = {"i": mid_i, "k": mid_k, "spacing_mm": model.spacing_mm, "flipped": model.flipped}
    cav_vol = to_input_grid(cavity, model.affine, ct) if cavity is not None else \
        Volume(np.zeros(ct.shape, np.uint8), ct.affine, is_label=True, source_axcodes=ct.source_axcodes)
    cem_vol = to_input_grid(cement, model.affine, ct)
    timings["set"] = time.perf_counter() - t5
    timings["heights (assess)"] = t_heights
    timings["total"] = time.perf_counter() - t0
    fr = model.fracture
    result = SimulationResult(
        technique=technique, level=vertebra_name(lid), approach=approach, resolution_mm=resolution_mm,
        balloon_length_mm=L if technique == "kyphoplasty" else None,
        trajectories=[a.as_dict() for a in accesses], steps=steps, balloons=balloons,
        heights={"before": _h(h0), "inflated": _h(h_infl), "after": _h(h_after)},
        height_restoration_pct=round(restoration, 2), anterior_height_gain_mm=round(h_after["anterior_mm"] - h0["anterior_mm"], 3),
        kyphotic_angle_change_deg=round(float(dk), 3), cavity_volume_ml=round(cav_ml, 4), cement=cem,
        bone={"trabecular_bmd_mg_cm3": round(model.trabecular_bmd_mg_cm3, 2), "body_volume_ml": round(body_ml, 3),
              **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in mass_info.items()}},
        fracture={"side": fr.side, "age": fr.age, "heal_fraction": fr.heal_fraction,
                  "band_density_ratio": round(fr.band_density_ratio, 3), "mean_deficit_mm": round(fr.mean_deficit_mm, 3),
                  "footprint_area_mm2": round(float(fr.footprint.sum() * model.spacing_mm ** 2), 2),
                  "cleft_volume_ml": round(fr.cleft_volume_ml, 4), "lift_alpha_after": round(lift.alpha, 4),
                  "assessed": assessed, "reference_height_mm": round(float(ref), 3)},
        timings_s={k: round(v, 3) for k, v in timings.items()},
        parameters={k: v for k, v in params.as_dict().items() if k != "extra"} | {
            "balloon_device": {"length_mm": L, "max_volume_ml": BALLOONS[int(round(L))].max_volume_ml,
                               "max_pressure_kpa": BALLOONS[int(round(L))].max_pressure_kpa, "tag": "[U]"}
            if technique == "kyphoplasty" else None,
            "cement_grade": grade.__dict__ | {"bingham_number": grade.bingham_number}},
        notes=notes, seed=seed, cavity=cav_vol, cement_mask=cem_vol, snapshots=snaps)
    report("done", 1.0)
    return result
