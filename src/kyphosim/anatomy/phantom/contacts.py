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

__all__ = ["label_contacts", "contact_parts", "rib_mask", "rib_contacts"]


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


def rib_mask(phantom) -> np.ndarray:
    """Voxels of the phantom's ribs on its label grid (array order of ``phantom.labels``): the rib's
    level label where the voxel centre lies inside a rib (``VertebraShape.rib_sdf`` ≤ 0), else 0.

    The ribs carry no label in the phantom (bone in the CT only); this redraws them for checks."""
    lab = phantom.labels
    out = np.zeros(lab.shape, np.uint8)
    inv = np.linalg.inv(lab.affine)
    for s in phantom.shapes:
        corners = s.rib_box_world()
        if corners is None:
            continue
        ijk = corners @ inv[:3, :3].T + inv[:3, 3]
        a = np.clip(np.floor(ijk.min(0)).astype(int), 0, lab.shape)
        b = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, 0, lab.shape)
        if np.any(b <= a):
            continue
        g = np.stack(np.meshgrid(*[np.arange(i, j) for i, j in zip(a, b)], indexing="ij"), -1).reshape(-1, 3)
        w = g @ lab.affine[:3, :3].T + lab.affine[:3, 3]
        inside = (s.rib_sdf(s.to_local(w)) <= 0).reshape(tuple(b - a))
        box = out[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        box[inside] = s.label
    return out


def rib_contacts(ribs: np.ndarray, labels: np.ndarray) -> dict[tuple[int, int], int]:
    """Voxel faces (6-neighbours) and shared voxels between a rib (``ribs``, its level's label) and a
    vertebra (``labels``), per (rib level, vertebra label): bone-to-bone contacts with no joint space."""
    r, lab = np.asarray(ribs), np.asarray(labels)
    pairs = [(r, lab)]                                   # shared voxels
    for ax in range(3):
        n = lab.shape[ax]
        lo, hi = np.arange(n - 1), np.arange(1, n)
        pairs += [(np.take(r, i, axis=ax), np.take(lab, j, axis=ax)) for i, j in ((lo, hi), (hi, lo))]
    out: Counter = Counter()
    for ra, lb in pairs:
        m = (ra > 0) & (lb > 0)
        for (a, b), c in zip(*np.unique(np.stack([ra[m], lb[m]], 1), axis=0, return_counts=True)):
            out[(int(a), int(b))] += int(c)
    return dict(out)
