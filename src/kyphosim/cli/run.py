"""``kyphosim run``: the whole pathway on one CT."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def run_command(
    ct: Path = typer.Argument(..., help="CT image (NIfTI or DICOM series directory), HU"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Vertebra label map; omitted: segment the CT first"),
    clinical: Optional[Path] = typer.Option(None, "--clinical", help="Clinical input YAML/JSON (kyphosim.clinical/1)"),
    out: Path = typer.Option(..., "--out", help="Output folder"),
    subregions: Optional[Path] = typer.Option(None, "--subregions", help="Sub-region map (kyphosim or TPTBox ids)"),
    levels: Optional[str] = typer.Option(None, "--levels", help="Treated levels, e.g. L1 or T12,L1 (default: decided)"),
    date: Optional[str] = typer.Option(None, "--date", help="Procedure date YYYY-MM-DD for the care plan"),
    approach: str = typer.Option("auto", "--approach", help="bipedicular | unipedicular | auto"),
    gauge: int = typer.Option(10, "--gauge", help="Working cannula gauge (8–11)"),
    no_simulation: bool = typer.Option(False, "--no-simulation", help="Skip the procedure simulation"),
    no_strength: bool = typer.Option(False, "--no-strength", help="Skip the finite-element strength"),
    resample_labels: bool = typer.Option(False, "--resample-labels", help="Resample labels onto the CT grid"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display"),
) -> None:
    """assess → decide → plan → simulate → strength → care → report; stages without inputs are skipped
    with a stated reason. Writes report.html, report.pdf, run.json and one folder per stage."""
    from kyphosim.errors import InputError
    from kyphosim.imaging import load_ct, load_labels
    from kyphosim.cli.options import level_names_option
    from kyphosim.workflow import PathwayOptions, run_pathway

    if approach not in ("auto", "bipedicular", "unipedicular"):
        raise InputError(f"--approach must be bipedicular, unipedicular or auto, not {approach!r}")
    if not 8 <= gauge <= 13:
        raise InputError(f"--gauge {gauge} is outside 8–13 G")
    level_names = level_names_option(levels)
    ct_vol = load_ct(ct)
    if labels is None:
        from kyphosim.segment import segment_spine

        seg = segment_spine(ct_vol)
        lab_vol = seg.labels
    else:
        lab_vol = load_labels(labels, reference=ct_vol, resample=resample_labels)
    if level_names:
        from kyphosim.imaging.io import vertebra_ids_present
        from kyphosim.imaging.labels import vertebra_id, vertebra_name

        present = set(vertebra_ids_present(lab_vol))
        absent = [n for n in level_names if vertebra_id(n) not in present]
        if absent:  # a level the user named that is not there: stop before the run, as plan/simulate do
            raise InputError(f"--levels: {', '.join(absent)} not in the label map (present: "
                             f"{', '.join(vertebra_name(i) for i in vertebra_ids_present(lab_vol)) or 'none'})")
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(out)
    opts = PathwayOptions(levels=level_names, procedure_date=date, approach=approach, gauge=gauge,
                          simulate=not no_simulation, strength=not no_strength)
    res = run_pathway(ct_vol, lab_vol, out, clinical=clinical, subregions=subregions, options=opts,
                      progress=not quiet)
    for k, v in res.stages.items():
        typer.echo(f"  {k:<9} {v['status']:<8} {v['seconds']:6.1f} s  {v['reason']}")
    typer.echo(f"report: {res.out_dir / 'report.html'}")
    if any(v["status"] == "failed" for v in res.stages.values()):
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
