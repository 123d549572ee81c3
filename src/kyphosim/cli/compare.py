"""``kyphosim compare``: kyphoplasty and vertebroplasty of the same level, side by side."""

from __future__ import annotations

import typer

from kyphosim.cli.simulate import (ApproachOpt, BalloonOpt, CementVolumeOpt, CtArg, FiguresOpt, FractureAgeOpt,
                                   InjectionStartOpt, LabelsOpt, LevelOpt, OutOpt, PlanOpt, ResampleOpt, ResolutionOpt,
                                   SubregionsOpt, ViscosityOpt, parse_level, simulation_params)


def compare_command(
    ct: CtArg, labels: LabelsOpt, level: LevelOpt, out: OutOpt, plan: PlanOpt = None,
    approach: ApproachOpt = "bipedicular", balloon: BalloonOpt = 15, cement_volume: CementVolumeOpt = None,
    viscosity: ViscosityOpt = "medium", resolution: ResolutionOpt = 0.5, subregions: SubregionsOpt = None,
    fracture_age: FractureAgeOpt = None, resample_labels: ResampleOpt = False, figures: FiguresOpt = True,
    injection_start: InjectionStartOpt = None,
) -> None:
    """Run kyphoplasty and vertebroplasty on the same level; writes comparison.json, both
    simulations (kp_/vp_ prefixes) and comparison.png."""
    from kyphosim.cli.simulate import load_inputs, load_plan, run_simulation, write_outputs
    from kyphosim.fileio import write_json

    lid = parse_level(level)
    simulation_params(injection_start)  # a bad clock fails before the inputs are read
    vol, lab, sub = load_inputs(ct, labels, subregions, resample_labels)
    pl = load_plan(plan)
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(out)
    res = {}
    for tech, tag in (("kyphoplasty", "kp"), ("vertebroplasty", "vp")):
        res[tag] = run_simulation(vol, lab, sub, lid, pl, tech, approach, balloon, cement_volume, viscosity,
                                  resolution, fracture_age, label=f" {tag}", injection_start=injection_start)
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
