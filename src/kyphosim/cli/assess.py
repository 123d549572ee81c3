"""``kyphosim assess``: vertebral morphometry, Genant grading, kyphosis and bone density of a spine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def assess_command(
    ct: Optional[Path] = typer.Argument(None, help="CT image (NIfTI file or DICOM series directory); "
                                                   "omit for morphometry from the labels only"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Vertebra label map (VerSe or TotalSegmentator); "
                                          "omit to segment the CT first (kyphosim segment)"),
    subregions: Optional[Path] = typer.Option(None, "--subregions",
                                              help="Sub-region map (kyphosim ids or TPTBox 41–50)"),
    resample_labels: bool = typer.Option(False, "--resample-labels",
                                         help="Resample labels onto the CT grid when the grids differ"),
    out: Path = typer.Option(..., "--out", help="Output folder (assessment.json and figures)"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the PNG figures"),
) -> None:
    """Heights Ha/Hm/Hp (mm), Genant grade and type, wedge and kyphotic angles (deg), trabecular HU,
    vBMD (mg/cm³) and posterior-wall bulge (mm) per vertebra; writes DIR/assessment.json and figures."""
    from rich.progress import BarColumn, Progress, TextColumn

    from kyphosim.assess.api import assess_spine_detailed
    from kyphosim.errors import InputError
    from kyphosim.fileio import write_json
    from kyphosim.imaging.io import load_ct, load_image, load_labels

    vol = load_ct(ct) if ct is not None else None
    if labels is None:
        if vol is None:
            raise InputError("give a CT (it is then segmented automatically) or --labels")
        from kyphosim.segment import segment_spine

        seg = segment_spine(vol)
        lab = seg.labels
        if seg.ambiguous:
            typer.echo("kyphosim: warning: automatic vertebra labels are ambiguous (no landmark in view); "
                       "check them or pass --labels", err=True)
    else:
        lab = load_labels(labels, reference=vol, resample=resample_labels)
    sub = None
    if subregions is not None:
        sub = load_image(subregions)
        if not sub.same_grid(lab):
            if not resample_labels:
                raise InputError(f"sub-regions {subregions.name} are not on the label grid; "
                                 f"pass --resample-labels to resample them")
            from kyphosim.imaging.volume import Volume
            sub = Volume(sub.data, sub.affine, is_label=True).resample(like=lab)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("[bold]assess[/] {task.description}"), BarColumn(), transient=True) as prog:
        task = prog.add_task("vertebrae", total=None)
        result, geos, lab_used = assess_spine_detailed(
            vol, lab, subregions=sub, resample_labels=resample_labels,
            progress=lambda name: prog.update(task, description=name))
    result.inputs.update({"ct": str(ct) if ct else None, "labels": str(labels) if labels else "kyphosim.segment",
                          "subregions": str(subregions) if subregions else None})
    write_json(out / "assessment.json", result.to_json_dict())
    written = ["assessment.json"]
    if figures:
        from kyphosim.assess.figures import level_figure, spine_figure

        for lv in result.levels:
            g = geos.get(lv.label)
            if g is None:
                continue
            p = level_figure(out / f"level_{lv.name}.png", g, lv, ct=vol, labels=lab_used)
            written.append(p.name)
        if geos:
            spine_figure(out / "spine.png", geos, result, ct=vol, labels=lab_used)
            written.append("spine.png")
    for lv in result.levels:
        hs = "/".join("–" if h is None else f"{h:.1f}" for h in
                      (lv.height_anterior_mm, lv.height_middle_mm, lv.height_posterior_mm))
        grade = "–" if lv.genant_grade is None else str(lv.genant_grade)
        extra = f" HU {lv.trabecular_hu:.0f}" if lv.trabecular_hu is not None else ""
        typer.echo(f"{lv.name:>4}  Ha/Hm/Hp {hs} mm  Genant {grade} {lv.genant_type or ''}"
                   f"{extra}{'  [' + ', '.join(lv.flags) + ']' if lv.flags else ''}")
    sp = result.spine
    typer.echo(f"SDI {sp.sdi if sp.sdi is not None else '–'} (partial {sp.sdi_partial}); regional "
               f"{sp.regional_levels or ''} {'' if sp.regional_kyphosis_deg is None else f'{sp.regional_kyphosis_deg:+.1f}°'}; "
               f"L1 HU {sp.l1_trabecular_hu if sp.l1_trabecular_hu is not None else '–'} → {sp.osteoporosis or '–'}")
    typer.echo(f"wrote {out}/ ({len(written)} files)")


def register(app: typer.Typer) -> None:
    app.command("assess")(assess_command)
