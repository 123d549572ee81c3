"""``kyphosim decide``: per-level indication decision from a clinical file and a CT assessment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def decide_command(
    clinical: Path = typer.Option(..., "--clinical", help="Clinical input (YAML or JSON, schema kyphosim.clinical/1)"),
    assessment: Optional[Path] = typer.Option(None, "--assessment",
                                              help="assessment.json from `kyphosim assess` (kyphosim.assessment/1)"),
    out: Path = typer.Option(..., "--out", help="Output folder: decision.json and decision.html"),
    levels: Optional[str] = typer.Option(None, "--levels", help="Only these levels, e.g. 'L1' or 'T12,L1'"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Alternative rules table (YAML, kyphosim.rules/1)"),
) -> None:
    """Indicated / relative contraindication / contraindicated / insufficient information, per level, with reasons."""
    from kyphosim.clinical import decision_html, evaluate, load_clinical, load_rules
    from kyphosim.fileio import write_json, write_text
    from kyphosim.cli.options import level_names_option

    c = load_clinical(clinical)
    table = load_rules(rules) if rules is not None else None
    level_names = level_names_option(levels)
    d = evaluate(c, assessment, rules=table, levels=level_names)
    write_json(Path(out) / "decision.json", d.to_dict())
    write_text(Path(out) / "decision.html",
               "<!doctype html><html><head><meta charset='utf-8'><title>kyphosim decision</title></head>"
               f"<body style='font-family:sans-serif;max-width:60em;margin:auto'>{decision_html(d)}"
               f"<p><small>{d.research_notice}</small></p></body></html>\n")
    for lv in d.levels:
        typer.echo(f"{lv.level:>4}  {lv.verdict:<26} {', '.join(r.id for r in lv.fired if r.verdict == lv.verdict)}"
                   + (f"  missing: {', '.join(lv.missing_facts)}" if lv.missing_facts else ""))
    for n in d.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"wrote {Path(out) / 'decision.json'}")


def register(app: typer.Typer) -> None:
    app.command("decide")(decide_command)
