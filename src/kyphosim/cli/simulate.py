"""``kyphosim simulate``: virtual balloon kyphoplasty / vertebroplasty of one level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer


def load_inputs(ct: Path, labels: Path, subregions: Optional[Path], resample_labels: bool):
    """CT, labels and optional sub-regions (TPTBox ids mapped) on the CT grid."""
    import numpy as np

    from kyphosim.errors import InputError
    from kyphosim.imaging.io import load_ct, load_image, load_labels
    from kyphosim.imaging.labels import subregions_from_tptbox
    from kyphosim.imaging.volume import Volume

    vol = load_ct(ct)
    lab = load_labels(labels, reference=vol, resample=resample_labels)
    sub = None
    if subregions is not None:
        sub = load_image(subregions)
        data = sub.data
        if data.max() > 40:
            data = subregions_from_tptbox(data)
        sub = Volume(np.asarray(data).astype(np.uint8), sub.affine, is_label=True, source_axcodes=sub.source_axcodes)
        if not sub.same_grid(vol):
            if not resample_labels:
                raise InputError(f"sub-regions {subregions.name} are not on the CT grid; pass --resample-labels")
            sub = sub.resample(like=vol)
    return vol, lab, sub


def load_plan(path: Optional[Path]) -> Optional[dict]:
    from kyphosim.errors import InputError

    if path is None:
        return None
    if not path.exists():
        raise InputError(f"plan file not found: {path}")
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(plan, dict) or "levels" not in plan:
        raise InputError(f"{path.name} is not a kyphosim.plan/1 file (no 'levels')")
    return plan


def simulation_params(injection_start: float | None):
    """Simulation parameters with the CLI's injection clock (minutes after mixing; None = the grade's
    default start). Outside 0–17 min (mixing to the cement's setting time, Boger 2008) is an InputError."""
    from kyphosim.errors import InputError
    from kyphosim.simulation.params import DEFAULT_PARAMS

    if injection_start is None:
        return DEFAULT_PARAMS
    if not 0.0 <= injection_start < 17.0:
        raise InputError(f"--injection-start must be 0–17 min after mixing (PMMA sets at ≈ 17 min), "
                         f"got {injection_start:g}")
    return DEFAULT_PARAMS.with_(injection_start_min=float(injection_start))


def run_simulation(vol, lab, sub, level, plan, technique, approach, balloon, cement_volume, viscosity,
                   resolution, fracture_age, label: str = "", injection_start: float | None = None):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kyphosim.simulation import simulate

    params = simulation_params(injection_start)

    with Progress(TextColumn(f"[bold]simulate{label}[/] {{task.description:<10}}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), transient=True) as prog:
        task = prog.add_task("model", total=1.0)
        return simulate(vol, lab, level, plan=plan, technique=technique, approach=approach,
                        balloon_length_mm=balloon, cement_volume_ml=cement_volume, viscosity=viscosity,
                        resolution_mm=resolution, subregions=sub, fracture_age=fracture_age, params=params,
                        progress=lambda stage, f: prog.update(task, description=stage, completed=f))


def write_outputs(result, vol, out: Path, *, figures: bool = True, prefix: str = "") -> list[str]:
    """The simulation's files via ``kyphosim.simulation.outputs`` (figures of a prefixed run go into
    ``{prefix}figures/``); returns the names written, relative to ``out``."""
    from kyphosim.simulation.outputs import write_simulation_outputs

    out = Path(out)
    paths = write_simulation_outputs(result, vol, out, figures=figures, prefix=prefix,
                                     figures_dir=out / f"{prefix}figures" if prefix else out)
    files = [paths["simulation"], paths["cavity"], paths["cement"], *paths["figures"]]
    return [str(Path(f).relative_to(out)) for f in files]


# options shared by ``simulate`` and ``compare`` (one definition each)
CtArg = Annotated[Path, typer.Argument(help="CT image (NIfTI file or DICOM series directory), HU")]
LabelsOpt = Annotated[Path, typer.Option("--labels", help="Vertebra label map (VerSe or TotalSegmentator)")]
LevelOpt = Annotated[str, typer.Option("--level", help="Level to treat, e.g. L1")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder")]
PlanOpt = Annotated[Optional[Path], typer.Option("--plan", help="kyphosim.plan/1 JSON (else planned automatically)")]
ApproachOpt = Annotated[str, typer.Option("--approach", help="bipedicular | unipedicular")]
BalloonOpt = Annotated[float, typer.Option("--balloon", help="Balloon length, mm (10, 15 or 20)")]
CementVolumeOpt = Annotated[Optional[float], typer.Option("--cement-volume", help="Target cement volume, mL")]
ViscosityOpt = Annotated[str, typer.Option("--viscosity", help="low | medium | high")]
InjectionStartOpt = Annotated[Optional[float], typer.Option(
    "--injection-start", help="Minutes after mixing when injection starts (default: the grade's, 3.5–6.5)")]
ResolutionOpt = Annotated[float, typer.Option("--resolution", help="Model grid spacing, mm")]
SubregionsOpt = Annotated[Optional[Path], typer.Option("--subregions",
                                                       help="Sub-region map (kyphosim or TPTBox ids)")]
FractureAgeOpt = Annotated[Optional[str], typer.Option("--fracture-age",
                                                       help="acute | chronic (default: from the image)")]
ResampleOpt = Annotated[bool, typer.Option("--resample-labels", help="Resample labels onto the CT grid")]
FiguresOpt = Annotated[bool, typer.Option("--figures/--no-figures", help="Write the PNG figures")]


def parse_level(level: str) -> int:
    """VerSe id of ``level`` ('L1'); a bad name is an InputError (one line, exit 2)."""
    from kyphosim.errors import InputError
    from kyphosim.imaging.labels import vertebra_id

    try:
        return vertebra_id(level)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def simulate_command(
    ct: CtArg, labels: LabelsOpt, level: LevelOpt, out: OutOpt, plan: PlanOpt = None,
    technique: Annotated[str, typer.Option("--technique", help="kyphoplasty | vertebroplasty")] = "kyphoplasty",
    approach: ApproachOpt = "bipedicular", balloon: BalloonOpt = 15, cement_volume: CementVolumeOpt = None,
    viscosity: ViscosityOpt = "medium", resolution: ResolutionOpt = 0.5, subregions: SubregionsOpt = None,
    fracture_age: FractureAgeOpt = None, resample_labels: ResampleOpt = False, figures: FiguresOpt = True,
    injection_start: InjectionStartOpt = None,
) -> None:
    """Simulate the procedure step by step; writes simulation.json, cavity/cement NIfTI masks (input
    orientation), a figure per step, the pressure–volume curve, heights and AP/lateral fluoroscopy."""
    lid = parse_level(level)
    simulation_params(injection_start)  # a bad clock fails before the inputs are read
    vol, lab, sub = load_inputs(ct, labels, subregions, resample_labels)
    pl = load_plan(plan)
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(out)
    result = run_simulation(vol, lab, sub, lid, pl, technique, approach, balloon, cement_volume, viscosity,
                            resolution, fracture_age, injection_start=injection_start)
    written = write_outputs(result, vol, out, figures=figures)
    c = result.cement
    bal = ", ".join(f"{b.side} {b.max_volume_ml:.1f} mL @ {b.max_pressure_psi:.0f} psi" for b in result.balloons)
    typer.echo(f"{result.level} {result.technique}: heights Ha {result.heights['before'].anterior_mm:.1f} → "
               f"{result.heights['after'].anterior_mm:.1f} mm; " + (f"balloons {bal}; " if bal else "") +
               f"cement {c.volume_ml:.2f} mL (fill {100 * c.fill_fraction:.0f} %, {c.stop_reason}); "
               f"leaks: {', '.join(l.type for l in c.leaks) or 'none'}")
    typer.echo(f"wrote {len(written)} files to {out}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
