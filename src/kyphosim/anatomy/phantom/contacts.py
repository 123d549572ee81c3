"""Bone-to-bone contacts between different vertebrae in a label map (a phantom self-check).

Two vertebrae "touch" where a voxel of one label and a 6-neighbour voxel of another label are both
bone: no voxel of non-bone tissue separates them, so no CT cue can tell them apart there. In a real
spine adjacent vertebrae are separated by the disc, the facet-joint space (≈ 1–2 mm of cartilage and
joint space) and the soft tissue of the intervertebral foramen and ligaments; the phantom keeps at
least one voxel of such tissue between them (docs/phantom.md, "Separation of adjacent vertebrae").
"""

from __future__ import annotations

from collections import Counter

import numpy as np

__all__ = ["label_contacts", "contact_parts"]


def _pairs(lab: np.ndarray):
    """(index_a, index_b) arrays of 6-neighbour voxel pairs with two different non-zero labels."""
    for ax in range(3):
        n = lab.shape[ax]
        a = np.take(lab, np.arange(n - 1), axis=ax)
        b = np.take(lab, np.arange(1, n), axis=ax)
        m = (a != b) & (a > 0) & (b > 0)
        if not m.any():
            continue
        ia = np.nonzero(m)
        ib = list(ia)
        ib[ax] = ib[ax] + 1
        yield ia, tuple(ib)


def label_contacts(labels: np.ndarray) -> dict[tuple[int, int], int]:
    """Number of voxel faces shared by two different vertebra labels, per label pair (low, high)."""
    lab = np.asarray(labels)
    out: Counter = Counter()
    for ia, ib in _pairs(lab):
        la, lb = lab[ia], lab[ib]
        lo, hi = np.minimum(la, lb), np.maximum(la, lb)
        for (x, y), c in zip(*np.unique(np.stack([lo, hi], 1), axis=0, return_counts=True)):
            out[(int(x), int(y))] += int(c)
    return dict(out)


def contact_parts(labels: np.ndarray, subregions: np.ndarray) -> dict[tuple[int, int, int, int], int]:
    """Contact faces per (lower-id label, its sub-region, higher-id label, its sub-region)."""
    lab, sub = np.asarray(labels), np.asarray(subregions)
    out: Counter = Counter()
    for ia, ib in _pairs(lab):
        la, lb, sa, sb = lab[ia], lab[ib], sub[ia], sub[ib]
        swap = la > lb
        rows = np.stack([np.where(swap, lb, la), np.where(swap, sb, sa),
                         np.where(swap, la, lb), np.where(swap, sa, sb)], 1)
        for r, c in zip(*np.unique(rows, axis=0, return_counts=True)):
            out[tuple(int(v) for v in r)] += int(c)
    return dict(out)
