"""Report figures: orthogonal CT views with label overlays, rendered to PNG bytes.

Display conventions (radiological): axial and coronal views show the patient's right on the
viewer's left; sagittal views show anterior on the viewer's left; superior is up. Pixels are drawn
with their true aspect ratio (anisotropic spacing respected).
"""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kyphosim.imaging.labels import vertebra_name  # noqa: E402
from kyphosim.imaging.volume import Volume  # noqa: E402

__all__ = ["fig_to_png", "orthogonal_views", "label_colors"]


def fig_to_png(fig, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def label_colors(n: int = 32) -> np.ndarray:
    """A fixed colour table (RGBA) for label ids 0..n-1 (0 transparent)."""
    cmap = plt.get_cmap("tab20")
    cols = np.array([cmap(i % 20) for i in range(n)], float)
    cols[0] = (0, 0, 0, 0)
    return cols


def _slices(ct: Volume, ijk: Sequence[int]):
    """Canonical (R, A, S) slices arranged for display.

    After ``.T[::-1, ::-1]`` rows run from the largest S (or A) index at the top and columns from the
    largest R index (the patient's right) at the left; in the sagittal view the left column is the
    largest A index (anterior). The returned spacing pair is (column, row) mm.
    """
    i, j, k = (int(v) for v in ijk)
    return {
        "axial": (ct.data[:, :, k].T[::-1, ::-1], (ct.spacing[0], ct.spacing[1])),
        "coronal": (ct.data[:, j, :].T[::-1, ::-1], (ct.spacing[0], ct.spacing[2])),
        "sagittal": (ct.data[i, :, :].T[::-1, ::-1], (ct.spacing[1], ct.spacing[2])),
    }


def orthogonal_views(ct: Volume, labels: Volume | None = None, *, center_mm: Sequence[float] | None = None,
                     window: tuple[float, float] = (-250.0, 1250.0), title: str = "") -> bytes:
    """Sagittal, coronal and axial slices through ``center_mm`` (world RAS) with optional label overlay.

    Returns PNG bytes.
    """
    can = ct.as_canonical()
    lab = labels.as_canonical() if labels is not None else None
    if lab is not None and not lab.same_grid(can):
        lab = labels.resample(like=can)
    if center_mm is None:
        if lab is not None and np.any(lab.data):
            center = np.argwhere(lab.data > 0).mean(axis=0)
        else:
            center = (np.asarray(can.shape) - 1) / 2
    else:
        center = can.world_to_voxel(np.asarray(center_mm, float))
    center = np.clip(np.round(center).astype(int), 0, np.asarray(can.shape) - 1)
    views = _slices(can, center)
    lviews = _slices(lab, center) if lab is not None else None
    cols = label_colors(32)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    names = {"sagittal": "Sagittal (anterior left)", "coronal": "Coronal (patient right on left)",
             "axial": "Axial (patient right on left, anterior up)"}
    for ax, view in zip(axes, ["sagittal", "coronal", "axial"]):
        img_d, (sx, sy) = views[view]
        lab_d = lviews[view][0] if lviews else None
        ax.imshow(img_d, cmap="gray", vmin=window[0], vmax=window[1], aspect=sy / sx, interpolation="bilinear")
        if lab_d is not None:
            ov = cols[np.clip(lab_d.astype(int), 0, 31)]
            ov[..., 3] = np.where(lab_d > 0, 0.35, 0.0)
            ax.imshow(ov, aspect=sy / sx, interpolation="nearest")
            for vid in np.unique(lab_d):
                if 0 < vid < 29 and view == "sagittal":
                    rr, cc = np.nonzero(lab_d == vid)
                    try:
                        ax.text(cc.min() - 2, rr.mean(), vertebra_name(int(vid)), color="yellow", fontsize=8,
                                ha="right", va="center")
                    except ValueError:
                        pass
        ax.set_title(names[view], fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)
