"""Landmarks for labelling: the sacrum (L5/S1 junction) and the ribs (lowest rib-bearing vertebra = T12).

Both detectors work on the canonical working grid, relative to the curved axis (see ``column.py``), and
return a confidence in 0–1 that feeds :mod:`kyphosim.segment.labelling`.

**Sacrum.** At the level of the S1 body the sacral alae continue the body laterally as solid bone to the
sacroiliac joints, so the solid-bone section through the body is wide: the first sacral segment is
100–120 mm across the alae (more when the sacroiliac joints are bridged by partial volume), whereas a
lumbar body is 40–55 mm wide (its transverse processes lie posterior to the body, outside the
measured band). The width ``W`` of the bone component containing the axis, within ±``band_mm`` of the
axis in the antero-posterior direction, is measured on every slice of the middle 60 % of a segment;
its median decides: the most cranial segment with ``W ≥ w_sure_mm`` is the sacrum, confidence
``clip((W − w_lumbar_mm) / (w_sure_mm − w_lumbar_mm), 0, 1)``. A field of view that shows only the
top millimetres of S1 gives a low width and no landmark (the labels are then flagged ambiguous).

**Ribs.** Cortical bone in a ring around the axis (35–130 mm from it, more than 25 mm lateral to it so
that the spinous and articular processes are left out, and not anterior to the body) is split into 3-D
connected components. A component is a rib when it reaches towards the vertebra (inner radius
≤ ``rib_inner_mm``: a costovertebral/costotransverse joint), runs on far beyond the transverse processes
(outer radius ≥ ``rib_outer_mm``: lumbar transverse processes end 45–62 mm from the body centre on the
shared cases), is not bulky
(≤ 20 ml, z extent ≤ 80 mm: the iliac wings and scapulae are larger) and does not touch the cranial or
caudal end of the field of view (its joint could be out of view). Its vertebra is the disc-to-disc
interval holding the centre of its inner end (shifted 4 mm caudally: the heads of ribs 2–10 straddle the
disc above their own vertebra). Confidence of the landmark "lowest rib-bearing vertebra": 0.9 when ribs
are found on both sides (0.95 when the vertebra above bears ribs too), 0.5 on one side only (then the
labels stay flagged ambiguous: long thoracic transverse processes can pass for a one-sided rib);
none when a rib-free vertebra lies *above* it in view (the pattern is then not that of ribs) or no
rib-free vertebra lies below it (the next one down may bear ribs too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["SacrumResult", "RibResult", "detect_sacrum", "detect_ribs", "section_widths"]


@dataclass(frozen=True)
class SacrumResult:
    index: int | None          # segment index (caudal → cranial) of the sacrum, or None
    confidence: float
    widths_mm: tuple[float, ...]   # median section width per segment


@dataclass(frozen=True)
class RibResult:
    sides: tuple[int, ...]     # per segment (caudal → cranial): 0, 1 or 2 sides with a rib
    lowest: int | None         # segment index of the lowest rib-bearing vertebra (a valid landmark)
    confidence: float


def section_widths(wk, band_mm: float = 10.0) -> list[float]:
    """Median width (mm) of the solid-bone section through each segment's body (see module doc)."""
    bone = wk.filled | wk.cortical
    out = []
    for s in wk.segments:
        trim = (s.hi - s.lo) // 5
        ws = []
        for i in range(s.lo + trim, s.hi - trim + 1):
            k = int(round(wk.axis.points[i, 2]))
            x0, y0 = (int(round(v)) for v in wk.axis.points[i, :2])
            band = int(round(band_mm / wk.w))
            sl = bone[:, max(0, y0 - band):y0 + band + 1, k]
            lab, _ = ndi.label(sl)
            l0 = lab[x0, min(band, y0)]
            if l0 == 0:
                ws.append(0.0)
                continue
            xs = np.nonzero((lab == l0).any(axis=1))[0]
            ws.append(float(xs.max() - xs.min() + 1) * wk.w)
        out.append(float(np.median(ws)) if ws else 0.0)
    return out


def detect_sacrum(wk, *, w_lumbar_mm: float = 70.0, w_sure_mm: float = 100.0) -> SacrumResult:
    """The sacrum among the segments (most cranial one whose section is ≥ ``w_sure_mm`` wide)."""
    widths = section_widths(wk)
    idx = None
    for i, w in enumerate(widths):
        if w >= w_sure_mm:
            idx = i
    if idx is None or idx == len(widths) - 1:
        # nothing wide enough, or no vertebra above it: no landmark
        return SacrumResult(None, 0.0, tuple(widths))
    conf = float(np.clip((widths[idx] - w_lumbar_mm) / (w_sure_mm - w_lumbar_mm), 0.0, 1.0))
    return SacrumResult(idx, conf, tuple(widths))


def _interval_of_sample(wk) -> np.ndarray:
    """Segment index per axis sample (disc-to-disc intervals), −1 outside any segment."""
    n_ax = len(wk.axis.points)
    out = np.full(n_ax, -1, int)
    cuts = [0] + [int(d) for d in wk.discs] + [n_ax]
    for n, s in enumerate(wk.segments):
        mid = (s.lo + s.hi) // 2
        lo = max([c for c in cuts if c <= mid], default=0)
        hi = min([c for c in cuts if c > mid], default=n_ax)
        out[lo:hi] = n
    return out


def detect_ribs(wk, *, first_vertebra: int = 0, rib_inner_mm: float = 45.0, rib_outer_mm: float = 64.0,
                max_volume_ml: float = 20.0, max_z_mm: float = 80.0) -> RibResult:
    """Rib-bearing segments and the lowest rib-bearing vertebra (see module doc).

    ``first_vertebra``: index of the most caudal segment that is a vertebra (segments below it — the
    sacrum and whatever lies under it — are not considered).
    """
    w = wk.w
    cort = wk.cortical
    nx, ny, nz = cort.shape
    nseg = len(wk.segments)
    pts = wk.axis.points
    X = (np.arange(nx)[:, None, None] - pts[None, None, :, 0]) * w      # (nx, 1, nz)
    Y = (np.arange(ny)[None, :, None] - pts[None, None, :, 1]) * w      # (1, ny, nz)
    R = np.sqrt(X ** 2 + Y ** 2)
    ring = cort & (R >= 35.0) & (R <= 130.0) & (np.abs(X) >= 25.0) & ~((R < 60.0) & (Y > 10.0))
    lab, n = ndi.label(ring, structure=np.ones((3, 3, 3), bool))
    seg_of = _interval_of_sample(wk)
    sides = [set() for _ in range(nseg)]
    for j, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        m = lab[sl] == j
        vol_ml = m.sum() * w ** 3 / 1000.0
        if vol_ml < 0.2 or vol_ml > max_volume_ml:
            continue
        if sl[2].start == 0 or sl[2].stop == nz:
            continue
        if (sl[2].stop - sl[2].start) * w > max_z_mm:
            continue
        ii, jj, kk = np.nonzero(m)
        ii, jj, kk = ii + sl[0].start, jj + sl[1].start, kk + sl[2].start
        r = np.hypot((ii - pts[kk, 0]) * w, (jj - pts[kk, 1]) * w)
        # a rib runs on far beyond the transverse processes: it reaches ``rib_far_mm`` from the axis,
        # or leaves the field of view sideways (a crop around the spine) after ``rib_outer_mm``
        if r.min() > rib_inner_mm or r.max() < rib_outer_mm:
            continue
        inner = r <= r.min() + 8.0
        k_in = float(kk[inner].mean()) - 4.0 / w
        k_in = int(np.clip(round(k_in), 0, nz - 1))
        seg = seg_of[k_in]
        if seg < first_vertebra:
            continue
        side = int(np.sign(((ii[inner] - pts[kk[inner], 0]).mean())))
        sides[seg].add(side)
    counts = tuple(len(s) for s in sides)
    bearing = [c > 0 for c in counts]
    lowest = None
    conf = 0.0
    cand = [i for i in range(first_vertebra, nseg) if bearing[i]]
    if cand:
        lo = min(cand)
        # the cranial-most segment cut by the field of view may have its ribs out of view
        above_free = any(not bearing[i] for i in range(lo + 1, nseg)
                         if not (i == nseg - 1 and wk.segments[i].cut_hi))
        below_free = any(not bearing[i] for i in range(first_vertebra, lo))
        if below_free and not above_free:
            lowest = lo
            # one-sided "ribs" are too often long transverse processes (the phantom's thoracic ones
            # reach 64 mm): below 0.6 after the rib-variant reliability, i.e. flagged ambiguous
            conf = 0.9 if counts[lo] >= 2 else 0.5
            if conf > 0.5 and lo + 1 < nseg and bearing[lo + 1]:
                conf = 0.95
    return RibResult(counts, lowest, conf)
