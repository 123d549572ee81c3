"""Report sections built from the stages' JSON results (their documented schemas).

Each builder takes the stage's result as a plain dict (what the stage writes as JSON) plus figure
files, so the report only depends on the published schemas, not on the stages' Python types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from kyphosim.report.document import Section, fmt

__all__ = [
    "case_section", "truth_section", "assessment_section", "decision_section", "plan_section",
    "simulation_section", "strength_section", "care_section", "stages_section", "png_files",
]


def png_files(paths: Iterable[Path | str | tuple[Path | str, str]]) -> list[tuple[Path, bytes, str]]:
    """Read existing PNG files; items are paths or (path, caption). Missing files are skipped."""
    out = []
    for item in paths:
        p, cap = (item if isinstance(item, tuple) else (item, None))
        p = Path(p)
        if p.is_file():
            out.append((p, p.read_bytes(), cap or _caption(p)))
    return out


def _caption(path: Path) -> str:
    return path.stem.replace("_", " ")


def case_section(case: Mapping[str, Any], views_png: bytes | None = None) -> Section:
    s = Section("Patient and case", "case")
    rows = [[k.replace("_", " "), fmt(v)] for k, v in case.items() if v is not None and not isinstance(v, (dict, list))]
    if rows:
        s.table(["item", "value"], rows)
    if views_png:
        s.figure(views_png, "Sagittal, coronal and axial CT views with the vertebra labels.", id="fig-views")
    return s


def truth_section(truth: Mapping[str, Any]) -> Section:
    """Phantom truth table (known answers of the synthetic case)."""
    s = Section("Phantom truth (known answers)", "truth")
    s.text("This case is a synthetic phantom: these are the true values it was drawn with, to compare "
           "with what kyphosim measures below.", "note")
    rows = []
    for lv in truth.get("levels", []):
        frac = lv.get("fracture") or {}
        rows.append([lv.get("name"), fmt(lv.get("height_anterior_mm")), fmt(lv.get("height_middle_mm")),
                     fmt(lv.get("height_posterior_mm")), fmt(lv.get("height_loss_pct")), fmt(lv.get("genant_grade")),
                     lv.get("genant_type", "—"), fmt(lv.get("wedge_angle_deg")), fmt(lv.get("trabecular_hu"), 0),
                     fmt(lv.get("vbmd_mg_cm3"), 0), frac.get("age", "—") if frac else "—"])
    s.table(["level", "Ha mm", "Hm mm", "Hp mm", "loss %", "grade", "type", "wedge °", "trab. HU", "vBMD mg/cm³",
             "age"], rows, "Heights as defined in docs/phantom.md.")
    spine = truth.get("spine") or {}
    if spine:
        s.text(f"Regional kyphosis (truth): {fmt(spine.get('regional_kyphosis_deg'))}°.")
    return s


def assessment_section(a: Mapping[str, Any], figures: Iterable[Path] = ()) -> Section:
    s = Section("Assessment: morphometry, Genant grade, bone density", "assessment")
    spine = a.get("spine") or {}
    s.text(f"Spinal Deformity Index {fmt(spine.get('sdi'))}; L1 trabecular attenuation "
           f"{fmt(spine.get('l1_trabecular_hu'), 0)} HU ({spine.get('osteoporosis') or 'not assessed'}); "
           f"regional kyphosis {fmt(spine.get('regional_kyphosis_deg'))}°.")
    rows = []
    for lv in a.get("levels", []):
        rows.append([lv.get("name"), fmt(lv.get("height_anterior_mm")), fmt(lv.get("height_middle_mm")),
                     fmt(lv.get("height_posterior_mm")), fmt(lv.get("height_loss_pct")), fmt(lv.get("genant_grade")),
                     lv.get("genant_type") or "—", fmt(lv.get("wedge_angle_deg")), fmt(lv.get("trabecular_hu"), 0),
                     fmt(lv.get("vbmd_mg_cm3"), 0), fmt(lv.get("posterior_wall_bulge_mm")),
                     ", ".join(lv.get("flags") or []) or "—"])
    s.table(["level", "Ha mm", "Hm mm", "Hp mm", "loss %", "grade", "type", "wedge °", "trab. HU", "vBMD",
             "post. wall mm", "flags"], rows, "Heights along each body's own axis (docs/assessment.md).")
    for p, png, cap in png_files(figures):
        s.figure(png, cap, width_frac=0.49 if "spine" not in p.name else 0.8)
    return s


def decision_section(d: Mapping[str, Any]) -> Section:
    """From a ``kyphosim.decision/1`` dict: verdict per level with the rules that fired."""
    s = Section("Decision: indications and contraindications", "decision")
    for lv in d.get("levels") or []:
        verdict = str(lv.get("verdict") or "—")
        s.text(f"{lv.get('level', '?')}: {verdict.replace('_', ' ')} — {lv.get('summary', '')}",
               "warning" if "contra" in verdict or "insufficient" in verdict else "note")
        rules = lv.get("fired") or []
        if rules:
            s.table(["rule", "effect", "reason", "source"],
                    [[r.get("id"), str(r.get("verdict", "")).replace("_", " "), r.get("reason"), r.get("source")]
                     for r in rules])
        missing = lv.get("missing_facts") or []
        if missing:
            s.text("Information that would change or complete this verdict: " + ", ".join(missing) + ".")
        sins = lv.get("sins")
        if sins:
            s.text(f"SINS {sins.get('total')} ({sins.get('category', '')}).")
    for n in d.get("notes") or []:
        s.text(str(n))
    return s


def plan_section(p: Mapping[str, Any], figures: Iterable[Path] = ()) -> Section:
    s = Section("Plan: trajectories, margins and devices", "plan")
    for lv in p.get("levels", []):
        cem = lv.get("cement_volume_ml") or {}
        s.text(f"{lv.get('name')}: {lv.get('approach')} approach, "
               f"{'feasible' if lv.get('feasible') else 'NOT feasible'}; balloon {fmt(lv.get('balloon_length_mm'), 0)} mm; "
               f"cement {fmt(cem.get('low'))}–{fmt(cem.get('high'))} mL (expected {fmt(cem.get('expected'))} mL); "
               f"about {fmt(lv.get('procedure_minutes'), 0)} min.", "note" if lv.get("feasible") else "warning")
        for r in lv.get("reasons") or []:
            s.text(str(r))
        rows = []
        for t in lv.get("trajectories", []):
            rows.append([t.get("side"), fmt(t.get("gauge")), fmt(t.get("length_mm")), fmt(t.get("pedicle_min_width_mm")),
                         fmt(t.get("clearance_canal_mm")), fmt(t.get("clearance_cortex_mm")),
                         fmt(t.get("convergence_deg")), fmt(t.get("sagittal_deg")),
                         ", ".join(f"{v:.1f}" for v in t.get("entry_mm") or []),
                         ", ".join(f"{v:.1f}" for v in t.get("target_mm") or [])])
        if rows:
            s.table(["side", "gauge G", "length mm", "pedicle min width mm", "canal clearance mm",
                     "cortex clearance mm", "convergence °", "sagittal °", "entry (RAS mm)", "target (RAS mm)"], rows)
    for _, png, cap in png_files(figures):
        s.figure(png, cap, width_frac=0.49)
    return s


def simulation_section(results: Mapping[str, Mapping[str, Any]], figures: Iterable[Path] = ()) -> Section:
    """``results`` maps technique name → simulation.json dict."""
    s = Section("Simulated procedure", "simulation")
    rows = []
    for tech, r in results.items():
        h = r.get("heights") or {}
        cem = r.get("cement") or {}
        leaks = cem.get("leaks") or []
        balloons = r.get("balloons") or []
        pmax = max((b.get("max_pressure_kpa") or 0 for b in balloons), default=None)
        rows.append([tech, fmt((h.get("before") or {}).get("anterior_mm")), fmt((h.get("after") or {}).get("anterior_mm")),
                     fmt(r.get("height_restoration_pct")), fmt(r.get("kyphotic_angle_change_deg")),
                     fmt(pmax / 6.895 if pmax else None, 0), fmt(r.get("cavity_volume_ml")), fmt(cem.get("volume_ml")),
                     fmt((cem.get("fill_fraction") or 0) * 100 if cem.get("fill_fraction") is not None else None),
                     "; ".join(f"{lk.get('type')} {lk.get('volume_ml', 0):.2f} mL" for lk in leaks) or "none"])
    s.table(["technique", "Ha before mm", "Ha after mm", "height restored %", "kyphosis change °", "max pressure psi",
             "cavity mL", "cement mL", "fill %", "leaks"], rows)
    hrows = []
    for tech, r in results.items():
        for stage in ("before", "inflated", "after"):
            hh = (r.get("heights") or {}).get(stage) or {}
            hrows.append([tech, stage, fmt(hh.get("anterior_mm")), fmt(hh.get("middle_mm")),
                          fmt(hh.get("posterior_mm")), fmt(hh.get("wedge_angle_deg"))])
    if hrows:
        s.table(["technique", "stage", "Ha mm", "Hm mm", "Hp mm", "wedge °"], hrows,
                "Heights re-measured with the assessment's own code at each stage.")
    for tech, r in results.items():
        steps = r.get("steps") or []
        if steps:
            s.table(["step", "time s", "pressure kPa", "volume mL"],
                    [[st.get("name"), fmt(st.get("time_s", st.get("time"))), fmt(st.get("pressure_kpa")),
                      fmt(st.get("volume_ml"), 2)] for st in steps], f"{tech}: steps")
    for _, png, cap in png_files(figures):
        s.figure(png, cap, width_frac=0.49)
    return s


def strength_section(st: Mapping[str, Any], figures: Iterable[Path] = ()) -> Section:
    """From a ``kyphosim.strength-comparison/1`` dict (or a single ``kyphosim.strength/1`` result)."""
    s = Section("Strength: voxel finite elements", "strength")
    states = st.get("states") if isinstance(st.get("states"), dict) else {"as imaged": st}
    rows = [[name, fmt(c.get("stiffness_n_per_mm"), 0), fmt(c.get("failure_load_n"), 0),
             fmt(c.get("failure_load_linear_estimate_n"), 0),
             fmt(c.get("reaction_force_n"), 0), fmt(c.get("elements")), _law_name(c.get("material_law")),
             fmt((c.get("solver") or {}).get("iterations"))] for name, c in states.items()]
    nonlin = any((c.get("failure_load_method") == "nonlinear-pushover") for c in states.values())
    grids = sorted({float((c.get("nonlinear") or {}).get("voxel_size_mm", [0])[0]) for c in states.values()
                    if isinstance(c.get("nonlinear"), dict)} - {0.0})
    grid_txt = f" on a {'/'.join(f'{g:g}' for g in grids)} mm grid" if grids else ""
    s.table(["state", "stiffness N/mm", "failure load N" + (" (nonlinear)" if nonlin else ""),
             "linear estimate N", "reaction force N", "elements", "law", "iterations"],
            rows, "Uniaxial compression between PMMA end caps. Stiffness: linear analysis. Failure load: "
                  + (f"peak reaction of a nonlinear pushover to 2 % apparent strain{grid_txt} (elastic–perfectly "
                     "plastic bone and PMMA); "
                     if nonlin else "") + "linear estimate: 2 % of the bone volume beyond its yield strain "
                  "(kept for reference). Laws and criteria in docs/mechanics.md.")
    changes = st.get("changes") or {}
    crow = []
    for name, ch in changes.items():
        if isinstance(ch, dict):
            crow.append([name.replace("_", " "), fmt(ch.get("stiffness_percent")), fmt(ch.get("failure_load_percent")),
                         fmt(ch.get("failure_load_linear_estimate_percent"))])
    if crow:
        s.table(["comparison", "stiffness change %", "failure load change %", "linear estimate change %"], crow)
    for n in st.get("notes") or []:
        s.text(str(n))
    for _, png, cap in png_files(figures):
        s.figure(png, cap, width_frac=0.49)
    return s


def _law_name(law: Any) -> str:
    if isinstance(law, dict):
        return str(law.get("name") or "—")
    return str(law or "—")


def care_section(c: Mapping[str, Any]) -> Section:
    """From a care_plan.json dict: dated milestones, bone health and red flags."""
    s = Section("Post-operative care plan", "care")
    ms = c.get("milestones") or []
    if ms:
        rows = []
        for m in ms:
            when = str(m.get("start_date"))
            if m.get("end_date"):
                when += f" – {m.get('end_date')}"
            rows.append([when, m.get("title"), m.get("detail", "")])
        s.table(["date", "milestone", "details"], rows)
    bh = c.get("bone_health") or {}
    if bh:
        s.text(f"Bone health: calcium {bh.get('calcium_mg_per_day')} mg/day, vitamin D "
               f"{bh.get('vitamin_d_iu_per_day')} IU/day; DXA {'due ' + str(bh.get('dxa_due_date')) if bh.get('dxa_needed') else 'not needed'}; "
               f"fracture-liaison referral {'yes' if bh.get('fls_referral') else 'no'}.", "note")
    flags = c.get("red_flags") or []
    if flags:
        s.table(["red flag", "why", "action"], [[f.get("symptom"), f.get("why"), f.get("action")] for f in flags],
                "Call the care team urgently for any of these.")
    return s


def stages_section(stages: Mapping[str, Mapping[str, Any]]) -> Section:
    s = Section("Pipeline stages", "stages")
    s.table(["stage", "status", "seconds", "note"],
            [[k, v.get("status"), fmt(v.get("seconds"), 1), v.get("reason") or ""] for k, v in stages.items()])
    return s
