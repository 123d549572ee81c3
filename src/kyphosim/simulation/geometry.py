"""Heights of a vertebral body on the simulation's local grid (the project height convention).

The simulation grid is aligned with the body's local frame (axis i = LR, j = AP with +j anterior,
k = SI), so the convention of ``docs/conventions.md`` / the phantom contract reduces to column
arithmetic:

* D = AP extent of the body on the mid-sagittal plane at mid-height;
* Ha, Hm, Hp = SI extent (outer bone boundary) of the body at 10 %, 50 %, 90 % of D from the
  anterior margin, each the median over the parasagittal band |LR| ≤ 20 % of the body width;
* wedge angle = angle between straight-line fits to the superior and inferior surfaces over
  10–90 % of D in that band (positive = anterior narrower).

This is a thin adapter with the assessment module's definition; when the body is given to
``kyphosim.assess`` (world space) both agree to within a voxel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["measure_heights", "column_surfaces", "subvoxel_surfaces", "assess_heights", "HeightGauge"]


def column_surfaces(body: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top and bottom k index of the body in every (i, j) column, and the column mask.

    Columns without body voxels get −1 / −1 and False.
    """
    nk = body.shape[2]
    has = body.any(axis=2)
    top = np.where(has, nk - 1 - np.argmax(body[:, :, ::-1], axis=2), -1)
    bot = np.where(has, np.argmax(body, axis=2), -1)
    return top, bot, has


def subvoxel_surfaces(frac: np.ndarray, top: np.ndarray, bot: np.ndarray, has: np.ndarray,
                      window_vox: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Sub-voxel top and bottom surfaces (continuous k index) of every column from a partial-volume
    occupancy ``frac`` (0…1, e.g. the label mask interpolated linearly onto the grid).

    Voxel k spans [k − ½, k + ½]. Over a window of ±``window_vox`` rows around the voxel surface,
    the occupancy integral places the boundary: z_top = (k0 − ½) + Σ_{k0}^{k1} f_k and
    z_bot = (k1 + ½) − Σ_{k0}^{k1} f_k. For a sharp boundary at s this returns s whatever the grid
    (a binary mask returns the voxel faces top + ½ and bot − ½, i.e. the staircase), so lengths
    measured on it do not carry the ±h/2 quantisation of the voxel rows. Each value is kept within
    one voxel of the voxel face (a hole or a neighbour structure in the window cannot move it
    further). Columns without body get NaN.
    """
    f = np.clip(np.asarray(frac, float), 0.0, 1.0)
    nk = f.shape[2]
    w = int(window_vox)
    offs = np.arange(-w, w + 1)

    def integral(centre: np.ndarray) -> np.ndarray:
        kk = centre[:, :, None] + offs[None, None, :]
        ok = (kk >= 0) & (kk < nk)
        vals = np.take_along_axis(f, np.clip(kk, 0, nk - 1), axis=2)
        return np.where(ok, vals, 0.0).sum(axis=2)

    zt = (top - w - 0.5) + integral(top)
    zb = (bot + w + 0.5) - integral(bot)
    zt = np.clip(zt, top - 0.5, top + 1.5)
    zb = np.clip(zb, bot - 1.5, bot + 0.5)
    return np.where(has, zt, np.nan), np.where(has, zb, np.nan)


def measure_heights(body: np.ndarray, spacing_mm: float) -> dict[str, float]:
    """Ha/Hm/Hp (mm), depth/width (mm) and wedge angle (deg) of a body mask on a local grid."""
    h = float(spacing_mm)
    if not body.any():
        raise ValueError("empty vertebral-body mask")
    idx = np.argwhere(body)
    ci, cj, ck = np.round(idx.mean(axis=0)).astype(int)
    row = body[ci, :, ck]
    if not row.any():
        row = body[:, :, ck].any(axis=0)
    js = np.flatnonzero(row)
    j_post, j_ant = int(js.min()), int(js.max())
    depth_mm = (j_ant - j_post + 1) * h
    col = body[:, (j_post + j_ant) // 2, ck]
    if not col.any():
        col = body[:, :, ck].any(axis=1)
    iis = np.flatnonzero(col)
    width_mm = (iis.max() - iis.min() + 1) * h
    i_mid = 0.5 * (iis.max() + iis.min())
    half_band = max(1, int(round(0.2 * width_mm / h)))
    i_lo, i_hi = int(max(0, np.floor(i_mid - half_band))), int(min(body.shape[0], np.ceil(i_mid + half_band) + 1))
    top, bot, has = column_surfaces(body[i_lo:i_hi])
    ext = np.where(has, (top - bot + 1) * h, np.nan)

    def at(frac: float) -> float:
        j = int(round(j_ant - frac * (j_ant - j_post)))
        win = ext[:, max(0, j - 1):j + 2]
        v = win[np.isfinite(win)]
        return float(np.median(v)) if v.size else float("nan")

    ha, hm, hp = at(0.10), at(0.50), at(0.90)
    j0 = int(round(j_ant - 0.9 * (j_ant - j_post)))
    j1 = int(round(j_ant - 0.1 * (j_ant - j_post)))
    jj, tt, bb = [], [], []
    for j in range(j0, j1 + 1):
        m = has[:, j]
        if m.sum() == 0:
            continue
        jj.append(j)
        tt.append(np.median(top[m, j]))
        bb.append(np.median(bot[m, j]))
    wedge = float("nan")
    if len(jj) >= 3:
        st = np.polyfit(jj, tt, 1)[0]
        sb = np.polyfit(jj, bb, 1)[0]
        wedge = float(np.degrees(np.arctan(sb) - np.arctan(st)))
    return {"anterior_mm": ha, "middle_mm": hm, "posterior_mm": hp, "depth_mm": float(depth_mm),
            "width_mm": float(width_mm), "wedge_angle_deg": wedge}


def assess_heights(body: np.ndarray, affine: np.ndarray, label: int, si_hint: np.ndarray | None = None,
                   spacing_mm: float | None = None) -> tuple[dict[str, float], str]:
    """Heights of a model-grid body mask measured by the assessment module's own code
    (``kyphosim.assess.geometry.vertebral_body_geometry(...).measure_heights()``), so the numbers
    match ``kyphosim assess``. Falls back to :func:`measure_heights` when assess is unavailable or
    fails; returns (heights, source). One-off form of :class:`HeightGauge`."""
    sp = float(np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)).mean()) if spacing_mm is None else spacing_mm
    return HeightGauge(body, affine, label, si_hint, sp)(body)


class HeightGauge:
    """Repeated height measurements of one body during the procedure, by the assessment code.

    The assessment's body geometry (frame, depth, width, margins — the costly part, ~2 s at 0.5 mm)
    is computed once on the pre-operative body, on a tight crop of the model grid (the body's i/j
    extent ± 3 voxels, the whole k range so the lifted endplate stays inside); later calls only swap
    the occupancy the heights are read from. The frame is therefore the pre-operative one (as a
    surgeon compares heights on the same view); the endplate tilt a lift causes (a few degrees)
    changes a height along the old axis by < 0.2 %.
    """

    def __init__(self, body: np.ndarray, affine: np.ndarray, label: int, si_hint: np.ndarray | None,
                 spacing_mm: float):
        self.spacing_mm = float(spacing_mm)
        self.label = int(label)
        idx = np.argwhere(body)
        lo = np.maximum(idx.min(axis=0) - 3, 0)
        hi = np.minimum(idx.max(axis=0) + 4, np.asarray(body.shape))
        lo[2], hi[2] = 0, body.shape[2]
        self.box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        aff = np.array(affine, float).copy()
        aff[:3, 3] = aff[:3, :3] @ lo + aff[:3, 3]
        self.affine = aff
        self.geometry = None
        self.error = ""
        try:
            from kyphosim.assess.geometry import vertebral_body_geometry
            from kyphosim.imaging.volume import Volume

            crop = body[self.box]
            lab = Volume(crop.astype(np.uint8) * np.uint8(label), aff, is_label=True)
            sub = Volume(crop.astype(np.uint8), aff, is_label=True)
            self.geometry = vertebral_body_geometry(lab, self.label, sub, si_hint=si_hint)
        except Exception as exc:  # noqa: BLE001 - the column fallback is used and reported
            self.error = f"simulation.geometry ({type(exc).__name__})"

    def __call__(self, body: np.ndarray) -> tuple[dict[str, float], str]:
        """(heights, source) of ``body`` (same model grid as at construction)."""
        own = measure_heights(body, self.spacing_mm)
        if self.geometry is None:
            return own, self.error
        try:
            # the occupancy over the whole crop (all k: a lifted endplate stays inside), in world mm
            hh = self.geometry.with_occupancy(body[self.box], self.affine).measure_heights()
            ha, hm, hp = hh.as_tuple()
            if None in (ha, hm, hp):
                return own, "simulation.geometry (assess returned no height)"
            out = dict(own)
            out.update({"anterior_mm": float(ha), "middle_mm": float(hm), "posterior_mm": float(hp)})
            if hh.wedge_angle_deg is not None:
                out["wedge_angle_deg"] = float(hh.wedge_angle_deg)
            return out, "kyphosim.assess"
        except Exception as exc:  # noqa: BLE001
            return own, f"simulation.geometry ({type(exc).__name__})"

