"""``kyphosim plan``: transpedicular trajectories, margins, device sizing and fluoroscopy images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def plan_command(
    ct: Path = typer.Argument(..., help="CT image (NIfTI or DICOM series directory), HU"),
    labels: Path = typer.Option(..., "--labels", help="Vertebra label map (VerSe ids or TotalSegmentator)"),
    levels: str = typer.Option(..., "--levels", help="Levels to treat, e.g. L1 or L1,T12 or T12-L2"),
    approach: str = typer.Option("auto", "--approach", help="bipedicular | unipedicular | auto"),
    gauge: int = typer.Option(10, "--gauge", help="Working-cannula gauge: 8, 10 or 11"),
    subregions: Optional[Path] = typer.Option(None, "--subregions", help="Sub-region map (kyphosim or TPTBox ids)"),
    out: Path = typer.Option(..., "--out", help="Output folder"),
    resample_labels: bool = typer.Option(False, "--resample-labels", help="Resample labels onto the CT grid"),
    no_images: bool = typer.Option(False, "--no-images", help="Write plan.json only"),
) -> None:
    """Plan kyphoplasty access: writes plan.json, AP/lateral fluoroscopy PNGs per level and
    axial/sagittal views through each trajectory. Research use only."""
    from rich.progress import Progress

    from kyphosim.errors import InputError
    from kyphosim.fileio import write_json
    from kyphosim.imaging.io import load_ct, load_image, load_labels
    from kyphosim.planning.api import plan_procedure
    from kyphosim.planning.outputs import write_plan_images

    if approach not in ("auto", "bipedicular", "unipedicular"):
        raise InputError(f"--approach must be bipedicular, unipedicular or auto, got {approach!r}")
    vol = load_ct(ct)
    lab = load_labels(labels, reference=vol, resample=resample_labels)
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(out)
    sub = None
    if subregions is not None:
        sub = load_image(subregions)
        if sub.shape != lab.shape or not sub.same_grid(lab):
            raise InputError(f"sub-region map {subregions.name} is not on the CT grid")
    with Progress(transient=True) as prog:
        task = prog.add_task("planning", total=None)
        dbg: dict = {}
        plan = plan_procedure(vol, lab, levels, approach=approach, gauge=gauge, subregions=sub,
                              progress=lambda lp: prog.advance(task), debug=dbg)
    out.mkdir(parents=True, exist_ok=True)
    pd = plan.to_json_dict()
    files = [] if no_images else write_plan_images(vol, lab, pd, out, gauge=gauge, subregions=sub,
                                                   approach=approach)
    pd["files"] = files
    write_json(out / "plan.json", pd)
    for lv in pd["levels"]:
        state = "feasible" if lv["feasible"] else "NOT feasible"
        typer.echo(f"{lv['name']}: {lv['approach']} {state}; balloon {lv['balloon_length_mm']} mm; "
                   f"cement {lv['cement_volume_ml']}; {len(lv['trajectories'])} trajectory(ies)")
        for r in lv["reasons"]:
            typer.echo(f"    reason: {r}")
    typer.echo(f"wrote {out / 'plan.json'}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
