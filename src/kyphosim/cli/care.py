"""``kyphosim care``: dated post-procedure care plan, patient handout, calendar and FHIR bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def care_command(
    date: str = typer.Option(..., "--date", help="Procedure date, YYYY-MM-DD (day 0 of the plan)"),
    levels: str = typer.Option(..., "--levels", help="Treated levels, e.g. 'L1' or 'T12,L1'"),
    out: Path = typer.Option(..., "--out", help="Output folder"),
    clinical: Optional[Path] = typer.Option(None, "--clinical", help="Clinical input (YAML/JSON) to personalise the plan"),
    assessment: Optional[Path] = typer.Option(None, "--assessment", help="assessment.json (morphometry for FHIR)"),
    technique: str = typer.Option("kyphoplasty", "--technique", help="kyphoplasty | vertebroplasty"),
) -> None:
    """Writes care_plan.json, handout.html, handout.pdf, care_plan.ics and fhir_bundle.json."""
    from kyphosim.care import make_care_plan, write_care_outputs
    from kyphosim.clinical.engine import normalise_assessment
    from kyphosim.clinical.input import load_clinical
    from kyphosim.errors import InputError
    from kyphosim.cli.options import level_ids_option

    if technique not in ("kyphoplasty", "vertebroplasty"):
        raise InputError(f"--technique: {technique!r} is not kyphoplasty or vertebroplasty")
    level_ids = level_ids_option(levels)
    c = load_clinical(clinical) if clinical is not None else None
    a = normalise_assessment(assessment) if assessment is not None else None
    plan = make_care_plan(date, level_ids, c, a, technique=technique)  # type: ignore[arg-type]
    paths = write_care_outputs(plan, out, clinical=c, assessment=a)
    for m in plan.milestones:
        when = m.start_date.isoformat() + (f" – {m.end_date.isoformat()}" if m.end_date else "")
        typer.echo(f"  {when:<25} {m.title}")
    fhir_note = "validated with fhir.resources (R4B)" if paths["fhir_validated"] else "not validated (fhir.resources not installed)"
    typer.echo(f"wrote {out}/care_plan.json, handout.html, handout.pdf, care_plan.ics, fhir_bundle.json ({fhir_note})")


def register(app: typer.Typer) -> None:
    app.command("care")(care_command)
