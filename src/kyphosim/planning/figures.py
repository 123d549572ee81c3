"""Planning figures: fluoroscopy images with the cannulas drawn in, and reformatted axial/sagittal
views through each trajectory with the clearances annotated (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kyphosim.fileio import atomic_path
from kyphosim.imaging.volume import Volume
from kyphosim.planning.fluoro import render_drr
from kyphosim.planning.fluoro.render import DRR

__all__ = ["save_drr_png", "fluoro_for_plan", "save_trajectory_views"]

_SIDE_COLOURS = {"left": "#ff5a36", "right": "#2f9bff"}


def save_drr_png(drr: DRR, path, *, trajectories=(), title: str | None = None, outline_colour: str = "#ffd400") -> Path:
    """Save a DRR as a fluoroscopy-like PNG; trajectories (dicts with entry_mm/target_mm/side) are
    marked at their ends, overlays drawn as outlines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = drr.geometry
    fig = plt.figure(figsize=(g.cols / 100, g.rows / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(drr.display(), cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    for name, sil in drr.overlays.items():
        if np.any(sil > 0):
            ax.contour(sil > 0.5 * drr.step_mm, levels=[0.5], colors=[outline_colour], linewidths=0.8)
    for t in trajectories:
        e, p = drr.project(np.asarray(t["entry_mm"])), drr.project(np.asarray(t["target_mm"]))
        c = _SIDE_COLOURS.get(t.get("side"), "#ffffff")
        ax.plot([e[1], p[1]], [e[0], p[0]], ":", color=c, lw=0.8)
        ax.plot(p[1], p[0], "o", ms=3, mfc="none", mec=c)
    if title:
        ax.text(6, 14, title, color="w", fontsize=8, va="top")
    ax.text(g.cols - 6, g.rows - 6, "simulated — research use only", color="#bbbbbb", fontsize=6,
            ha="right", va="bottom")
    ax.set_xlim(-0.5, g.cols - 0.5)
    ax.set_ylim(g.rows - 0.5, -0.5)
    ax.axis("off")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def fluoro_for_plan(ct: Volume, plan_dict: dict, level_label: int, view: str, *, labels: Volume | None = None,
                    rows: int = 512, outlines: bool = True) -> tuple[DRR, list]:
    """Render one view of a planned level with its cannulas (and pedicle/body outlines)."""
    from kyphosim.planning.api import plan_instruments

    lv = next(l for l in plan_dict["levels"] if int(l["label"]) == int(level_label))
    trajs = lv.get("trajectories", [])
    kw = {}
    if view in ("oblique-left", "oblique-right"):
        side = view.split("-")[1]
        t = next((t for t in trajs if t["side"] == side), None)
        if t is not None:
            kw["direction"] = -(np.asarray(t["target_mm"]) - np.asarray(t["entry_mm"]))
    overlays = {}
    if outlines and labels is not None:
        overlays["vertebra"] = labels.with_data((labels.data == int(level_label)).astype(np.uint8))
    drr = render_drr(ct, view, isocenter_mm=lv["centroid_mm"], instruments=plan_instruments(plan_dict, level=level_label),
                     overlays=overlays, rows=rows, up=lv.get("frame_si", (0, 0, 1)), **kw)
    return drr, trajs


def save_trajectory_views(ct: Volume, raster, traj: dict, path, *, labels: Volume | None = None) -> Path:
    """Axial-oblique and sagittal-oblique CT reformats containing the trajectory, cannula drawn,
    clearances annotated."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = np.asarray(traj["entry_mm"], float)
    p = np.asarray(traj["target_mm"], float)
    d = (p - e) / np.linalg.norm(p - e)
    si = raster.frame.si
    lat = np.cross(si, d)
    lat /= np.linalg.norm(lat)
    up = np.cross(d, lat)
    centre = 0.5 * (e + p)
    half = 0.5 * np.linalg.norm(p - e) + 15.0
    res = 0.4
    s = np.arange(-half, half + res / 2, res)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    r = traj["cannula_outer_diameter_mm"] / 2
    for ax, v, name in ((axes[0], lat, "axial (oblique)"), (axes[1], up, "sagittal (oblique)")):
        A, B = np.meshgrid(s, s, indexing="xy")
        pts = centre + A[..., None] * d + B[..., None] * v
        img = ct.sample(pts, cval=-1024.0)
        ax.imshow(img, cmap="gray", vmin=-250, vmax=1250, origin="lower", extent=[s[0], s[-1], s[0], s[-1]])
        loc = raster.to_local(pts)
        canal = raster.sample(raster.canal.astype(np.float32), loc)
        if np.any(canal > 0.5):
            ax.contour(s, s, canal, levels=[0.5], colors=["#ffd400"], linewidths=0.8)
        te = (e - centre) @ d
        tp = (p - centre) @ d
        ax.fill_between([te, tp], [-r, -r], [r, r], color=_SIDE_COLOURS.get(traj["side"], "c"), alpha=0.55, lw=0)
        ax.set_title(f"{name}", fontsize=9)
        ax.set_xlabel("along trajectory (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{traj['side']} {traj['kind']}: {traj['gauge']} G, length {traj['length_mm']:.1f} mm, "
                 f"canal clearance {traj['clearance_canal_mm']:.1f} mm, cortex clearance "
                 f"{traj['clearance_cortex_mm']:.1f} mm, isthmus {traj['pedicle_min_width_mm']:.1f} mm, "
                 f"conv {traj['convergence_deg']:.1f}°, sag {traj['sagittal_deg']:.1f}°", fontsize=8)
    fig.text(0.5, 0.01, "yellow: spinal canal; simulated — research use only", ha="center", fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
