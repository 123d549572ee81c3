"""``plan_procedure``: transpedicular trajectories, margins and device sizing for chosen levels."""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np

from kyphosim.assess.geometry import vertebral_body_geometry
from kyphosim.errors import InputError, LabelError
from kyphosim.imaging.labels import parse_levels, vertebra_name
from kyphosim.imaging.volume import Volume
from kyphosim.planning import sizing
from kyphosim.planning.instruments import GAUGE_OD_MM, Cannula, cannula_outer_diameter_mm
from kyphosim.planning.model import Alternative, CementVolume, LevelPlan, Plan, Trajectory
from kyphosim.planning.pedicle import analyse_pedicle, rasterize_vertebra
from kyphosim.planning.trajectories import (MIN_CLEARANCE_CANAL_MM, MIN_CLEARANCE_CORTEX_MM, TIP_FRACTION,
                                            UNI_TIP_FRACTION, TrajectoryGeometry, bipedicular_trajectory,
                                            unipedicular_trajectory)

__all__ = ["plan_procedure", "plan_level", "plan_instruments", "PLANNING_GAUGES"]

log = logging.getLogger(__name__)

#: Working-cannula gauges accepted for kyphoplasty access (8–11 G).
PLANNING_GAUGES = (8, 10, 11)
APPROACHES = ("auto", "bipedicular", "unipedicular")


def _to_model(raster, tg: TrajectoryGeometry) -> Trajectory:
    w = raster.to_world
    f = lambda x: None if x is None or not np.isfinite(x) else round(float(x), 2)  # noqa: E731
    return Trajectory(
        side=tg.side, kind=tg.kind, entry_mm=tuple(np.round(w(tg.entry_local), 2)),
        target_mm=tuple(np.round(w(tg.tip_local), 2)), isthmus_mm=tuple(np.round(w(tg.isthmus_local), 2)),
        length_mm=round(tg.length_mm, 2), length_in_body_mm=round(tg.length_in_body_mm, 2), gauge=tg.gauge,
        cannula_outer_diameter_mm=cannula_outer_diameter_mm(tg.gauge),
        pedicle_min_width_mm=round(tg.pedicle_min_width_mm, 2), pedicle_height_mm=round(tg.pedicle_height_mm, 2),
        pedicle_inscribed_diameter_mm=round(tg.pedicle_inscribed_diameter_mm, 2),
        clearance_canal_mm=round(min(tg.clearance_canal_mm, 99.0), 2),
        clearance_cortex_mm=round(tg.clearance_cortex_mm, 2),
        tip_to_anterior_cortex_mm=f(tg.tip_to_anterior_cortex_mm),
        tip_to_superior_endplate_mm=f(tg.tip_to_superior_endplate_mm),
        tip_to_inferior_endplate_mm=f(tg.tip_to_inferior_endplate_mm),
        convergence_deg=round(tg.convergence_deg, 2), sagittal_deg=round(tg.sagittal_deg, 2),
        feasible=tg.feasible, reasons=tg.reasons, warnings=tg.warnings)


def _sclerosis_reason(ct: Volume | None, raster, ped) -> str | None:
    """Mean HU along the pedicle axis within the isthmus region; sclerotic above 1000 HU."""
    if ct is None or not ped.found:
        return None
    t = np.linspace(-4.0, 4.0, 17)
    pts = raster.to_world(ped.isthmus_local[None, :] + t[:, None] * ped.axis_local[None, :])
    hu = float(np.mean(ct.sample(pts, cval=-1024.0)))
    if hu > 1000.0:
        return f"{ped.side}: sclerotic pedicle (mean {hu:.0f} HU on its axis)"
    return None


def plan_level(labels: Volume, label: int, *, ct: Volume | None = None, approach: str = "auto", gauge: int = 10,
               subregions: Volume | None = None) -> tuple[LevelPlan, dict]:
    """Plan one level; returns (LevelPlan, debug dict with the raster and pedicle analyses)."""
    body = vertebral_body_geometry(labels, label, subregions)
    raster = rasterize_vertebra(labels, label, body, subregions)
    peds = {s: analyse_pedicle(raster, s) for s in ("left", "right")}
    reasons, warnings, alternatives = [], [], []
    bip: dict[str, TrajectoryGeometry] = {}
    for s, p in peds.items():
        if not p.found:
            reasons.append(p.reason or f"{s} pedicle not found")
            continue
        scl = _sclerosis_reason(ct, raster, p)
        tg = bipedicular_trajectory(raster, p, gauge)
        if scl:
            tg.reasons.append(scl)
            tg.feasible = False
        bip[s] = tg
    uni: dict[str, TrajectoryGeometry] = {}
    need_uni = approach == "unipedicular" or (approach == "auto" and sum(t.feasible for t in bip.values()) < 2)
    for s, p in peds.items():
        if p.found and need_uni:
            tg = unipedicular_trajectory(raster, p, gauge)
            if s in bip and any("sclerotic" in r for r in bip[s].reasons):
                tg.reasons.append(next(r for r in bip[s].reasons if "sclerotic" in r))
                tg.feasible = False
            uni[s] = tg
    ok_bip = [s for s in ("left", "right") if s in bip and bip[s].feasible]
    ok_uni = sorted([s for s in uni if uni[s].feasible],
                    key=lambda s: -min(uni[s].clearance_canal_mm - MIN_CLEARANCE_CANAL_MM,
                                       uni[s].clearance_cortex_mm - MIN_CLEARANCE_CORTEX_MM))
    chosen: list[TrajectoryGeometry] = []
    rejected: list[TrajectoryGeometry] = []
    if approach in ("bipedicular", "auto") and len(ok_bip) == 2:
        chosen, used = [bip["left"], bip["right"]], "bipedicular"
    elif approach in ("unipedicular", "auto") and ok_uni:
        chosen, used = [uni[ok_uni[0]]], "unipedicular"
        if approach == "auto":
            warnings.append("bipedicular access infeasible: unipedicular plan from the "
                            f"{ok_uni[0]} pedicle")
    elif approach == "bipedicular" and len(ok_bip) == 1:
        chosen, used = [], "none"
    else:
        used = "none"
    for s in ("left", "right"):
        for tg in (bip.get(s), uni.get(s)):
            if tg is not None and tg not in chosen and not tg.feasible:
                rejected.append(tg)
                if not chosen or (approach == "auto" and used != "bipedicular"):
                    reasons.extend(r for r in tg.reasons if r not in reasons)
    feasible = bool(chosen)
    if not feasible or used != ("bipedicular" if approach in ("auto", "bipedicular") else "unipedicular"):
        # alternatives
        if approach == "bipedicular" and len(ok_bip) == 1:
            alternatives.append(Alternative(kind="unipedicular", feasible=bool(uni) and None or None,
                                            description=f"unipedicular access from the {ok_bip[0]} pedicle"))
        if ok_bip and len(ok_bip) == 1:
            alternatives.append(Alternative(kind="other_side", feasible=True,
                                            description=f"access from the {ok_bip[0]} side only"))
        if ok_uni and used != "unipedicular":
            alternatives.append(Alternative(kind="unipedicular", feasible=True,
                                            description=f"unipedicular oblique access from the {ok_uni[0]} pedicle"))
        smaller = [g for g in PLANNING_GAUGES if GAUGE_OD_MM[g] < GAUGE_OD_MM[int(gauge)]]
        for g in smaller:
            ok = [s for s, p in peds.items() if p.found and bipedicular_trajectory(raster, p, g).feasible]
            if ok:
                alternatives.append(Alternative(kind="smaller_gauge", feasible=len(ok) == 2,
                                                description=f"{g} G cannula ({GAUGE_OD_MM[g]} mm): feasible on the "
                                                            f"{' and '.join(ok)} pedicle(s)"))
                break
        alternatives.append(Alternative(kind="extrapedicular", feasible=None,
                                        description="extrapedicular (parapedicular) access lateral to the pedicle, "
                                                    "through the costovertebral junction at thoracic levels"))
    # sizing
    vox_ml = abs(np.linalg.det(labels.affine[:3, :3])) / 1000.0
    body_ml = float(body._body_crop.sum() * vox_ml)
    balloon, infl, cement, minutes = None, None, None, None
    if feasible:
        lens = [sizing.balloon_length_mm(t.length_in_body_mm) for t in chosen]
        balloon = min(L for L, _ in lens)
        if not all(f for _, f in lens):
            warnings.append(f"less than {balloon + sizing.BALLOON_MARGIN_MM:.0f} mm of trajectory inside the body "
                            "for the smallest balloon")
        hts = [t.tip_to_superior_endplate_mm + t.tip_to_inferior_endplate_mm for t in chosen
               if np.isfinite(t.tip_to_superior_endplate_mm) and np.isfinite(t.tip_to_inferior_endplate_mm)]
        h = float(np.median(hts)) if hts else float(body.centre_height_mm)
        infl = sizing.inflation_volume_ml(balloon, h)
        cement = CementVolume(**sizing.cement_volume_ml(body_ml, infl * len(chosen)))
        minutes = sizing.procedure_minutes(used)
    for tg in chosen:
        warnings.extend(w for w in tg.warnings if w not in warnings)
    f = body.frame
    lp = LevelPlan(
        label=int(label), name=vertebra_name(label), approach=used, feasible=feasible,
        reasons=reasons if not feasible else [r for r in reasons],
        warnings=warnings, trajectories=[_to_model(raster, t) for t in chosen],
        rejected_trajectories=[_to_model(raster, t) for t in rejected], alternatives=alternatives,
        balloon_length_mm=balloon, balloon_inflation_ml_per_side=None if infl is None else round(infl, 2),
        cement_volume_ml=cement, body_volume_ml=round(body_ml, 2), body_depth_mm=round(body.depth_mm, 2),
        body_width_mm=round(body.width_mm, 2), centroid_mm=tuple(np.round(f.origin_mm, 2)),
        frame_lr=tuple(np.round(f.lr, 5)), frame_ap=tuple(np.round(f.ap, 5)), frame_si=tuple(np.round(f.si, 5)),
        canal_source=raster.canal_source, pedicle_source=peds["left"].source,
        procedure_minutes=minutes, flags=list(dict.fromkeys(body.flags + raster.flags)))
    return lp, {"raster": raster, "pedicles": peds, "body": body, "bipedicular": bip, "unipedicular": uni}


def canonical_inputs(ct: Volume | None, labels: Volume, subregions: Volume | None):
    """(ct, labels, subregions) in RAS voxel order; the sub-region array is taken on the label grid
    (planning only requires the same shape)."""
    if subregions is not None:
        subregions = Volume(np.asarray(subregions.data), labels.affine, is_label=True,
                            source_axcodes=subregions.source_axcodes, meta=subregions.meta).as_canonical()
    return (ct.as_canonical() if ct is not None else None), labels.as_canonical(), subregions


def plan_procedure(ct: Volume | None, labels: Volume, levels: str | Iterable[int] | int, *, approach: str = "auto",
                   gauge: int = 10, subregions: Volume | None = None, progress=None,
                   debug: dict | None = None) -> Plan:
    """Plan kyphoplasty access for ``levels`` (names such as 'L1,T12' or VerSe ids).

    Parameters
    ----------
    ct : Volume or None
        CT in HU on the label grid (used for the sclerosis check; optional).
    labels : Volume
        Vertebra label map (VerSe ids).
    approach : {'auto', 'bipedicular', 'unipedicular'}
    gauge : {8, 10, 11}
        Working-cannula gauge (outer diameters 4.19 / 3.40 / 3.05 mm).
    subregions : Volume, optional
        Sub-region map (kyphosim ids, or TPTBox 41–50) on the label grid.
    """
    if approach not in APPROACHES:
        raise InputError(f"approach must be one of {', '.join(APPROACHES)}, got {approach!r}")
    if int(gauge) not in PLANNING_GAUGES:
        raise InputError(f"gauge {gauge} G is not a kyphoplasty working-cannula size "
                         f"(choose {', '.join(map(str, PLANNING_GAUGES))})")
    if isinstance(levels, str):
        try:
            ids = parse_levels(levels)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    elif isinstance(levels, (int, np.integer)):
        ids = [int(levels)]
    else:
        ids = [int(x) for x in levels]
    present = set(np.unique(labels.data).astype(int).tolist())
    missing = [vertebra_name(i) for i in ids if i not in present]
    if missing:
        raise LabelError(f"level(s) {', '.join(missing)} not in the label map")
    if ct is not None and not ct.same_grid(labels):
        raise InputError("CT and labels are not on the same grid")
    if subregions is not None and subregions.shape != labels.shape:
        raise InputError("sub-region map is not on the label grid")
    # one fixed voxel order (RAS): the pedicle and trajectory search walks voxel grids from their low
    # corner, so another voxel order of the same world moved entry points by up to 0.8 mm and the
    # convergence by 1.2° (docs/robustness.md); every output is in world coordinates
    inputs = {"ct": (ct.meta.get("path") if ct is not None else None), "labels": labels.meta.get("path"),
              "subregions": subregions.meta.get("path") if subregions is not None else None}
    ct, labels, subregions = canonical_inputs(ct, labels, subregions)
    out = []
    for i in ids:
        lp, dbg = plan_level(labels, i, ct=ct, approach=approach, gauge=int(gauge), subregions=subregions)
        out.append(lp)
        if debug is not None:
            debug[int(i)] = dbg
        if progress is not None:
            progress(lp)
    try:
        from importlib.metadata import version
        ver = version("kyphosim")
    except Exception:  # pragma: no cover
        ver = ""
    return Plan(schema="kyphosim.plan/1", approach_requested=approach, gauge=int(gauge), levels=out,
                n_levels_planned=sum(1 for lp in out if lp.feasible),
                total_procedure_minutes=float(sum(lp.procedure_minutes or 0.0 for lp in out)),
                parameters={"min_clearance_canal_mm": MIN_CLEARANCE_CANAL_MM,
                            "min_clearance_cortex_mm": MIN_CLEARANCE_CORTEX_MM,
                            "tip_fraction_bipedicular": TIP_FRACTION, "tip_fraction_unipedicular": UNI_TIP_FRACTION,
                            "cannula_outer_diameter_mm": cannula_outer_diameter_mm(gauge)},
                inputs=inputs, kyphosim_version=ver)


def plan_instruments(plan: Plan | dict, *, level: int | None = None, stylet: bool = True) -> list:
    """Cannulas (radiopaque objects for :func:`kyphosim.planning.fluoro.render_drr`) of a plan."""
    data = plan.to_json_dict() if isinstance(plan, Plan) else plan
    objs = []
    for lv in data.get("levels", []):
        if level is not None and int(lv["label"]) != int(level):
            continue
        for t in lv.get("trajectories", []):
            objs.append(Cannula(t["entry_mm"], t["target_mm"], int(t["gauge"]), stylet=stylet,
                                name=f"{lv['name']} {t['side']} cannula"))
    return objs
