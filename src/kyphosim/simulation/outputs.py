"""Simulation outputs: one writer for ``simulation.json``, the cavity/cement masks and the figures,
used by ``kyphosim simulate``/``kyphosim compare`` and by the pathway's simulate step."""

from __future__ import annotations

from pathlib import Path

from kyphosim.imaging.volume import Volume

__all__ = ["write_simulation_outputs"]


def write_simulation_outputs(result, ct: Volume, out: Path, *, figures: bool = True, prefix: str = "",
                             figures_dir: Path | None = None) -> dict[str, object]:
    """Write ``{prefix}simulation.json``, ``{prefix}cavity.nii.gz`` and ``{prefix}cement.nii.gz``
    (input orientation, via ``save_volume``) into ``out`` and, when ``figures``, the step figures,
    pressure–volume curve, heights and fluoroscopy into ``figures_dir`` (default ``out``).

    Returns ``{"simulation": Path, "cavity": Path, "cement": Path, "figures": [Path, ...]}``.
    """
    from kyphosim.fileio import write_json
    from kyphosim.imaging.io import save_volume

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, object] = {
        "simulation": Path(write_json(out / f"{prefix}simulation.json", result.to_json_dict())),
        "cavity": Path(save_volume(result.cavity, out / f"{prefix}cavity.nii.gz")),
        "cement": Path(save_volume(result.cement_mask, out / f"{prefix}cement.nii.gz")),
        "figures": [],
    }
    if figures:
        from kyphosim.simulation.figures import write_figures

        paths["figures"] = [Path(p) for p in write_figures(result, ct, Path(figures_dir or out))]
    return paths
