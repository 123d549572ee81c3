"""Separation of the vertebrae at the intervertebral discs along the curved axis.

Along the axis, the solid-bone fraction φ(s) of a disc of radius ``probe_mm`` in the plane normal to the
axis is ≈ 1 inside a vertebral body (cortex plus enclosed marrow) and drops inside an intervertebral disc,
whose annulus does not enclose anything. Discs are the minima of φ(s) with a prominence of at least
``min_prominence`` and at least ``min_gap_mm`` apart (a T10 vertebra is ≈ 25 mm from disc to disc, a lumbar
one 35–45 mm). Each run of φ(s) ≥ ``body_fraction`` between two discs is one vertebral body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from kyphosim.segment.column import Axis

__all__ = ["Segment", "axis_profile", "split_axis"]


@dataclass(frozen=True)
class Segment:
    """One vertebral body along the axis: sample indices [lo, hi] of the axis, inclusive."""

    lo: int
    hi: int
    cut_lo: bool     # the inferior end is the field of view, not a disc
    cut_hi: bool     # the superior end is the field of view, not a disc
    height_mm: float
    fill: float      # mean φ over the segment


def _plane_basis(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0]) if abs(t[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(t, a)
    u /= np.linalg.norm(u)
    v = np.cross(t, u)
    return u, v


def axis_profile(volume: np.ndarray, axis: Axis, spacing_mm: float, probe_mm: float = 10.0,
                 transform: np.ndarray | None = None, order: int = 0) -> np.ndarray:
    """Mean of ``volume`` over a disc of radius ``probe_mm`` normal to the axis at each sample.

    For a boolean mask this is φ(s), the solid-bone fraction. ``transform`` (4×4) maps working-grid
    voxel coordinates (those of ``axis``) to the voxel coordinates of ``volume`` when it lies on
    another grid (e.g. the full-resolution CT); ``order`` is the interpolation order.
    """
    r = np.arange(0.0, probe_mm + 1e-6, max(1.0, spacing_mm)) / spacing_mm
    pts = []
    for rr in r:
        n = max(1, int(round(2 * np.pi * rr)))
        ang = np.arange(n) * 2 * np.pi / n
        pts.extend([(rr * np.cos(a), rr * np.sin(a)) for a in ang])
    pts = np.asarray(pts)
    data = volume.astype(np.float32) if volume.dtype == bool else volume
    shape = np.asarray(volume.shape)
    out = np.zeros(len(axis.points))
    for i, (p, t) in enumerate(zip(axis.points, axis.tangents)):
        u, v = _plane_basis(t)
        q = p[None, :] + pts[:, :1] * u[None, :] + pts[:, 1:] * v[None, :]
        if transform is not None:
            q = q @ transform[:3, :3].T + transform[:3, 3]
        valid = np.all((q >= 0) & (q <= shape - 1), axis=1)
        if valid.any():
            out[i] = ndi.map_coordinates(data, q[valid].T, order=order, mode="nearest").mean()
    return out


#: doublet reach (mm) on each side of a disc candidate, and its cap as a fraction of the median
#: disc-to-disc period found with it (see :func:`split_axis`)
DOUBLET_REACH_MM = 8.0
DOUBLET_REACH_PERIOD = 0.3


def doublet(profile: np.ndarray, ds_mm: float, reach_mm: float = 8.0) -> np.ndarray:
    """Dip between two peaks: ``D(s) = min(max_{s−r ≤ t < s} p(t), max_{s < t ≤ s+r} p(t)) − p(s)``, ≥ 0.

    An intervertebral disc seen along the axis is a thin (3–12 mm) low band between the two bright
    endplates of its neighbours; the marrow inside a body is a broad low plateau (no peak within
    ``reach_mm`` on both sides) and the endplate itself is a peak (D = 0).
    """
    n = len(profile)
    r = max(1, int(round(reach_mm / ds_mm)))
    pad = np.concatenate([np.full(r, -np.inf), profile, np.full(r, -np.inf)])
    win = np.lib.stride_tricks.sliding_window_view(pad, r)
    left = win[:n].max(axis=1)           # p(s−r) … p(s−1)
    right = win[r + 1:r + 1 + n].max(axis=1)   # p(s+1) … p(s+r)
    d = np.minimum(left, right) - profile
    d[~np.isfinite(d)] = 0.0
    return np.maximum(d, 0.0)


def disc_score(phi: np.ndarray, cort: np.ndarray, ds_mm: float, hu: np.ndarray | None = None, *,
               reach_mm: float = 8.0, hu_scale: float = 150.0) -> np.ndarray:
    """Disc evidence along the axis (dimensionless, ≈ 0 in a body, ≈ 1 at a clear disc).

    ``S(s) = ½ [D_c(s) + min(D_HU(s) / hu_scale, 1.5)] + (1 − φ(s))``, D the :func:`doublet` of the
    cortical fraction c(s) and of the mean HU of the plane normal to the axis: the two cortical
    endplates around a disc make two bright peaks with a dip between them (100–300 HU deep), and
    the disc itself is often not enclosed bone (φ low) unless partial volume or osteophytes close it.
    """
    dc = doublet(cort, ds_mm, reach_mm)
    if hu is None:
        dh = dc
    else:
        dh = np.minimum(doublet(hu, ds_mm, reach_mm) / hu_scale, 1.5)
    return 0.5 * (dc + dh) + (1.0 - phi)


def choose_discs(score: np.ndarray, arc_mm: np.ndarray, *, min_gap_mm: float = 18.0,
                 max_gap_mm: float = 55.0, threshold: float = 0.1, rhythm_weight: float = 3.0,
                 edge_mm: float = 6.0, min_prominence: float = 0.05) -> list[int]:
    """Disc positions: the sequence of disc-score peaks that best fits a regular vertebral rhythm.

    Maximises Σ (S(s_j) − ``threshold``) − ``rhythm_weight`` · Σ ((g_k − g_{k−1}) / ḡ)² over
    increasing peak sequences with gaps g in [``min_gap_mm``, ``max_gap_mm``]: vertebral heights
    change slowly from one level to the next, so a weak disc that fits the rhythm beats a strong
    artefact (a fracture line, an end of the field of view) that breaks it.
    """
    cand, _ = find_peaks(score, prominence=min_prominence)
    cand = [int(c) for c in cand if score[c] > threshold
            and edge_mm <= arc_mm[c] <= arc_mm[-1] - edge_mm]
    m = len(cand)
    if m == 0:
        return []
    a = arc_mm[cand]
    gain = score[cand] - threshold
    # best[j][i]: best total of a sequence ending with (i, j) (i = -1: j is the first disc)
    neg = -1e18
    best = np.full((m, m + 1), neg)
    prev = np.full((m, m + 1), -2, int)
    for j in range(m):
        best[j, m] = gain[j]          # column m stands for "no previous disc"
        for i in range(j):
            g = a[j] - a[i]
            if not (min_gap_mm <= g <= max_gap_mm):
                continue
            # extend a sequence ending at (h, i)
            cands = [(best[i, m] + gain[j], m)]
            for h in range(i):
                if best[i, h] <= neg / 2:
                    continue
                g0 = a[i] - a[h]
                pen = rhythm_weight * ((g - g0) / (0.5 * (g + g0))) ** 2
                cands.append((best[i, h] + gain[j] - pen, h))
            v, h = max(cands)
            best[j, i] = v
            prev[j, i] = h
    j, i = np.unravel_index(int(np.argmax(best)), best.shape)
    seq = [j]
    while i != m:
        seq.append(i)
        i, j = prev[j, i], i
        if i == -2:
            break
    return sorted(cand[k] for k in seq)


def split_axis(profile: np.ndarray, arc_mm: np.ndarray, cortical: np.ndarray | None = None,
               hu: np.ndarray | None = None, *,
               min_gap_mm: float = 18.0, min_prominence: float = 0.25, body_fraction: float = 0.5,
               min_height_mm: float = 6.0) -> tuple[list[Segment], np.ndarray]:
    """Vertebral bodies (axis segments) and disc positions (sample indices) from φ(s) and c(s)."""
    ds = float(np.median(np.diff(arc_mm))) if len(arc_mm) > 1 else 1.0
    phi = ndi.gaussian_filter1d(profile, 1.0 / ds, mode="nearest")
    cort = np.zeros_like(phi) if cortical is None else ndi.gaussian_filter1d(cortical, 1.0 / ds, mode="nearest")
    hu_s = None if hu is None else ndi.gaussian_filter1d(hu, 0.7 / ds, mode="nearest")
    score = disc_score(phi, cort, ds, hu_s, reach_mm=DOUBLET_REACH_MM)
    discs = choose_discs(score, arc_mm, min_gap_mm=min_gap_mm)
    if len(discs) >= 2:
        # the doublet must reach the endplates of a disc (≤ 0.15 of the disc-to-disc period away)
        # but not both endplates of a body from its middle (≥ 0.35 of it): short upper/mid-thoracic
        # bodies (14–20 mm) would otherwise pass as discs half a period off
        reach = min(DOUBLET_REACH_MM, DOUBLET_REACH_PERIOD * float(np.median(np.diff(arc_mm[discs]))))
        if reach < DOUBLET_REACH_MM - 1e-6:
            score = disc_score(phi, cort, ds, hu_s, reach_mm=reach)
            discs = choose_discs(score, arc_mm, min_gap_mm=min_gap_mm)
    bounds = [0] + discs + [len(phi) - 1]
    segs: list[Segment] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = np.arange(a, b + 1)
        body = idx[phi[idx] >= body_fraction]
        if body.size == 0:
            continue
        lo, hi = int(body.min()), int(body.max())
        h = float(arc_mm[hi] - arc_mm[lo]) + ds
        if h < min_height_mm:
            continue
        segs.append(Segment(lo=lo, hi=hi, cut_lo=(a == 0), cut_hi=(b == len(phi) - 1), height_mm=h,
                            fill=float(phi[lo:hi + 1].mean())))
    return segs, np.asarray(discs, int)
