"""``kyphosim fluoro``: a simulated C-arm image (DRR) of a level, with planned cannulas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer


def fluoro_command(
    ct: Path = typer.Argument(..., help="CT image (NIfTI or DICOM series directory), HU"),
    level: str = typer.Option(..., "--level", help="Level at the isocentre, e.g. L1"),
    view: str = typer.Option("ap", "--view", help="ap | lateral | oblique-left | oblique-right"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Vertebra label map (centres the level)"),
    plan: Optional[Path] = typer.Option(None, "--plan", help="plan.json: draws its cannulas"),
    out: Path = typer.Option(..., "--out", help="Output PNG"),
    size: int = typer.Option(512, "--size", help="Detector matrix (pixels)"),
) -> None:
    """Render a fluoroscopy-like DRR (cone beam, SDD 1000 mm, SID 700 mm). Research use only."""
    from kyphosim.errors import InputError
    from kyphosim.imaging.io import label_centroids_world, load_ct, load_labels
    from kyphosim.imaging.labels import vertebra_id, vertebra_name
    from kyphosim.planning.api import plan_instruments
    from kyphosim.planning.figures import save_drr_png
    from kyphosim.planning.fluoro import VIEWS, render_drr

    if view not in VIEWS:
        raise InputError(f"--view must be one of {', '.join(VIEWS)}, got {view!r}")
    try:
        lid = vertebra_id(level)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    vol = load_ct(ct)
    lab = load_labels(labels, reference=vol, resample=True) if labels is not None else None
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(Path(out).parent)
    plan_d = None
    if plan is not None:
        try:
            plan_d = json.loads(Path(plan).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read plan {plan}: {exc}") from None
        if plan_d.get("schema") != "kyphosim.plan/1":
            raise InputError(f"{plan} is not a kyphosim plan (schema {plan_d.get('schema')!r})")
    iso, up, direction, trajs = None, (0.0, 0.0, 1.0), None, []
    lv = None
    if plan_d is not None:
        lv = next((l for l in plan_d["levels"] if int(l["label"]) == lid), None)
    if lv is not None:
        iso, up, trajs = lv["centroid_mm"], lv.get("frame_si", up), lv["trajectories"]
        if view.startswith("oblique"):
            t = next((t for t in trajs if t["side"] == view.split("-")[1]), None)
            if t is not None:
                direction = -(np.asarray(t["target_mm"]) - np.asarray(t["entry_mm"]))
    elif lab is not None:
        cents = label_centroids_world(lab)
        if lid not in cents:
            raise InputError(f"level {vertebra_name(lid)} is not in {labels.name}")
        iso = cents[lid]
    else:
        typer.echo("no labels or plan: isocentre at the centre of the CT", err=True)
    overlays = {}
    if lab is not None:
        overlays["vertebra"] = lab.with_data((lab.data == lid).astype(np.uint8))
    kw = {"direction": direction} if direction is not None else {}
    drr = render_drr(vol, view, isocenter_mm=iso, instruments=plan_instruments(plan_d, level=lid) if plan_d else [],
                     overlays=overlays, rows=size, up=up, **kw)
    save_drr_png(drr, out, trajectories=trajs, title=f"{vertebra_name(lid)} {view}")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("fluoro")(fluoro_command)
