"""Plan images: AP/lateral fluoroscopy with the cannulas and views through each trajectory."""

from __future__ import annotations

from pathlib import Path

from kyphosim.imaging.volume import Volume

__all__ = ["write_plan_images"]


def write_plan_images(ct: Volume, labels: Volume, plan: dict, out: Path, *, gauge: int,
                      subregions: Volume | None = None, approach: str | None = None) -> list[str]:
    """Write ``{level}_{ap,lateral}.png`` and ``{level}_{side}_trajectory.png`` into ``out``.

    ``plan`` is a ``kyphosim.plan/1`` dict; ``approach`` (default: each level's own) is the approach
    used to re-derive the pedicle raster for the trajectory views. Returns the file names written.
    """
    from kyphosim.planning.api import canonical_inputs, plan_level
    from kyphosim.planning.figures import fluoro_for_plan, save_drr_png, save_trajectory_views

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for lv in plan["levels"]:
        for view in ("ap", "lateral"):
            drr, trajs = fluoro_for_plan(ct, plan, lv["label"], view, labels=labels)
            f = out / f"{lv['name']}_{view}.png"
            save_drr_png(drr, f, trajectories=trajs, title=f"{lv['name']} {view.upper()} — {lv['approach']}")
            files.append(f.name)
        if lv["trajectories"]:
            _, lab_c, sub_c = canonical_inputs(None, labels, subregions)  # as plan_procedure
            _, dbg = plan_level(lab_c, lv["label"], approach=approach or lv["approach"], gauge=gauge,
                                subregions=sub_c)
            for t in lv["trajectories"]:
                f = out / f"{lv['name']}_{t['side']}_trajectory.png"
                save_trajectory_views(ct, dbg["raster"], t, f)
                files.append(f.name)
    return files
