"""``kyphosim info``: what is in an image (and its labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from kyphosim.imaging.io import check_ct, label_centroids_world, load_image, load_labels
from kyphosim.imaging.labels import vertebra_name


def info_command(
    path: Path = typer.Argument(..., help="CT image: NIfTI file or DICOM series directory"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Vertebra label map (VerSe or TotalSegmentator)"),
    resample_labels: bool = typer.Option(False, "--resample-labels",
                                         help="Resample labels onto the CT grid when the grids differ"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text"),
) -> None:
    """Modality check, shape, spacing (mm), orientation, HU range and vertebrae with world centroids (mm)."""
    import json

    from kyphosim.fileio import to_jsonable

    vol = load_image(path)
    check_ct(vol)
    out = {
        "path": str(path),
        "modality": vol.meta.get("modality") or "CT (values are Hounsfield units)",
        "shape": list(vol.shape),
        "spacing_mm": [round(float(s), 4) for s in vol.spacing],
        "orientation": "".join(vol.axcodes),
        "hu_min": float(np.min(vol.data)),
        "hu_max": float(np.max(vol.data)),
        "vertebrae": [],
    }
    if labels is not None:
        lab = load_labels(labels, reference=vol, resample=resample_labels)
        for vid, c in label_centroids_world(lab).items():
            out["vertebrae"].append({"label": vid, "name": vertebra_name(vid),
                                     "centroid_mm": [round(float(v), 2) for v in c],
                                     "voxels": int(np.count_nonzero(lab.data == vid))})
    if as_json:
        typer.echo(json.dumps(to_jsonable(out), indent=2))
        return
    typer.echo(f"{out['path']}\n  modality     {out['modality']}\n  shape        {out['shape']}\n"
               f"  spacing      {out['spacing_mm']} mm\n  orientation  {out['orientation']}\n"
               f"  HU range     {out['hu_min']:g} … {out['hu_max']:g}")
    if labels is not None:
        typer.echo(f"  vertebrae    {len(out['vertebrae'])}")
        for v in out["vertebrae"]:
            x, y, z = v["centroid_mm"]
            typer.echo(f"    {v['name']:>4} ({v['label']:>2})  centroid RAS ({x:8.2f}, {y:8.2f}, {z:8.2f}) mm")


def register(app: typer.Typer) -> None:
    app.command("info")(info_command)
