"""Sub-voxel endplate surfaces from the CT intensities (blurred thin-plate edge model).

A label map locates a bone surface only to within its voxel: the true outer endplate surface lies
somewhere between the last voxel centre inside and the first outside. The CT carries the missing
sub-voxel information in its partial-volume and blurred intensities. Along a line through an
endplate (coordinate ``x`` in mm, positive outwards, into the disc) the CT is modelled as

    I(x) = I_out·Φ((x − b)/σ) + I_p·[Φ((b − x)/σ) − Φ((b − s − x)/σ)] + I_in·Φ((b − s − x)/σ)

i.e. trabecular bone (level ``I_in``) up to ``b − s``, the bony endplate (a plate of thickness ``s`` and
level ``I_p``) from ``b − s`` to ``b`` (the outer bone surface), and disc / soft tissue (``I_out``)
beyond ``b``, all blurred by a Gaussian point-spread function of SD ``σ`` (Φ = standard normal CDF).
For each candidate surface position ``b`` the three levels enter linearly and are found by least
squares (variable projection); ``b`` is the candidate with the smallest residual (parabolic
interpolation between candidates). The candidates span the mask's own quantisation interval
(± half the voxel extent along the line), so the CT only chooses *where inside the voxel* the surface
lies and never moves a surface by more than that; a best fit at an end of the interval is kept there
(the CT says "at this end or beyond", the mask says "not beyond"). Widening the interval by 0.3–1 mm
or falling back to the mask midpoint at the ends both measured worse on the phantom cohort.

Samples (session 3): the line is sampled only at its *knots*, where it crosses a plane of voxel
centres of the grid axis most nearly along it (:func:`knot_lines`), and the model is evaluated at
those very positions (:func:`fit_plate_edges_knots`). A fit to the trilinear interpolation between
samples (the session-1/2 method, :func:`fit_plate_edges`, kept for comparison) must match a smooth
model to a piecewise-linear curve whose kinks sit wherever the voxel centres fall; on slices of
1.5–2 mm this left the surface's place between two voxel centres nearly undetermined (phantom surface
errors SD 0.26–0.33 mm, mask alone 0.35–0.40 mm).

Parameters:

* ``s`` = :data:`PLATE_MM` = 0.8 mm, a typical thickness of the bony endplate (0.5–1 mm, thinnest
  centrally: Palepu et al., Int J Spine Surg 2019;13(4):361; the same source as the phantom's model);
  not fitted, because a plate thinner than the blur is not identifiable from its blurred profile
  (only its centre ``b − s/2`` and its mass are).
* ``σ``: chosen from the data (:func:`estimate_sigma`) among :data:`SIGMA_RATIOS` × the voxel
  extent along the line (a response of FWHM 0.8–1.8 voxels), by the least residual pooled over all
  lines of a body: lines whose surface falls at different places between the knots see the blurred
  plate at different phases, which makes σ identifiable (the principle of the slanted-edge
  measurement of a scanner's edge response). The choice is biased towards the sharpest candidate on
  coarse samples, so it is a bounded choice, not a PSF measurement (docs/assessment.md: on the
  phantom cohort it mostly picks the lower bound, 0.35 × voxel). The fixed ``σ`` =
  :data:`SIGMA_PER_VOXEL` × voxel remains the fallback (and read 1.5–2 mm phantom heights 0.2–0.4 mm
  low with the knot samples).

Robustness: a column is used only when the fitted plate stands out from both sides by at least
:data:`MIN_PLATE_CONTRAST_HU` (the deblurred plate level above the larger of the two sides); otherwise
the mask surface is kept (the caller reports the fraction of columns that fell back). The inner fit
window is short (1.5 mm or 2σ beyond the plate), so compaction or sclerotic bands and clefts further
inside have little weight, and heights are medians over the band's columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from kyphosim.imaging.volume import Volume, apply_affine

__all__ = ["PLATE_MM", "WALL_MM", "SIGMA_PER_VOXEL", "SIGMA_MIN_MM", "SIGMA_RATIOS", "default_sigma_mm", "MIN_PLATE_CONTRAST_HU",
           "CTCrop", "EdgeFit", "fit_plate_edges", "knot_lines", "fit_plate_edges_knots", "estimate_sigma",
           "refine_surfaces"]

PLATE_MM = 0.8
#: thickness (mm) of the cortical shell of the anterior/posterior walls used for the body depth
WALL_MM = 0.5
SIGMA_PER_VOXEL = 0.42
SIGMA_MIN_MM = 0.3


def default_sigma_mm(voxel_mm: float) -> float:
    """The fixed-rule blur SD (mm) for a voxel extent ``voxel_mm`` along the line:
    :data:`SIGMA_PER_VOXEL` × voxel, at least :data:`SIGMA_MIN_MM`."""
    return max(SIGMA_MIN_MM, SIGMA_PER_VOXEL * float(voxel_mm))
MIN_PLATE_CONTRAST_HU = 150.0
_EXTRA_MM = 0.0      # candidates reach this far beyond the mask's ±½-voxel interval
_CAND_STEP_MM = 0.05
_SAMPLE_MM = 0.1


class CTCrop:
    """Float32 crop of a CT around a world box, sampled trilinearly at world points (HU)."""

    def __init__(self, ct: Volume, lo_mm: np.ndarray, hi_mm: np.ndarray, margin_mm: float = 12.0):
        corners = np.array([[x, y, z] for x in (lo_mm[0] - margin_mm, hi_mm[0] + margin_mm)
                            for y in (lo_mm[1] - margin_mm, hi_mm[1] + margin_mm)
                            for z in (lo_mm[2] - margin_mm, hi_mm[2] + margin_mm)])
        ijk = apply_affine(np.linalg.inv(ct.affine), corners)
        shape = np.asarray(ct.shape)
        lo = np.clip(np.floor(ijk.min(axis=0)).astype(int) - 1, 0, shape)
        hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 2, 0, shape)
        self.data = np.ascontiguousarray(ct.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
        aff = np.asarray(ct.affine, float).copy()
        aff[:3, 3] = apply_affine(ct.affine, lo)
        self.affine = aff
        self.inv = np.linalg.inv(aff)

    def lines(self, origins_mm: np.ndarray, direction: np.ndarray, t_mm: np.ndarray) -> np.ndarray:
        """HU at ``origins[m] + t[m, k]·direction`` (M × K); NaN outside the crop."""
        o = apply_affine(self.inv, np.asarray(origins_mm, float))          # (M, 3)
        d = self.inv[:3, :3] @ np.asarray(direction, float)
        ijk = o[:, None, :] + np.asarray(t_mm, float)[..., None] * d[None, None, :]
        flat = ijk.reshape(-1, 3).T.astype(np.float32)
        vals = ndimage.map_coordinates(self.data, flat, order=1, mode="constant", cval=np.nan,
                                       prefilter=False, output=np.float32)
        return vals.reshape(ijk.shape[:2])


@dataclass
class EdgeFit:
    """Result of :func:`fit_plate_edges` per line: outward offset (mm) of the surface from the
    reference position, fitted plate excess mass (HU·mm), plate contrast (HU) and usability."""

    offset_mm: np.ndarray
    plate_mass_hu_mm: np.ndarray
    contrast_hu: np.ndarray
    ok: np.ndarray


def fit_plate_edges(profiles: np.ndarray, x_mm: np.ndarray, half_interval_mm: float, sigma_mm: float,
                    plate_mm: float = PLATE_MM, extra_mm: float = _EXTRA_MM) -> EdgeFit:
    """Fit the blurred plate model to each row of ``profiles`` (sampled at ``x_mm``, outwards).

    Candidate surface positions cover ``[−half_interval − extra, +half_interval + extra]``.
    """
    prof = np.asarray(profiles, float)
    n = prof.shape[0]
    lim = half_interval_mm + extra_mm
    bc = np.arange(-lim, lim + 1e-9, _CAND_STEP_MM)
    x = np.asarray(x_mm, float)
    valid = np.all(np.isfinite(prof), axis=1)
    y = np.where(valid[:, None], prof, 0.0)
    # basis per candidate: (B, T, 3) = outside, plate, inside
    z_out = (x[None, :] - bc[:, None]) / sigma_mm
    f_out = ndtr(z_out)
    f_in = ndtr((bc[:, None] - plate_mm - x[None, :]) / sigma_mm)
    f_p = 1.0 - f_out - f_in
    A = np.stack([f_out, f_p, f_in], axis=2)
    pinv = np.linalg.pinv(A)                                   # (B, 3, T)
    coef = np.einsum("bkt,nt->bkn", pinv, y)                   # (B, 3, N)
    fitted = np.einsum("btk,bkn->btn", A, coef)                # (B, T, N)
    sse = ((fitted - y.T[None, :, :]) ** 2).sum(axis=1)        # (B, N)
    k = np.argmin(sse, axis=0)
    cols = np.arange(n)
    km = np.clip(k, 1, bc.size - 2)
    y0, y1, y2 = sse[km - 1, cols], sse[km, cols], sse[km + 1, cols]
    den = y0 - 2.0 * y1 + y2
    with np.errstate(all="ignore"):
        off = np.where(den > 0, 0.5 * (y0 - y2) / np.where(den > 0, den, 1.0), 0.0)
    b = bc[km] + np.clip(off, -1.0, 1.0) * _CAND_STEP_MM
    co = coef[k, :, cols]                                       # (N, 3)
    contrast = co[:, 1] - np.maximum(co[:, 0], co[:, 2])
    mass = (co[:, 1] - co[:, 2]) * plate_mm
    # a best candidate at the end of the interval is kept (clipped there): the CT then says the surface
    # lies at that end of the mask's voxel interval or beyond, and the mask bounds it
    ok = valid & (contrast >= MIN_PLATE_CONTRAST_HU)
    return EdgeFit(np.clip(b, -lim, lim), mass, contrast, ok)


def knot_lines(crop: CTCrop, origins_mm: np.ndarray, direction: np.ndarray, t0_mm: np.ndarray, sign: float,
               x_lo: float, x_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """CT samples of each line at its *knots* and their positions ``x`` (mm, outward from ``t0``).

    A knot is where the line crosses a plane of voxel centres of the grid axis most nearly along the
    line: there trilinear interpolation is exact along that axis (only a bilinear average of the
    neighbouring columns across it), so the sample is the reconstructed CT value itself rather than
    a linear interpolation between two samples up to a voxel apart. Returns (values, x), both
    (M, K), NaN-padded where a line has fewer knots in ``[x_lo, x_hi]``.
    """
    o = apply_affine(crop.inv, np.asarray(origins_mm, float).reshape(-1, 3))      # (M, 3) index
    d = crop.inv[:3, :3] @ np.asarray(direction, float)                              # index per mm
    a = int(np.argmax(np.abs(d)))
    step = sign * d[a]                                  # index change per mm of outward x
    t0 = np.asarray(t0_mm, float).ravel()
    i_at0 = o[:, a] + t0 * d[a]                         # index of the line point x = 0
    i_lo = np.minimum(i_at0 + step * x_lo, i_at0 + step * x_hi)
    i_hi = np.maximum(i_at0 + step * x_lo, i_at0 + step * x_hi)
    k0 = np.ceil(i_lo - 1e-9)
    n_k = int(np.max(np.floor(i_hi + 1e-9) - k0)) + 1 if t0.size else 0
    n_k = max(n_k, 1)
    ks = k0[:, None] + np.arange(n_k)[None, :]
    x = (ks - i_at0[:, None]) / step                    # (M, K) outward mm
    inside = (ks <= i_hi[:, None] + 1e-9)
    x = np.where(inside, x, np.nan)
    order = np.argsort(np.where(np.isnan(x), np.inf, x), axis=1)
    x = np.take_along_axis(x, order, axis=1)
    t = t0[:, None] + sign * np.nan_to_num(x)
    vals = crop.lines(np.asarray(origins_mm, float).reshape(-1, 3), direction, t)
    vals = np.where(np.isnan(x), np.nan, vals)
    return vals, x


def fit_plate_edges_knots(values: np.ndarray, x_mm: np.ndarray, half_interval_mm: float, sigma_mm: float,
                          plate_mm: float = PLATE_MM,
                          cand_step_mm: float = _CAND_STEP_MM) -> tuple[EdgeFit, np.ndarray]:
    """:func:`fit_plate_edges` on knot samples (each line its own positions ``x_mm``, NaN = none).

    The model is evaluated at the very sample positions, so nothing depends on where the surface
    falls between two voxel centres. Returns the fit and each line's least residual (HU²)."""
    y = np.asarray(values, float)
    x = np.asarray(x_mm, float)
    w = (np.isfinite(y) & np.isfinite(x)).astype(float)               # (N, K)
    y = np.where(w > 0, y, 0.0)
    xx = np.where(w > 0, x, 0.0)
    lim = half_interval_mm
    bc = np.arange(-lim, lim + 1e-9, cand_step_mm)                     # (B,)
    z = xx[:, None, :] - bc[None, :, None]                             # (N, B, K)
    f_out = ndtr(z / sigma_mm)
    f_in = ndtr((-plate_mm - z) / sigma_mm)
    f_p = 1.0 - f_out - f_in
    wk = w[:, None, :]
    f = (f_out * wk, f_p * wk, f_in * wk)                              # 3 × (N, B, K)
    # normal equations of the three levels per line and candidate, solved in closed form (3 × 3)
    g = {(i, j): (f[i] * f[j]).sum(axis=2) for i in range(3) for j in range(i, 3)}
    r = [(f[i] * y[:, None, :]).sum(axis=2) for i in range(3)]        # 3 × (N, B)
    eps = 1e-6 * (g[0, 0] + g[1, 1] + g[2, 2]) + 1e-9
    a, b_, c = g[0, 0] + eps, g[0, 1], g[0, 2]
    d, e, h = g[1, 1] + eps, g[1, 2], g[2, 2] + eps
    # adjugate of the symmetric matrix [[a, b, c], [b, d, e], [c, e, h]]
    A00, A01, A02 = d * h - e * e, c * e - b_ * h, b_ * e - c * d
    A11, A12, A22 = a * h - c * c, b_ * c - a * e, a * d - b_ * b_
    det = a * A00 + b_ * A01 + c * A02
    det = np.where(np.abs(det) > 0, det, 1e-300)
    coef = np.stack([(A00 * r[0] + A01 * r[1] + A02 * r[2]) / det,
                     (A01 * r[0] + A11 * r[1] + A12 * r[2]) / det,
                     (A02 * r[0] + A12 * r[1] + A22 * r[2]) / det], axis=2)   # (N, B, 3)
    sse = (y * y).sum(axis=1)[:, None] - (coef[..., 0] * r[0] + coef[..., 1] * r[1] + coef[..., 2] * r[2])
    n = y.shape[0]
    k = np.argmin(sse, axis=1)
    cols = np.arange(n)
    km = np.clip(k, 1, bc.size - 2)
    y0, y1, y2 = sse[cols, km - 1], sse[cols, km], sse[cols, km + 1]
    den = y0 - 2.0 * y1 + y2
    with np.errstate(all="ignore"):
        off = np.where(den > 0, 0.5 * (y0 - y2) / np.where(den > 0, den, 1.0), 0.0)
    b = bc[km] + np.clip(off, -1.0, 1.0) * cand_step_mm
    co = coef[cols, k]                                                 # (N, 3)
    contrast = co[:, 1] - np.maximum(co[:, 0], co[:, 2])
    mass = (co[:, 1] - co[:, 2]) * plate_mm
    valid = w.sum(axis=1) >= 4
    ok = valid & (contrast >= MIN_PLATE_CONTRAST_HU)
    return EdgeFit(np.clip(b, -lim, lim), mass, contrast, ok), np.where(valid, sse[cols, k], np.nan)


#: candidate blur widths, as multiples of the voxel extent along the line (FWHM 0.8–1.8 voxels). The
#: least-residual choice is biased towards the sharpest candidate on coarse samples (a sharper model
#: fits a few knots more easily): widening the range to 0.25 read 1.5 mm phantom heights +0.2 mm high
#: (docs/assessment.md), so the lower end stays at FWHM ≈ 0.8 voxel.
SIGMA_RATIOS = (0.35, 0.42, 0.50, 0.58, 0.67, 0.75)


def _window(voxel_mm: float, sig: float, plate_mm: float, side_mm: float = 0.0) -> tuple[float, float]:
    """Sample window (mm, outward) around a mask surface: the mask's ±½ voxel, the plate, and the
    blur on each side — at least ``side_mm`` beyond the plate on both sides."""
    half = 0.5 * float(voxel_mm)
    return -half - plate_mm - max(1.5, 2.0 * sig, side_mm), half + max(2.5 * sig + 0.5, side_mm)


def estimate_sigma(crop: CTCrop, line_sets, voxel_mm: float, *, plate_mm: float = PLATE_MM,
                   side_mm: float = 0.0) -> float:
    """Blur SD (mm) of the CT along these lines, chosen by the least pooled residual of the knot fits.

    ``line_sets``: iterable of (origins (M, 3), direction (3,), t_mask (M,), sign). Each σ of
    :data:`SIGMA_RATIOS` × ``voxel_mm`` (≥ :data:`SIGMA_MIN_MM`) is fitted on every line; the residuals
    are summed over the lines fitted with a plate at every σ. Lines whose surface falls at different
    places between the knots see the blurred plate at different phases, which is what makes σ
    identifiable (as in the slanted-edge measurement of a scanner's edge response).
    """
    sigmas = sorted({max(SIGMA_MIN_MM, r * float(voxel_mm)) for r in SIGMA_RATIOS})
    half = 0.5 * float(voxel_mm)
    # the same samples for every σ (the window of the default σ), so the residuals compare
    lo, hi = _window(voxel_mm, default_sigma_mm(voxel_mm), plate_mm, side_mm)
    data = []
    for org, direction, t, sign in line_sets:
        t = np.asarray(t, float).ravel()
        fin = np.isfinite(t)
        if fin.sum() == 0:
            continue
        o = np.asarray(org, float).reshape(-1, 3)[fin]
        data.append(knot_lines(crop, o, direction, t[fin], sign, lo, hi))
    if not data:
        return default_sigma_mm(voxel_mm)
    sse, oks = [], []
    for sg in sigmas:
        e, k = [], []
        for kv, kx in data:
            fit, r = fit_plate_edges_knots(kv, kx, half, sg, plate_mm)
            e.append(r)
            k.append(fit.ok)
        sse.append(np.concatenate(e))
        oks.append(np.concatenate(k))
    use = np.all(oks, axis=0) & np.all(np.isfinite(sse), axis=0)
    if use.sum() < 5:
        return default_sigma_mm(voxel_mm)
    tot = [float(v[use].sum()) for v in sse]
    return float(sigmas[int(np.argmin(tot))])


def refine_surfaces(crop: CTCrop, origins_mm: np.ndarray, direction: np.ndarray, t_mask: np.ndarray,
                    sign: float, voxel_mm: float, *, plate_mm: float = PLATE_MM,
                    sigma_mm: float | None = None, return_mass: bool = False, side_mm: float = 0.0,
                    knots: bool = True):
    """Refine mask surface positions ``t_mask`` (mm along ``direction`` from ``origins``) on the CT.

    ``sign`` = +1 when outwards is +direction (superior endplate along +SI), −1 otherwise.
    Returns (refined t, ok) — where not ok (no plate found, fit at the interval's end, NaN input)
    the mask position is returned unchanged; with ``return_mass`` also the fitted plate mass
    (HU·mm, NaN where not ok).
    """
    t_mask = np.asarray(t_mask, float)
    out = t_mask.copy()
    ok_all = np.zeros(t_mask.shape, bool)
    mass_all = np.full(t_mask.shape, np.nan)
    fin = np.isfinite(t_mask)
    if not fin.any():
        return (out, ok_all, mass_all) if return_mass else (out, ok_all)
    half = 0.5 * float(voxel_mm)
    sig = default_sigma_mm(voxel_mm) if sigma_mm is None else float(sigma_mm)
    lo, hi = _window(voxel_mm, sig, plate_mm, side_mm)
    o = np.asarray(origins_mm, float).reshape(-1, 3)[fin.ravel()]
    tb = t_mask.ravel()[fin.ravel()]
    if knots:
        kv, kx = knot_lines(crop, o, direction, tb, sign, lo, hi)
        fit, _ = fit_plate_edges_knots(kv, kx, half, sig, plate_mm)
    else:
        x = np.arange(lo, hi + 1e-9, _SAMPLE_MM)
        prof = crop.lines(o, direction, tb[:, None] + sign * x[None, :])
        fit = fit_plate_edges(prof, x, half, sig, plate_mm)
    new = np.where(fit.ok, tb + sign * fit.offset_mm, tb)
    flat_out = out.ravel()
    flat_ok = ok_all.ravel()
    flat_out[fin.ravel()] = new
    flat_ok[fin.ravel()] = fit.ok
    if return_mass:
        flat_m = mass_all.ravel()
        flat_m[fin.ravel()] = np.where(fit.ok, fit.plate_mass_hu_mm, np.nan)
        return flat_out.reshape(t_mask.shape), flat_ok.reshape(t_mask.shape), flat_m.reshape(t_mask.shape)
    return flat_out.reshape(t_mask.shape), flat_ok.reshape(t_mask.shape)
