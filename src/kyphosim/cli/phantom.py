"""``kyphosim phantom``: write a synthetic spine CT with labels, sub-regions and truth.json."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

FRACTURE_HELP = ("Fracture LEVEL:TYPE:GRADE[:acute|:chronic][:cleft][:cleft=gas|fluid][:retropulsion=MM], "
                 "TYPE wedge|biconcave|crush, GRADE 1–3 (Genant); repeat for several fractures. "
                 "E.g. L1:wedge:2, T12:crush:3:chronic:cleft, L2:biconcave:1:retropulsion=3")


def phantom_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created)"),
    levels: str = typer.Option("T11-L3", "--levels", help="Levels, e.g. T10-L3 or T12,L1,L2 (T1–L5)"),
    fracture: Optional[List[str]] = typer.Option(None, "--fracture", "-f", help=FRACTURE_HELP),
    bmd: float = typer.Option(85.0, "--bmd", help="Mean trabecular vBMD of the levels, mg/cm³"),
    spacing: str = typer.Option("1.0", "--spacing", help="Voxel size along the output array axes, mm: "
                                                          "one value or three (e.g. 0.8,0.8,1.5)"),
    orientation: str = typer.Option("LPS", "--orientation", help="Output voxel order, e.g. LPS, RAS, PIR"),
    seed: int = typer.Option(0, "--seed", help="Random seed (height loss draw, density, noise)"),
    noise: float = typer.Option(12.0, "--noise", help="CT noise SD at 1 mm³ voxels, HU"),
    no_soft_tissue: bool = typer.Option(False, "--no-soft-tissue", help="Bone, discs and canal only"),
    margin: Optional[float] = typer.Option(None, "--margin", help="Field of view = bone box + this margin, mm "
                                                                  "(default: torso-sized with air behind the back)"),
    size_sd: float = typer.Option(0.0, "--size-sd", help="Seeded between-subject size variability (SD of one "
                                                         "factor on every linear dimension, e.g. 0.05)"),
    hu_gain: float = typer.Option(1.0, "--hu-gain", help="Virtual scanner gain applied to every HU value"),
    hu_offset: float = typer.Option(0.0, "--hu-offset", help="Virtual scanner offset added to every HU value"),
    demo: bool = typer.Option(False, "--demo", help="The built-in demo case (acute L1 wedge grade 2, "
                                                     "osteoporotic); other options except --out/--spacing/--seed are ignored"),
) -> None:
    """Synthetic spine phantom: ct.nii.gz (HU), labels.nii.gz (VerSe ids), subregions.nii.gz, truth.json."""
    from rich.progress import Progress

    from kyphosim.anatomy.phantom import PhantomSpec, demo_case, make_phantom
    from kyphosim.anatomy.phantom.spec import parse_fracture, parse_spacing

    if demo:
        spec = demo_case(spacing_mm=parse_spacing(spacing), seed=seed)
    else:
        spec = PhantomSpec(levels=levels, fractures=[parse_fracture(f) for f in (fracture or [])],
                           bmd_mg_cm3=bmd, spacing_mm=parse_spacing(spacing), orientation=orientation,
                           seed=seed, noise_hu=noise, soft_tissue=not no_soft_tissue, margin_mm=margin,
                           size_sd=size_sd, hu_gain=hu_gain, hu_offset=hu_offset)
    with Progress(transient=True) as prog:
        task = prog.add_task("building phantom", total=len(spec.levels) + 1)
        ph = make_phantom(spec, progress=lambda name: prog.update(task, advance=1, description=f"drew {name}"))
        prog.update(task, description="writing")
        ph.save(out)
        prog.update(task, advance=1)
    typer.echo(f"phantom {spec.levels[0]}–{spec.levels[-1]}  {ph.ct.shape} voxels of "
               f"{', '.join(f'{v:g}' for v in ph.ct.spacing)} mm  {''.join(ph.ct.axcodes)}  → {out}")
    for lv in ph.truth["levels"]:
        fr = lv["fracture"]
        tag = f"  {fr['type']} grade {lv['genant_grade']} ({fr['age']})" if fr else ""
        typer.echo(f"  {lv['name']:>4}  Ha {lv['height_anterior_mm']:5.1f}  Hm {lv['height_middle_mm']:5.1f}  "
                   f"Hp {lv['height_posterior_mm']:5.1f} mm  loss {lv['height_loss_pct']:5.1f} %  "
                   f"vBMD {lv['vbmd_mg_cm3']:5.1f} mg/cm³  {lv['trabecular_hu']:6.1f} HU{tag}")


def register(app: typer.Typer) -> None:
    app.command("phantom")(phantom_command)
