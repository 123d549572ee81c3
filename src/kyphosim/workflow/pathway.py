"""The end-to-end pathway: assess → decide → plan → simulate → strength → care → report.

This is the top of the pipeline: it imports every stage (stages never import it). Each stage writes
its own outputs into a sub-folder of the run folder; stages whose inputs are missing are skipped with
a stated reason; ``run.json`` records every stage and ``report.html`` / ``report.pdf`` show all of it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from kyphosim import RESEARCH_NOTICE, __version__
from kyphosim.errors import InputError
from kyphosim.fileio import write_json
from kyphosim.imaging import Volume, load_ct, load_labels, vertebra_ids_present
from kyphosim.imaging.labels import craniocaudal_order, vertebra_id, vertebra_name
from kyphosim.workflow.stages import StageRunner

__all__ = ["PathwayOptions", "PathwayResult", "run_pathway", "RUN_SCHEMA"]

RUN_SCHEMA = "kyphosim.run/1"


@dataclass
class PathwayOptions:
    """What to run and how (defaults are the clinical defaults of each stage)."""

    levels: Optional[Sequence[str]] = None          # treated levels; default: from the decision/assessment
    procedure_date: Optional[str] = None            # YYYY-MM-DD; default: the clinical file's, else today
    approach: str = "auto"
    gauge: int = 10
    simulate: bool = True
    techniques: tuple[str, ...] = ("kyphoplasty", "vertebroplasty")
    simulation_resolution_mm: float = 0.5
    strength: bool = True
    strength_resolution_mm: float = 1.0
    case_title: str = ""
    truth: Optional[dict] = None                    # phantom truth, shown beside the measurements
    intact: Optional[tuple[Volume, Volume]] = None  # (ct, labels) of the same spine before the fracture


@dataclass
class PathwayResult:
    out_dir: Path
    stages: dict[str, dict[str, Any]]
    treated_levels: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def _progress(enabled: bool):
    """A rich progress display with one task per stage, or a no-op pair of callbacks."""
    if not enabled:
        return None, (lambda n: None), (lambda n, r: None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    prog = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=console, transient=False)
    tasks: dict[str, int] = {}

    def start(name: str) -> None:
        tasks[name] = prog.add_task(name, total=1)

    def end(name: str, rec) -> None:
        if name not in tasks:
            tasks[name] = prog.add_task(name, total=1)
        label = {"ok": "[green]✓", "skipped": "[yellow]skipped", "failed": "[red]failed"}[rec.status]
        extra = f" — {rec.reason}" if rec.reason else ""
        prog.update(tasks[name], completed=1, description=f"{name} {label}{extra[:90]}")

    return prog, start, end


def run_pathway(ct: Volume | str | os.PathLike, labels: Volume | str | os.PathLike, out_dir: str | os.PathLike, *,
                clinical: Any = None, subregions: Volume | str | os.PathLike | None = None,
                options: PathwayOptions | None = None, progress: bool = True,
                resample_labels: bool = False) -> PathwayResult:
    """Run the whole pathway on one CT and write everything to ``out_dir``.

    Parameters
    ----------
    ct, labels : Volume or path
        The CT (HU) and its vertebra label map (VerSe or TotalSegmentator ids).
    clinical : path, dict or ClinicalInput, optional
        Clinical input (schema ``kyphosim.clinical/1``); without it the decision stage is skipped and
        the treated levels come from ``options.levels`` or the assessment (Genant grade ≥ 2).
    """
    opts = options or PathwayOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ct_vol = ct if isinstance(ct, Volume) else load_ct(ct)
    lab_vol = labels if isinstance(labels, Volume) else load_labels(labels, reference=ct_vol, resample=resample_labels)
    sub_vol = None
    if subregions is not None:
        from kyphosim.imaging import load_image

        sub_vol = subregions if isinstance(subregions, Volume) else load_image(subregions)
        sub_vol = Volume(sub_vol.data.astype("uint8"), sub_vol.affine, is_label=True,
                         source_axcodes=sub_vol.source_axcodes, meta=sub_vol.meta)
    clin = None
    if clinical is not None:
        from kyphosim.clinical.input import load_clinical, parse_clinical

        clin = parse_clinical(clinical) if isinstance(clinical, dict) else (
            clinical if hasattr(clinical, "model_dump") else load_clinical(clinical))

    prog, on_start, on_end = _progress(progress)
    runner = StageRunner(on_start=on_start, on_end=on_end)
    ctx: dict[str, Any] = {"outputs": {}}
    if prog is not None:
        prog.start()
    try:
        _run_stages(runner, ct_vol, lab_vol, sub_vol, clin, opts, out, ctx)
    finally:
        if prog is not None:
            prog.stop()
    result = PathwayResult(out, runner.as_dict(), ctx.get("treated", []), ctx["outputs"])
    write_json(out / "run.json", {
        "schema": RUN_SCHEMA, "kyphosim_version": __version__, "notice": RESEARCH_NOTICE,
        "inputs": {"ct": ct_vol.meta.get("path"), "labels": lab_vol.meta.get("path"),
                   "clinical": getattr(clin, "case_id", None)},
        "treated_levels": result.treated_levels, "stages": result.stages, "outputs": result.outputs,
    })
    return result


def _treated_levels(opts: PathwayOptions, decision: dict | None, assessment: dict | None,
                    present: list[int]) -> list[str]:
    if opts.levels:
        ids = [vertebra_id(v) for v in opts.levels]
        missing = [vertebra_name(i) for i in ids if i not in present]
        if missing:
            raise InputError(f"treated level(s) {', '.join(missing)} not in the label map")
        return [vertebra_name(i) for i in craniocaudal_order(ids)]
    if decision is not None:
        return list(decision.get("indicated_levels") or [])
    if assessment is not None:
        return [lv["name"] for lv in assessment.get("levels", []) if (lv.get("genant_grade") or 0) >= 2]
    return []


def _run_stages(runner: StageRunner, ct: Volume, labels: Volume, subregions: Volume | None, clinical: Any,
                opts: PathwayOptions, out: Path, ctx: dict[str, Any]) -> None:
    from kyphosim.workflow import steps

    outputs = ctx["outputs"]
    present = vertebra_ids_present(labels)

    assessment = runner.run("assess", lambda: steps.assess(ct, labels, subregions, out / "assessment", outputs))
    ctx["assessment"] = assessment

    if clinical is None:
        runner.skip("decide", "no clinical input given (--clinical)")
        decision = None
    else:
        decision = runner.run("decide", lambda: steps.decide(clinical, assessment, out / "decision", outputs))
    ctx["decision"] = decision

    try:
        treated = _treated_levels(opts, decision, assessment, present)
    except InputError as exc:
        treated = []
        runner.skip("plan", str(exc))
    ctx["treated"] = treated
    if not treated:
        reason = ("no level is indicated for augmentation" if decision is not None
                  else "no treated level (none given with --levels and no fracture of grade ≥ 2 found)")
        for name in ("plan", "simulate", "strength"):
            if name not in runner.records:
                runner.skip(name, reason)
    else:
        plan = runner.run("plan", lambda: steps.plan(ct, labels, subregions, treated, opts, out / "plan", outputs),
                          needs=("assess",))
        ctx["plan"] = plan
        if not opts.simulate:
            runner.skip("simulate", "simulation switched off")
        else:
            ctx["simulation"] = runner.run(
                "simulate", lambda: steps.simulate(ct, labels, subregions, treated[0], plan, opts, out / "simulation",
                                                   outputs), needs=("plan",))
        if not opts.strength:
            runner.skip("strength", "strength switched off")
        else:
            ctx["strength"] = runner.run(
                "strength", lambda: steps.strength(ct, labels, treated[0], ctx.get("simulation"), assessment,
                                                   opts, out / "strength", outputs))

    date = opts.procedure_date or getattr(clinical, "procedure_date", None) or dt.date.today().isoformat()
    if treated:
        technique = "kyphoplasty"
        ctx["care"] = runner.run("care", lambda: steps.care(date, treated, clinical, assessment, technique,
                                                            out / "care", outputs))
    else:
        runner.skip("care", "no treated level")

    runner.run("report", lambda: steps.report(ct, labels, ctx, runner, opts, out, outputs))
