"""``kyphosim segment``: vertebra labels from a bare CT (classical pipeline, no downloaded weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def segment_command(
    ct: Path = typer.Argument(..., help="CT image: NIfTI file or DICOM series directory (HU)"),
    out: Path = typer.Option(..., "--out", help="Output label map (.nii.gz, VerSe ids, CT orientation)"),
    backend: str = typer.Option("auto", "--backend", help="auto | classic | totalsegmentator"),
    anchor: Optional[str] = typer.Option(None, "--anchor", help="Fix labels: NAME=<z mm>, e.g. L1=-410 "
                                         "(the body whose centre is nearest this world height)"),
    first_label: Optional[str] = typer.Option(None, "--first-label", help="Name of the most cranial vertebra found"),
    subregions: Optional[Path] = typer.Option(None, "--subregions", help="Also write the sub-region map here"),
    surface_fraction: float = typer.Option(0.3, "--surface-fraction",
                                           help="Mask boundary across the blurred bone edge: 0.3 keeps the "
                                           "partial-volume voxel (human-mask convention), 0.5 = half-maximum "
                                           "surface (classic backend)"),
) -> None:
    """Segment and label the vertebrae; writes the label map and a JSON sidecar (confidences, flags)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from kyphosim.fileio import write_json
    from kyphosim.imaging.io import load_ct, save_volume
    from kyphosim.segment import segment_spine

    if not str(out).lower().endswith((".nii", ".nii.gz")):
        from kyphosim.errors import InputError
        raise InputError(f"--out {out} must end with .nii.gz or .nii")
    vol = load_ct(ct)
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(Path(out).parent)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as prog:
        prog.add_task("segmenting vertebrae…", total=None)
        res = segment_spine(vol, backend=backend, anchor=anchor, first_label=first_label,
                            surface_fraction=surface_fraction)
    save_volume(res.labels, out)
    sub_path = subregions or Path(str(out).replace(".nii.gz", "").replace(".nii", "") + "_subregions.nii.gz")
    save_volume(res.subregions, sub_path)
    side = Path(str(out).replace(".nii.gz", "").replace(".nii", "") + ".json")
    summary = res.summary()
    summary.update({"ct": str(ct), "labels": str(out), "subregions": str(sub_path)})
    write_json(side, summary)
    typer.echo(f"{out}: {len(res.levels)} vertebrae ({res.method}{', AMBIGUOUS' if res.ambiguous else ''})")
    for lv in res.levels:
        fl = f"  [{', '.join(lv['flags'])}]" if lv["flags"] else ""
        typer.echo(f"  {lv['name']:>4}  confidence {lv['confidence']:.2f}{fl}")
    if res.ambiguous:
        typer.echo("  labels are ambiguous: check them, or fix them with --anchor NAME=<z mm> / --first-label NAME")
    typer.echo(f"  sidecar {side}")


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_command)
