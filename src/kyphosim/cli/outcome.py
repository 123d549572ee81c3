"""``kyphosim outcome add|import|show``: follow-up pain (NRS) and disability (ODI) per visit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

outcome_app = typer.Typer(help="Record follow-up pain (NRS) and disability (ODI); compare with trials; flag problems.",
                          no_args_is_help=True)


def _report(case: Path) -> None:
    from kyphosim.outcomes import refresh_outcome_outputs

    paths = refresh_outcome_outputs(case)
    a = paths["result"]
    for v in a.visits:
        ch = "" if v.nrs_change is None else f" ({v.nrs_change:+.1f})"
        typer.echo(f"  {v.date.isoformat()}  day {v.day:>4}  NRS {'' if v.nrs is None else f'{v.nrs:g}'}{ch}"
                   f"  ODI {'' if v.odi_pct is None else f'{v.odi_pct:g}'}{'  NEW FRACTURE' if v.new_fracture else ''}")
    for f in a.flags:
        typer.echo(f"FLAG {f.kind}: {f.message}")
    typer.echo(f"wrote {case / 'outcomes.json'}, {paths['analysis'].name}, {paths['figure'].name}")


@outcome_app.command("add")
def add_command(
    case: Path = typer.Option(..., "--case", help="Case folder (holds outcomes.json; care_plan.json gives the procedure date)"),
    date: str = typer.Option(..., "--date", help="Visit date, YYYY-MM-DD"),
    nrs: Optional[float] = typer.Option(None, "--nrs", help="Pain, 0–10 numeric rating scale"),
    odi: Optional[float] = typer.Option(None, "--odi", help="Oswestry Disability Index, 0–100 %"),
    new_fracture: bool = typer.Option(False, "--new-fracture", help="A new vertebral fracture was found"),
    note: str = typer.Option("", "--note", help="Free text"),
    procedure_date: Optional[str] = typer.Option(None, "--procedure-date", help="Procedure date (first visit only)"),
    baseline_nrs: Optional[float] = typer.Option(None, "--baseline-nrs", help="Pre-procedure NRS"),
    baseline_odi: Optional[float] = typer.Option(None, "--baseline-odi", help="Pre-procedure ODI %"),
) -> None:
    """Add one follow-up visit (same date replaces) and re-analyse."""
    from kyphosim.outcomes import add_visit

    add_visit(case, date=date, nrs=nrs, odi_pct=odi, new_fracture=new_fracture, note=note,
              procedure_date=procedure_date, baseline_nrs=baseline_nrs, baseline_odi_pct=baseline_odi)
    _report(case)


@outcome_app.command("import")
def import_command(
    case: Path = typer.Option(..., "--case", help="Case folder"),
    csv_path: Path = typer.Argument(..., help="CSV with header date,nrs,odi[,new_fracture][,note]"),
    procedure_date: Optional[str] = typer.Option(None, "--procedure-date", help="Procedure date (new log only)"),
) -> None:
    """Import visits from a CSV file and re-analyse."""
    from kyphosim.outcomes import import_csv

    import_csv(case, csv_path, procedure_date=procedure_date)
    _report(case)


@outcome_app.command("show")
def show_command(case: Path = typer.Option(..., "--case", help="Case folder")) -> None:
    """Re-analyse: writes outcome_analysis.json and outcome_course.png and prints the flags."""
    _report(case)


def register(app: typer.Typer) -> None:
    app.add_typer(outcome_app, name="outcome")
