"""``kyphosim compare``: kyphoplasty and vertebroplasty of the same level, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def compare_command(
    ct: Path = typer.Argument(..., help="CT image (NIfTI file or DICOM series directory), HU"),
    labels: Path = typer.Option(..., "--labels", help="Vertebra label map"),
    level: str = typer.Option(..., "--level", help="Level to treat, e.g. L1"),
    out: Path = typer.Option(..., "--out", help="Output folder"),
    plan: Optional[Path] = typer.Option(None, "--plan", help="kyphosim.plan/1 JSON"),
    approach: str = typer.Option("bipedicular", "--approach", help="bipedicular | unipedicular"),
    balloon: float = typer.Option(15, "--balloon", help="Balloon length, mm"),
    cement_volume: Optional[float] = typer.Option(None, "--cement-volume", help="Target cement volume, mL (both)"),
    viscosity: str = typer.Option("medium", "--viscosity", help="low | medium | high"),
    resolution: float = typer.Option(0.5, "--resolution", help="Model grid spacing, mm"),
    subregions: Optional[Path] = typer.Option(None, "--subregions", help="Sub-region map"),
    fracture_age: Optional[str] = typer.Option(None, "--fracture-age", help="acute | chronic"),
    resample_labels: bool = typer.Option(False, "--resample-labels", help="Resample labels onto the CT grid"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write figures"),
) -> None:
    """Run kyphoplasty and vertebroplasty on the same level; writes comparison.json, both
    simulations (kp_/vp_ prefixes) and comparison.png."""
    from kyphosim.cli.simulate import load_inputs, load_plan, run_simulation, write_outputs
    from kyphosim.errors import InputError
    from kyphosim.fileio import write_json
    from kyphosim.imaging.labels import vertebra_id

    try:
        lid = vertebra_id(level)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    vol, lab, sub = load_inputs(ct, labels, subregions, resample_labels)
    pl = load_plan(plan)
    res = {}
    for tech, tag in (("kyphoplasty", "kp"), ("vertebroplasty", "vp")):
        res[tag] = run_simulation(vol, lab, sub, lid, pl, tech, approach, balloon, cement_volume, viscosity,
                                  resolution, fracture_age, label=f" {tag}")
        write_outputs(res[tag], vol, out, figures=figures, prefix=f"{tag}_")

    def row(r):
        return {"technique": r.technique, "heights_after": r.heights["after"].model_dump(),
                "anterior_height_gain_mm": r.anterior_height_gain_mm,
                "height_restoration_pct": r.height_restoration_pct,
                "kyphotic_angle_change_deg": r.kyphotic_angle_change_deg,
                "cavity_volume_ml": r.cavity_volume_ml, "cement_volume_ml": r.cement.volume_ml,
                "fill_fraction": r.cement.fill_fraction, "leaks": [l.model_dump() for l in r.cement.leaks],
                "max_balloon_pressure_kpa": max((b.max_pressure_kpa for b in r.balloons), default=None)}

    summary = {"schema": "kyphosim.simulation-compare/1", "level": res["kp"].level,
               "heights_before": res["kp"].heights["before"].model_dump(),
               "kyphoplasty": row(res["kp"]), "vertebroplasty": row(res["vp"])}
    write_json(out / "comparison.json", summary)
    if figures:
        from kyphosim.simulation.figures import compare_figure

        compare_figure(res["kp"], res["vp"], out / "comparison.png")
    kp, vp = res["kp"], res["vp"]
    typer.echo(f"{kp.level}: Ha gain KP {kp.anterior_height_gain_mm:+.1f} mm vs VP {vp.anterior_height_gain_mm:+.1f} mm; "
               f"cement KP {kp.cement.volume_ml:.1f} mL vs VP {vp.cement.volume_ml:.1f} mL; "
               f"leaks KP {len(kp.cement.leaks)} vs VP {len(vp.cement.leaks)}")
    typer.echo(f"wrote comparison.json, comparison.png and both simulations to {out}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
