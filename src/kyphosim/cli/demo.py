"""``kyphosim demo``: the main job on the built-in phantom case."""

from __future__ import annotations

from pathlib import Path

import typer


def demo_command(
    out: Path = typer.Option(Path("kyphosim-demo"), "--out", help="Output folder (report.html and all results)"),
    spacing: float = typer.Option(1.0, "--spacing", help="Phantom voxel size, mm"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display"),
) -> None:
    """Run assess → decide → plan → simulate → strength → care → report on a built-in phantom
    (painful acute L1 wedge fracture, grade 2, osteoporotic bone). Needs no data and no network."""
    from kyphosim.workflow import run_demo

    res = run_demo(out, progress=not quiet, spacing_mm=spacing)
    failed = {k: v for k, v in res.stages.items() if v["status"] == "failed"}
    for k, v in res.stages.items():
        typer.echo(f"  {k:<9} {v['status']:<8} {v['seconds']:6.1f} s  {v['reason']}")
    typer.echo(f"report: {res.out_dir / 'report.html'}")
    if failed:
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
