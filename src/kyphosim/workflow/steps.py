"""One function per pathway stage: call the stage's API, write its outputs, return its JSON dict.

Each function receives the stage's own output folder and records the files it wrote in ``outputs``
(name → path relative to nothing: absolute paths as strings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kyphosim.fileio import write_json
from kyphosim.imaging import Volume
from kyphosim.imaging.labels import vertebra_id, vertebra_name

__all__ = ["assess", "decide", "plan", "simulate", "strength", "care", "report"]


def _dump(obj: Any) -> dict:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", by_alias=True)
    return dict(obj)


def assess(ct: Volume, labels: Volume, subregions: Volume | None, out: Path, outputs: dict) -> dict:
    """assessment.json, a sagittal figure per level with its heights, and the whole-spine figure."""
    from kyphosim.assess.api import assess_spine_detailed
    from kyphosim.assess.figures import level_figure, spine_figure

    result, geos, lab_used = assess_spine_detailed(ct, labels, subregions=subregions)
    d = result.to_json_dict()
    outputs["assessment"] = str(write_json(out / "assessment.json", d))
    for lv in result.levels:
        if lv.label in geos:
            level_figure(out / f"level_{lv.name}.png", geos[lv.label], lv, ct=ct, labels=lab_used)
    if geos:
        outputs["assessment_spine_figure"] = str(spine_figure(out / "spine.png", geos, result, ct=ct,
                                                              labels=lab_used))
    return d


def decide(clinical: Any, assessment: dict | None, out: Path, outputs: dict) -> dict:
    from kyphosim.clinical.engine import evaluate

    decision = evaluate(clinical, assessment)
    d = _dump(decision)
    outputs["decision"] = str(write_json(out / "decision.json", d))
    return d


def plan(ct: Volume, labels: Volume, subregions: Volume | None, levels: list[str], opts, out: Path,
         outputs: dict) -> dict:
    """plan.json plus AP/lateral fluoroscopy with the cannulas and views through each trajectory."""
    from kyphosim.planning.api import plan_procedure
    from kyphosim.planning.outputs import write_plan_images

    ids = [vertebra_id(v) for v in levels]
    p = plan_procedure(ct, labels, ids, approach=opts.approach, gauge=opts.gauge, subregions=subregions)
    pd = p.to_json_dict()
    files = write_plan_images(ct, labels, pd, out, gauge=opts.gauge, subregions=subregions)
    pd["files"] = files
    outputs["plan"] = str(write_json(out / "plan.json", pd))
    return pd


def simulate(ct: Volume, labels: Volume, subregions: Volume | None, level: str, plan: dict | None, opts, out: Path,
             outputs: dict) -> dict:
    """Kyphoplasty and vertebroplasty of ``level`` with the same plan; one folder per technique."""
    from kyphosim.simulation import simulate as run_simulation
    from kyphosim.simulation.figures import compare_figure
    from kyphosim.simulation.outputs import write_simulation_outputs

    results: dict[str, Any] = {}
    for tech in opts.techniques:
        sim = run_simulation(ct, labels, vertebra_id(level), plan=plan, technique=tech,
                             resolution_mm=opts.simulation_resolution_mm, subregions=subregions)
        paths = write_simulation_outputs(sim, ct, out / tech)
        outputs[f"simulation_{tech}"] = str(paths["simulation"])
        outputs[f"simulation_{tech}_cavity"] = str(paths["cavity"])
        outputs[f"simulation_{tech}_cement"] = str(paths["cement"])
        results[tech] = {"result": sim.to_json_dict(), "raw": sim}
    if "kyphoplasty" in results and "vertebroplasty" in results:
        compare_figure(results["kyphoplasty"]["raw"], results["vertebroplasty"]["raw"],
                       out / "kyphoplasty_vs_vertebroplasty.png")
    return results


def strength(ct: Volume, labels: Volume, level: str, simulation: dict | None, assessment: dict | None, opts,
             out: Path, outputs: dict) -> dict:
    """Intact / fractured / augmented voxel-FE strength of the treated level.

    Intact: the pre-fracture scan when given (the demo's unfractured phantom), otherwise the nearest
    adjacent level graded normal in the assessment (a proxy, stated in the notes).
    """
    from kyphosim.mechanics import compare_augmentation
    from kyphosim.mechanics.maps import write_maps

    cement = None
    if simulation and "kyphoplasty" in simulation:
        cement = getattr(simulation["kyphoplasty"]["raw"], "cement_mask", None)
    kwargs: dict[str, Any] = dict(density="hu", resample_mm=opts.strength_resolution_mm)
    if opts.intact is not None:
        kwargs.update(intact_image=opts.intact[0], intact_labels=opts.intact[1])
    elif assessment:
        normal = _adjacent_normal_level(level, assessment)
        if normal:
            kwargs["intact_level"] = normal
    comp = compare_augmentation(ct, labels, cement, level=level, **kwargs)
    for name, res in comp.states.items():
        paths = write_maps(res, out, prefix=f"{name}_")
        outputs.update({f"strength_{name}_{k}": str(v) for k, v in paths.items()})
    d = comp.to_dict()
    for st in d.get("states", {}).values():
        st.pop("fields", None)
    outputs["strength"] = str(write_json(out / "strength.json", d))
    return d


def _adjacent_normal_level(level: str, assessment: dict) -> str | None:
    """The closest level to ``level`` graded Genant 0 (above first, then below)."""
    from kyphosim.imaging.labels import craniocaudal_order

    graded = {lv["name"]: lv.get("genant_grade") for lv in assessment.get("levels", [])}
    order = [vertebra_name(i) for i in craniocaudal_order(vertebra_id(n) for n in graded)]
    if level not in order:
        return None
    i = order.index(level)
    for d in (1, 2):
        for j in (i - d, i + d):
            if 0 <= j < len(order) and graded.get(order[j]) == 0:
                return order[j]
    return None


def care(date: str, levels: list[str], clinical: Any, assessment: dict | None, technique: str, out: Path,
         outputs: dict) -> dict:
    from kyphosim.care import make_care_plan, write_care_outputs

    plan = make_care_plan(date, levels, clinical, assessment, technique=technique)
    paths = write_care_outputs(plan, out, clinical=clinical, assessment=assessment)
    outputs.update({f"care_{k}": str(v) for k, v in paths.items() if isinstance(v, (str, Path))})
    return plan.to_dict()


def report(ct: Volume, labels: Volume, ctx: dict, runner, opts, out: Path, outputs: dict) -> dict:
    from kyphosim.workflow.report import build_report

    rep = build_report(ct, labels, ctx, runner, opts, out)
    from kyphosim.report import write_html, write_pdf

    outputs["report_html"] = str(write_html(rep, out / "report.html"))
    outputs["report_pdf"] = str(write_pdf(rep, out / "report.pdf"))
    return {"sections": rep.section_ids(), "figures": rep.figure_count()}
