"""Figures of a simulated procedure: one per step on the patient's images, the pressure–volume
curves, heights over the procedure, simulated AP/lateral fluoroscopy of the cement (planning's DRR
renderer), and the kyphoplasty-vs-vertebroplasty comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kyphosim.fileio import atomic_path
from kyphosim.imaging.volume import Volume
from kyphosim.simulation.params import PSI_TO_KPA

__all__ = ["write_figures", "step_figure", "pv_figure", "heights_figure", "fluoro_figure", "compare_figure"]

_STEP_TITLES = {"access": "1. Pathway: working cannula(s) through the pedicle(s)",
                "inflation": "2. Balloon inflated: bone compacted, endplate raised",
                "deflation": "3. Balloon removed: the cavity remains",
                "cement": "4. Cement injected",
                "set": "5. Set: the internal cast"}


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _panel(ax, hu: np.ndarray, overlays: list[tuple[np.ndarray, str, float]], title: str, h: float) -> None:
    """Local-grid slice (axis 0 horizontal, axis 1 vertical) in a bone window with overlays."""
    ext = [0, hu.shape[0] * h, 0, hu.shape[1] * h]
    ax.imshow(hu.T, origin="lower", cmap="gray", vmin=-200, vmax=900, extent=ext, interpolation="nearest")
    for arr, color, alpha in overlays:
        m = np.ma.masked_less_equal(arr.astype(float).T, 0.05)
        ax.imshow(m, origin="lower", cmap=_cmap(color), vmin=0, vmax=1, alpha=alpha, extent=ext,
                  interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _cmap(color: str):
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(color, [color, color])


def step_figure(snap: dict, name: str, meta: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    h = meta["spacing_mm"]
    ov_s, ov_a = [], []
    colors = {"channel": ("#4aa3ff", 0.7), "balloon": ("#ff3b30", 0.55), "cavity": ("#ffd60a", 0.45),
              "cement": ("#34c759", 0.75)}
    for key, (c, a) in colors.items():
        if f"sag_{key}" in snap:
            ov_s.append((snap[f"sag_{key}"], c, a))
            ov_a.append((snap[f"ax_{key}"], c, a))
    fig, axs = plt.subplots(1, 2, figsize=(9, 4.2))
    sag = snap["sag_hu"]
    if meta.get("flipped"):
        sag = sag[:, ::-1]
        ov_s = [(o[:, ::-1], c, a) for o, c, a in ov_s]
    _panel(axs[0], sag, ov_s, "sagittal (anterior right)", h)
    _panel(axs[1], snap["ax_hu"], ov_a, "axial (anterior up)", h)
    fig.suptitle(_STEP_TITLES.get(name, name), fontsize=11)
    return _save(fig, path)


def pv_figure(result, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for b in result.balloons:
        pv = np.asarray(b.pv_curve, float)
        ax.plot(pv[:, 0], pv[:, 1] / PSI_TO_KPA, label=f"{b.side} ({b.length_mm:.0f} mm): {b.stop_reason}")
    if result.balloons:
        ax.axhline(result.balloons[0].device_max_pressure_kpa / PSI_TO_KPA, color="k", ls=":", lw=1,
                   label="device limit [U]")
    ax.axhspan(100, 300, color="0.9", zorder=0, label="clinical range ~100–300 psi")
    ax.set_xlabel("balloon volume (mL)")
    ax.set_ylabel("pressure (psi)")
    ax.set_title(f"Balloon pressure–volume, {result.level}")
    ax.legend(fontsize=7)
    return _save(fig, path)


def heights_figure(result, path: Path) -> Path:
    import matplotlib.pyplot as plt

    names = [s.name for s in result.steps]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, lab in (("anterior_mm", "Ha"), ("middle_mm", "Hm"), ("posterior_mm", "Hp")):
        ax.plot(range(len(names)), [getattr(s.heights, key) for s in result.steps], marker="o", label=lab)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_ylabel("height (mm)")
    ax.set_title(f"Vertebral heights over the procedure, {result.level} ({result.technique})")
    ax.legend()
    return _save(fig, path)


def fluoro_figure(ct: Volume, cement: Volume, result, path: Path) -> Path:
    """AP and lateral simulated fluoroscopy of the final cement (planning's DRR renderer)."""
    import matplotlib.pyplot as plt

    from kyphosim.planning.fluoro import render_drr
    from kyphosim.planning.instruments import MaskObject

    idx = np.argwhere(cement.data > 0)
    iso = cement.voxel_to_world(idx.mean(axis=0)) if idx.size else ct.voxel_to_world(np.asarray(ct.shape) / 2)
    fig, axs = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax, view in zip(axs, ("ap", "lateral")):
        drr = render_drr(ct, view, isocenter_mm=iso, instruments=[MaskObject(cement, name="cement")],
                         rows=256, pixel_mm=0.6)
        ax.imshow(drr.display(), cmap="gray")
        ax.set_title(f"{view.upper()} fluoroscopy: cement {result.cement.volume_ml:.1f} mL", fontsize=9)
        ax.axis("off")
    return _save(fig, path)


def write_figures(result, ct: Volume, out_dir: Path) -> list[Path]:
    """All figures of one simulation into ``out_dir``; returns the written paths."""
    out_dir = Path(out_dir)
    out: list[Path] = []
    snaps = result.snapshots or {}
    meta = snaps.get("meta", {"spacing_mm": result.resolution_mm})
    for i, name in enumerate(("access", "inflation", "deflation", "cement", "set")):
        if name in snaps:
            out.append(step_figure(snaps[name], name, meta, out_dir / f"step{i + 1}_{name}.png"))
    if result.balloons:
        out.append(pv_figure(result, out_dir / "pressure_volume.png"))
    out.append(heights_figure(result, out_dir / "heights.png"))
    if result.cement_mask is not None:
        try:
            out.append(fluoro_figure(ct, result.cement_mask, result, out_dir / "fluoro_ap_lateral.png"))
        except ImportError:  # pragma: no cover - planning not installed
            pass
    return out


def compare_figure(kp, vp, path: Path) -> Path:
    """Kyphoplasty and vertebroplasty side by side: cement on the sagittal slice, heights, leaks."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(13, 4.3))
    for ax, r in zip(axs[:2], (kp, vp)):
        snap = (r.snapshots or {}).get("set")
        meta = (r.snapshots or {}).get("meta", {"spacing_mm": r.resolution_mm})
        if snap is not None:
            sag, cem = snap["sag_hu"], snap["sag_cement"]
            if meta.get("flipped"):
                sag, cem = sag[:, ::-1], cem[:, ::-1]
            _panel(ax, sag, [(cem, "#34c759", 0.75)], "", meta["spacing_mm"])
        lk = ", ".join(f"{l.type} {l.volume_ml:.2f} mL" for l in r.cement.leaks) or "none"
        ax.set_title(f"{r.technique}: cement {r.cement.volume_ml:.1f} mL, fill {100 * r.cement.fill_fraction:.0f} %\n"
                     f"Ha gain {r.anterior_height_gain_mm:+.1f} mm, leaks: {lk}", fontsize=8)
    labels = ["Ha", "Hm", "Hp"]
    x = np.arange(3)
    b0 = kp.heights["before"]
    axs[2].bar(x - 0.25, [b0.anterior_mm, b0.middle_mm, b0.posterior_mm], 0.25, label="before")
    for off, r in ((0.0, kp), (0.25, vp)):
        a = r.heights["after"]
        axs[2].bar(x + off, [a.anterior_mm, a.middle_mm, a.posterior_mm], 0.25, label=r.technique)
    axs[2].set_xticks(x)
    axs[2].set_xticklabels(labels)
    axs[2].set_ylabel("height (mm)")
    axs[2].legend(fontsize=8)
    axs[2].set_title(f"{kp.level}: heights", fontsize=9)
    return _save(fig, path)
