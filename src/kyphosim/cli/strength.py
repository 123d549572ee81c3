"""``kyphosim strength``: voxel finite-element stiffness and failure load of a vertebra (intact / fractured /
augmented)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kyphosim.errors import InputError


def _ids(spec: Optional[str], what: str) -> Optional[list[int]]:
    if spec is None or spec.strip().lower() in ("", "auto"):
        return None
    try:
        return [int(x) for x in spec.replace(" ", "").split(",") if x]
    except ValueError:
        raise InputError(f"{what} must be comma-separated label ids (e.g. 1,2,3,4), got {spec!r}") from None


def strength_command(
    image: Path = typer.Argument(..., help="Calibrated density image (mg/cm³) or CT in HU (NIfTI or DICOM folder)"),
    labels: Path = typer.Option(..., "--labels", help="Label map on the image grid (VerSe ids or spineFE labels)"),
    out: Path = typer.Option(..., "--out", help="Output folder (strength.json, maps, figure)"),
    level: Optional[str] = typer.Option(None, "--level", "--fractured-level",
                                        help="Vertebra to analyse (e.g. L1) in a VerSe/TotalSegmentator map"),
    bone: Optional[str] = typer.Option(None, "--bone", help="Bone label ids, e.g. 1,2,3,4 for spineFE masks"),
    caps: str = typer.Option("auto", "--caps", help="End-cap label ids 'inferior,superior' (e.g. 5,6) or 'auto'"),
    density: str = typer.Option("auto", "--density",
                                help="calibrated (image in mg/cm³ K2HPO4) | hu (CT, converted with --calibration) | "
                                     "auto (hu when the image holds air below −500)"),
    calibration: Optional[Path] = typer.Option(None, "--calibration",
                                               help="HU→density calibration file (spineFE/Ogo text, JSON/YAML, or numbers)"),
    law: str = typer.Option("kopperdahl", "--law", help="Density→modulus law: kopperdahl | kopperdahl-linear | morgan | cortical"),
    cement: Optional[Path] = typer.Option(None, "--cement", help="Cement mask (NIfTI); adds the augmented state"),
    intact_level: Optional[str] = typer.Option(None, "--intact-level",
                                               help="Unfractured level of the same scan used as the intact reference"),
    displacement_mm: float = typer.Option(0.2, "--displacement-mm", help="Axial displacement of the top face, mm"),
    resample_mm: Optional[float] = typer.Option(None, "--resample-mm", help="Isotropic element size, mm (default: voxels)"),
    cap_thickness_mm: float = typer.Option(3.0, "--cap-thickness-mm", help="Thickness of automatic caps beyond the endplate"),
    cement_modulus_mpa: float = typer.Option(2500.0, "--cement-modulus-mpa", help="Young's modulus of set PMMA cement"),
    tol: float = typer.Option(1e-6, "--tol", help="Relative residual at which the solver stops"),
    solver: str = typer.Option("gmg", "--solver", help="gmg (matrix-free + multigrid) | amg (assembled + pyamg) | jacobi"),
    maps: bool = typer.Option(True, "--maps/--no-maps", help="Write strain-energy / von Mises maps and the figure"),
    nonlinear: bool = typer.Option(True, "--nonlinear/--linear-only",
                                   help="Failure load from a nonlinear pushover (peak reaction); --linear-only keeps "
                                        "the linear critical-volume estimate"),
    nonlinear_resample_mm: Optional[str] = typer.Option("auto", "--nonlinear-resample-mm",
                                                        help="Element size of the pushover model, mm: a number, "
                                                             "'same' (the linear grid) or 'auto'"),
    max_strain: float = typer.Option(0.02, "--max-strain",
                                     help="Pushover end: platen displacement / loading height (apparent strain)"),
    max_displacement_mm: Optional[float] = typer.Option(None, "--max-displacement-mm",
                                                        help="Pushover end as a displacement, mm (spineFE: 2.0); "
                                                             "overrides --max-strain"),
    increments: int = typer.Option(10, "--increments", help="Pushover displacement increments"),
) -> None:
    """Stiffness (N/mm) and reaction force from a linear voxel-FE compression test between PMMA end caps, and
    the failure load (N) from a nonlinear displacement-controlled pushover (peak reaction; the linear estimate
    is kept beside it); intact / fractured / augmented side by side when --cement/--intact-level are given."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from kyphosim.fileio import write_json
    from kyphosim.imaging.io import load_image, load_labels
    from kyphosim.imaging.volume import Volume
    from kyphosim.mechanics.calibration import load_calibration
    from kyphosim.mechanics.maps import write_maps
    from kyphosim.mechanics.nonlinear import PushoverSettings
    from kyphosim.mechanics.strength import (COMPARISON_SCHEMA, AugmentationComparison, compare_augmentation,
                                             compute_strength)

    img = load_image(image)
    bone_ids = _ids(bone, "--bone")
    cap_ids = _ids(caps, "--caps")
    if cap_ids is not None and len(cap_ids) != 2:
        raise InputError(f"--caps needs two label ids (inferior,superior) or 'auto', got {caps!r}")
    if bone_ids is not None or cap_ids is not None:
        raw = load_image(labels)
        lab = Volume(raw.data, raw.affine, is_label=True, source_axcodes=raw.source_axcodes, meta=raw.meta)
    else:
        lab = load_labels(labels)
    if not lab.same_grid(img):
        raise InputError(f"labels {labels.name} are not on the image grid {img.shape}; resample them first")
    if density == "auto":
        # a CT in HU holds air (≈ −1000 HU); a calibrated density crop has a 0 background and at most
        # slightly negative densities
        density = "hu" if float(img.data.min()) < -500.0 else "calibrated"
    if density not in ("calibrated", "hu"):
        raise InputError(f"--density must be calibrated, hu or auto, got {density!r}")
    if density == "calibrated":
        import numpy as np

        # a vertebra is mostly trabecular bone: its median K2HPO4-equivalent density is ~20–250 mg/cm³
        # (QCT vBMD, clinical-reference.md; the spineFE vertebra: 111). A median ≤ 0 (blank image) or
        # > 600 (e.g. a CT in raw 0–4095 units, no air) is no calibrated density image.
        sel = np.isin(lab.data, bone_ids) if bone_ids else (lab.data > 0)
        if cap_ids and not bone_ids:
            sel &= ~np.isin(lab.data, cap_ids)
        med = float(np.median(img.data[sel])) if sel.any() else float("nan")
        if not 0.0 < med <= 600.0:
            raise InputError(f"{image.name}: the labelled bone has a median value of {med:g}, which is no calibrated "
                             f"density in mg/cm³ (vertebral bone ≈ 20–250); a CT must be in HU with air near −1000 "
                             f"(raw values without rescale slope/intercept?) and --density hu")
    cal = load_calibration(calibration) if calibration is not None else None
    cem = None
    if cement is not None:
        c = load_image(cement)
        cem = Volume(c.data, c.affine, is_label=True, source_axcodes=c.source_axcodes, meta=c.meta)
    nl_mm: object = "auto"
    spec = (nonlinear_resample_mm or "auto").strip().lower()
    if spec == "same":
        nl_mm = None
    elif spec != "auto":
        try:
            nl_mm = float(spec)
        except ValueError:
            raise InputError(f"--nonlinear-resample-mm must be a number, 'same' or 'auto', got {spec!r}") from None
        if not nl_mm > 0:
            raise InputError("--nonlinear-resample-mm must be positive")
    if not (0 < max_strain < 0.2) or increments < 1 or (max_displacement_mm is not None and max_displacement_mm <= 0):
        raise InputError("--max-strain must lie in (0, 0.2), --increments ≥ 1, --max-displacement-mm > 0")
    settings = PushoverSettings(max_apparent_strain=max_strain, max_displacement_mm=max_displacement_mm,
                                increments=increments)
    kwargs = dict(caps=tuple(cap_ids) if cap_ids else "auto", density=density, calibration=cal, law=law,
                  displacement_mm=displacement_mm, resample_mm=resample_mm, cap_thickness_mm=cap_thickness_mm,
                  cement_modulus_mpa=cement_modulus_mpa, tol=tol, solver=solver, nonlinear=nonlinear,
                  nonlinear_resample_mm=nl_mm, pushover_settings=settings)
    from kyphosim.cli.options import ensure_output_dir

    ensure_output_dir(out)
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("[bold]strength[/] {task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as prog:
        task = prog.add_task("loading", total=None)
        say = lambda msg: prog.update(task, description=msg)  # noqa: E731
        if cem is None and intact_level is None:
            single = compute_strength(img, lab, level=level, bone_labels=bone_ids, state="as_imaged",
                                      progress=say, **kwargs)
            comp = AugmentationComparison(COMPARISON_SCHEMA, {"as_imaged": single}, {})
        else:
            comp = compare_augmentation(img, lab, cem, level=level, bone_labels=bone_ids, intact_level=intact_level,
                                        progress=say, **kwargs)
        main = comp.states.get("fractured") or comp.states["as_imaged"]
        payload = main.to_dict()
        payload["state"] = "as_imaged"
        payload["inputs"] = {"image": str(image), "labels": str(labels), "level": level, "bone_labels": bone_ids,
                             "caps": cap_ids or "auto", "cement": str(cement) if cement else None}
        if len(comp.states) > 1:
            payload["comparison"] = comp.to_dict()
        out.mkdir(parents=True, exist_ok=True)
        if maps:
            prog.update(task, description="writing maps")
            for name, res in comp.states.items():
                write_maps(res, out, prefix="" if name in ("fractured", "as_imaged") else f"{name}_")
        write_json(out / "strength.json", payload)

    table = Table(title="Voxel-FE compression (stiffness: linear; failure load: "
                        + ("nonlinear pushover" if nonlinear else "linear estimate") + ")")
    for col in ("state", "stiffness (N/mm)", "reaction (N)", "failure load (N)", "linear estimate (N)", "elements",
                "iterations", "time (s)"):
        table.add_column(col, justify="right")
    for name, r in comp.states.items():
        its = str(r.solver["iterations"])
        if r.nonlinear:
            its += f" + {r.nonlinear['iterations_total']} secant"
        table.add_row(name.replace("_", " "), f"{r.stiffness_n_per_mm:,.0f}",
                      f"{r.reaction_force_n:,.0f}", f"{r.failure_load_n:,.0f}",
                      f"{r.failure_load_linear_estimate_n:,.0f}", f"{r.elements:,}", its, f"{r.seconds['total']:.1f}")
    Console().print(table)
    for key, ch in comp.changes.items():
        typer.echo(f"  {key.replace('_', ' ')}: stiffness {ch['stiffness_percent']:+.1f} %, "
                   f"failure load {ch['failure_load_percent']:+.1f} % "
                   f"(linear estimate {ch['failure_load_linear_estimate_percent']:+.1f} %)")
    for w in main.warnings:
        typer.echo(f"  warning: {w}", err=True)
    typer.echo(f"wrote {out / 'strength.json'}")


def register(app: typer.Typer) -> None:
    app.command("strength")(strength_command)
