"""Assemble the case report from what the pathway's stages produced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from kyphosim import RESEARCH_NOTICE, __version__
from kyphosim.imaging import Volume, vertebra_ids_present
from kyphosim.imaging.labels import vertebra_name
from kyphosim.report import Report, Section
from kyphosim.report import sections as S
from kyphosim.report.figures import orthogonal_views

__all__ = ["build_report"]


def _figs(folder: Path, pattern: str = "*.png") -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def build_report(ct: Volume, labels: Volume, ctx: dict[str, Any], runner, opts, out: Path) -> Report:
    """The report of a run: every stage's results, figures, the stage log and the research notice."""
    treated = ctx.get("treated") or []
    title = opts.case_title or "kyphosim case report"
    rep = Report(title, f"kyphosim {__version__} · generated {dt.date.today().isoformat()} · treated levels: "
                        f"{', '.join(treated) or 'none'}", notice=RESEARCH_NOTICE)
    ids = vertebra_ids_present(labels)
    case = {
        "CT": Path(str(ct.meta.get("path", "in memory"))).name,
        "grid": f"{ct.shape[0]}×{ct.shape[1]}×{ct.shape[2]} voxels, "
                + "×".join(f"{s:.2f}" for s in ct.spacing) + f" mm, {''.join(ct.axcodes)}",
        "vertebrae in the label map": ", ".join(vertebra_name(i) for i in ids),
        "treated levels": ", ".join(treated) or "none",
    }
    centre = None
    if treated:
        import numpy as np

        from kyphosim.imaging.labels import vertebra_id

        can = labels.as_canonical()
        idx = np.argwhere(can.data == vertebra_id(treated[0]))
        if idx.size:
            centre = can.voxel_to_world(idx.mean(axis=0))
    rep.add(S.case_section(case, orthogonal_views(ct, labels, center_mm=centre,
                                                  title="CT with vertebra labels")))
    if opts.truth:
        rep.add(S.truth_section(opts.truth))
    if ctx.get("assessment"):
        rep.add(S.assessment_section(ctx["assessment"], _figs(out / "assessment")))
    if ctx.get("decision"):
        rep.add(S.decision_section(ctx["decision"]))
    if ctx.get("plan"):
        rep.add(S.plan_section(ctx["plan"], _figs(out / "plan")))
    if ctx.get("simulation"):
        sims = {k: v["result"] for k, v in ctx["simulation"].items()}
        figs: list = [(p, "kyphoplasty vs vertebroplasty: cement, heights and leaks")
                      for p in _figs(out / "simulation", "kyphoplasty_vs_vertebroplasty.png")]
        for tech in sims:
            figs += [(p, f"{tech}: {p.stem.replace('_', ' ')}") for p in _figs(out / "simulation" / tech)]
        rep.add(S.simulation_section(sims, figs))
        rep.add(_risks_section(sims))
    if ctx.get("strength"):
        rep.add(S.strength_section(ctx["strength"], _figs(out / "strength")))
    if ctx.get("care"):
        rep.add(S.care_section(ctx["care"]))
    rep.add(S.stages_section(runner.as_dict()))
    notice = Section("Research use only", "notice")
    notice.text(RESEARCH_NOTICE, "warning")
    notice.text("Models, parameters, sources and limits are documented in the project's docs/ folder "
                "(assessment, planning, simulation, mechanics, clinical).")
    rep.add(notice)
    return rep


def _risks_section(sims: dict[str, dict]) -> Section:
    """Risks in numbers: simulated leaks beside the literature rates (clinical-reference §4d–4e)."""
    s = Section("Risks in numbers", "risks")
    rows = []
    for tech, r in sims.items():
        leaks = (r.get("cement") or {}).get("leaks") or []
        canal = [lk for lk in leaks if lk.get("type") == "canal"]
        rows.append([tech, len(leaks), f"{sum(lk.get('volume_ml', 0) for lk in leaks):.2f}",
                     "yes" if canal else "no"])
    s.table(["technique", "simulated leaks", "leaked volume mL", "canal leak"], rows)
    s.table(["risk (literature)", "kyphoplasty", "vertebroplasty", "source"], [
        ["any cement leakage (pooled)", "18.4 %", "54.7 %", "Zhan et al., World Neurosurg 2017"],
        ["CT-detected extravasation", "73 %", "82 %", "KAVIAR, Dohm et al., AJNR 2014"],
        ["pulmonary cement embolism on routine CT", "1.9 % (PVP/PKP together)", "", "JOSR 2021"],
        ["canal leak needing decompression", "", "≈ 0.13 %", "3175 PVP patients, JOSR 2019"],
        ["new vertebral fracture within 1 year", "≈ 11 % (BKP)", "≈ 11 % (VP)", "Papanastassiou 2012"],
    ], "Simulated leaks come from the model in docs/simulation.md; rates are population figures.")
    return s
