"""Figures of the assessment (matplotlib, Agg): a sagittal view per level with the measured heights
drawn on it, and a whole-spine sagittal view coloured by Genant grade."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kyphosim.assess.geometry import BodyGeometry
from kyphosim.assess.model import LevelAssessment, SpineAssessment
from kyphosim.fileio import atomic_path
from kyphosim.imaging.volume import Volume

__all__ = ["level_figure", "spine_figure", "GRADE_COLOURS"]

GRADE_COLOURS = {None: "#9e9e9e", 0: "#2e7d32", 1: "#f9a825", 2: "#ef6c00", 3: "#c62828"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _sagittal_slice(vol: Volume, origin: np.ndarray, ap: np.ndarray, si: np.ndarray, half_ap: float,
                    half_si: float, res: float, *, order: int = 1, cval: float = -1024.0) -> np.ndarray:
    """Resample ``vol`` on the plane through ``origin`` spanned by ap (columns) and si (rows, up)."""
    u = np.arange(-half_ap, half_ap + res / 2, res)
    v = np.arange(half_si, -half_si - res / 2, -res)
    U, V = np.meshgrid(u, v)
    pts = origin + U[..., None] * ap + V[..., None] * si
    return vol.sample(pts, order=order, cval=cval)


def level_figure(path: str | Path, geo: BodyGeometry, level: LevelAssessment, *, ct: Volume | None,
                 labels: Volume, dpi: int = 110) -> Path:
    """Mid-sagittal section of one body in its local frame with Ha/Hm/Hp drawn (anterior to the right)."""
    plt = _plt()
    f = geo.frame
    half_ap = 0.5 * geo.depth_mm + 18.0
    half_si = 0.5 * max(geo.centre_height_mm if np.isfinite(geo.centre_height_mm) else 25.0, 10.0) + 14.0
    res = 0.4
    # centre the image on the body (origin is at mid-depth AP 0 = centroid; shift to mid-depth)
    mid_ap = 0.5 * (geo.anterior_ap_mm + geo.posterior_ap_mm)
    o = f.origin_mm + mid_ap * f.ap
    if ct is not None:
        img = _sagittal_slice(ct, o, f.ap, f.si, half_ap, half_si, res)
        vmin, vmax = -250, 1000
    else:
        img = _sagittal_slice(labels.with_data((labels.data == geo.label).astype(np.float32), is_label=False),
                              o, f.ap, f.si, half_ap, half_si, res, cval=0.0)
        vmin, vmax = 0, 1.5
    fig, ax = plt.subplots(figsize=(4.6, 4.6 * half_si / half_ap + 0.6))
    ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, extent=(-half_ap, half_ap, -half_si, half_si),
              origin="upper", interpolation="bilinear")
    lab_img = _sagittal_slice(labels.with_data((labels.data == geo.label).astype(np.float32), is_label=False),
                              o, f.ap, f.si, half_ap, half_si, res, cval=0.0)
    ax.contour(np.linspace(-half_ap, half_ap, lab_img.shape[1]), np.linspace(half_si, -half_si, lab_img.shape[0]),
               lab_img, levels=[0.5], colors=["#4fc3f7"], linewidths=0.6)
    h = geo.measure_heights()
    colour = GRADE_COLOURS.get(level.genant_grade, "#9e9e9e")
    for name, ap0, val in zip(("Ha", "Hm", "Hp"), h.ap_positions_mm, h.as_tuple()):
        x = ap0 - mid_ap
        tp, tm = geo.profile(np.zeros(1), np.array([ap0]))
        if val is None or not (np.isfinite(tp[0]) and np.isfinite(tm[0])):
            continue
        ax.plot([x, x], [tm[0], tp[0]], color=colour, lw=2.0)
        ax.plot([x - 1.2, x + 1.2], [tp[0], tp[0]], color=colour, lw=1.2)
        ax.plot([x - 1.2, x + 1.2], [tm[0], tm[0]], color=colour, lw=1.2)
        ax.text(x, tp[0] + 1.5, f"{name} {val:.1f}", color="w", ha="center", va="bottom", fontsize=7,
                bbox=dict(facecolor="k", alpha=0.5, pad=1, lw=0))
    grade = "–" if level.genant_grade is None else str(level.genant_grade)
    title = (f"{level.name}: Genant {grade} {level.genant_type or ''}, loss "
             f"{'–' if level.height_loss_pct is None else f'{level.height_loss_pct:.0f} %'}")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("posterior ← AP (mm) → anterior", fontsize=8)
    ax.set_ylabel("SI (mm)", fontsize=8)
    ax.tick_params(labelsize=7)
    if level.flags:
        ax.text(-half_ap + 1, -half_si + 1, ", ".join(level.flags[:4]), color="#ffeb3b", fontsize=6,
                va="bottom")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path


def spine_figure(path: str | Path, geos: dict[int, BodyGeometry], result: SpineAssessment, *,
                 ct: Volume | None, labels: Volume, dpi: int = 110) -> Path:
    """Whole-spine sagittal view (mid-sagittal plane of the bodies), each vertebra coloured by grade."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    gl = [g for g in geos.values()]
    if not gl:
        raise ValueError("no measured vertebra to draw")
    lr = np.mean([g.frame.lr for g in gl], axis=0)
    lr /= np.linalg.norm(lr)
    si = np.array([0.0, 0.0, 1.0]) - lr[2] * lr
    si /= np.linalg.norm(si)
    ap = np.cross(si, lr)
    cent = np.array([g.frame.origin_mm for g in gl])
    c = cent.mean(axis=0)
    proj_si = (cent - c) @ si
    proj_ap = (cent - c) @ ap
    half_si = float(np.ptp(proj_si)) / 2 + 35.0
    half_ap = max(float(np.ptp(proj_ap)) / 2 + 55.0, 0.6 * half_si)
    c = c + ((proj_ap.max() + proj_ap.min()) / 2) * ap + ((proj_si.max() + proj_si.min()) / 2) * si
    res = max(0.6, float(min(labels.spacing.min(), 1.0)))
    lab = _sagittal_slice(labels.with_data(labels.data.astype(np.float32), is_label=False), c, ap, si, half_ap,
                          half_si, res, order=0, cval=0.0)
    fig, ax = plt.subplots(figsize=(4.8, 4.8 * half_si / half_ap + 0.4))
    ext = (-half_ap, half_ap, -half_si, half_si)
    if ct is not None:
        img = _sagittal_slice(ct, c, ap, si, half_ap, half_si, res)
        ax.imshow(img, cmap="gray", vmin=-250, vmax=1000, extent=ext, interpolation="bilinear")
    else:
        ax.imshow(np.zeros_like(lab), cmap="gray", vmin=0, vmax=1, extent=ext)
    grade_img = np.full(lab.shape, np.nan)
    by_label = {lv.label: lv for lv in result.levels}
    for lid, lv in by_label.items():
        grade_img[lab == lid] = -1 if lv.genant_grade is None else lv.genant_grade
    cmap = ListedColormap([GRADE_COLOURS[None], GRADE_COLOURS[0], GRADE_COLOURS[1], GRADE_COLOURS[2],
                           GRADE_COLOURS[3]])
    ax.imshow(np.ma.masked_invalid(grade_img), cmap=cmap, vmin=-1.5, vmax=3.5, alpha=0.55, extent=ext,
              interpolation="nearest")
    for g in gl:
        lv = by_label.get(g.label)
        if lv is None:
            continue
        p = g.frame.origin_mm - c
        txt = f"{lv.name} G{'–' if lv.genant_grade is None else lv.genant_grade}"
        if lv.height_loss_pct is not None and (lv.genant_grade or 0) > 0:
            txt += f" {lv.height_loss_pct:.0f}%"
        ax.text(p @ ap + 0.5 * g.depth_mm + 4, p @ si, txt, color="w", fontsize=7, va="center",
                bbox=dict(facecolor="k", alpha=0.45, pad=1, lw=0))
    sp = result.spine
    ttl = f"Genant grades; SDI {sp.sdi if sp.sdi is not None else ('≥' + str(sp.sdi_partial) if sp.sdi_partial is not None else '–')}"
    if sp.regional_kyphosis_deg is not None:
        ttl += f"; {sp.regional_levels} {sp.regional_kyphosis_deg:+.0f}°"
    ax.set_title(ttl, fontsize=9)
    ax.set_xlabel("posterior ← (mm) → anterior", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path
