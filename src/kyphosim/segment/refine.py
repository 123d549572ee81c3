"""Per-vertebra mask completion and full-resolution boundary refinement.

On the working grid, the marrow of a fatty, osteoporotic body is often not recovered by the ray-cast
enclosure (holes); the cortical shell is. Each vertebra's mask is therefore completed by filling the
holes of its sagittal and coronal sections (the spinal canal is not a hole in these sections: it runs
out of the vertebra at the top and bottom; it *is* a hole of the axial sections, which are not filled).

The working grid (1.25–3 mm) is coarser than most inputs. The label map is brought back to the input
grid by nearest neighbour and its boundary is then re-drawn on the full-resolution CT in a band of
``band_mm`` around it: a band voxel belongs to the vertebra when it is bone by a locally estimated
partial-volume threshold (:func:`halfmax_bone`: a fraction ``frac`` of the way from the local soft
tissue to the local bone rim) or enclosed, in its sagittal or coronal section, by the vertebra's core
and cortex. Voxels of a neighbour's mask are never taken.

``frac`` = 0.5 is the physical surface of a blurred thick edge (half-maximum); the default 0.3 keeps
the outer partial-volume voxel of the cortex, as the human reference masks of VerSe do (body Dice on
the shared VerSe cases 0.92–0.95 at 0.3 vs 0.89–0.94 at 0.5; the 3 mm TotalSegmentator example and
the TPTBox crop are insensitive to it, the phantom's geometric truth prefers 0.5 by ≤ 0.01 Dice).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["fill_sections", "fill_axial_holes", "complete_labels", "refine_native", "halfmax_bone",
           "reassign_by_connectivity", "fill_interiors", "ct_watershed", "connected_seeds", "halfmax_levels"]


def fill_sections(mask: np.ndarray, axes: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """Fill the 2-D holes of ``mask`` in every section normal to each of ``axes`` (0: sagittal
    sections of a canonical RAS array, 1: coronal)."""
    out = mask.copy()
    for ax in axes:
        m = np.moveaxis(mask, ax, 0)
        o = np.moveaxis(out, ax, 0)
        for i in range(m.shape[0]):
            if m[i].any():
                o[i] |= ndi.binary_fill_holes(m[i])
    return out


def _boxes(lab: np.ndarray, n: int, margin: int) -> list[tuple[slice, ...] | None]:
    sl = ndi.find_objects(lab, max_label=n)
    out = []
    for s in sl:
        if s is None:
            out.append(None)
            continue
        out.append(tuple(slice(max(0, a.start - margin), min(dim, a.stop + margin))
                         for a, dim in zip(s, lab.shape)))
    return out


def complete_labels(lab: np.ndarray, n: int, close_vox: int = 1) -> np.ndarray:
    """Fill each label's sagittal and coronal holes (after a small closing), never over another label."""
    from kyphosim.segment.bone import ball

    out = lab.copy()
    st = ball(close_vox) if close_vox > 0 else None
    for k, box in enumerate(_boxes(lab, n, margin=close_vox + 1), start=1):
        if box is None:
            continue
        sub = lab[box]
        m = sub == k
        if st is not None:
            m = ndi.binary_closing(m, structure=st) | m
        m = fill_sections(m)
        o = out[box]
        o[m & (sub == 0)] = k
    return out


def _box(half_mm: float, sp: np.ndarray) -> tuple[int, ...]:
    """Sizes (voxels) of a box reaching ``half_mm`` (at least one voxel) either side of its centre."""
    return tuple(int(2 * max(1, round(half_mm / s)) + 1) for s in sp)


def halfmax_bone(hu: np.ndarray, spacing_mm: np.ndarray, floor_hu: float, *, rim_mm: float = 2.5,
                 tissue_mm: float = 3.0, tissue_range_hu: tuple[float, float] = (-100.0, 100.0),
                 sigma_vox: float | None = None, frac: float = 0.5) -> np.ndarray:
    """Bone by a locally estimated half-maximum threshold (partial-volume-aware boundary).

    A voxel is bone when its lightly smoothed HU (Gaussian, ``sigma_vox`` voxels; None: 0.5 voxel and
    ≥ 0.5 mm) exceeds the value a fraction ``frac`` of the way from the local soft tissue to the local bone
    rim ``rim = max HU in a box reaching rim_mm`` and the local soft tissue ``tissue = clip(min HU in
    a box reaching tissue_mm, tissue_range_hu)``, and never below ``floor_hu``:

        thr = max(tissue + frac · (rim − tissue), floor_hu)

    For an edge blurred by the scanner's point-spread function the half-way value (``frac`` = 0.5) lies
    on the true surface (the half-maximum criterion of QCT cortical segmentation); a fixed threshold far
    below it (140–200 HU against a 300–1200 HU rim) puts the surface up to one voxel outside, most at
    3 mm where partial volume spreads the edge over a whole voxel.
    """
    return halfmax_levels(hu, spacing_mm, floor_hu, (frac,), rim_mm=rim_mm, tissue_mm=tissue_mm,
                          tissue_range_hu=tissue_range_hu, sigma_vox=sigma_vox)[0]


def halfmax_levels(hu: np.ndarray, spacing_mm: np.ndarray, floor_hu: float, fracs: tuple[float, ...], *,
                   rim_mm: float = 2.5, tissue_mm: float = 3.0,
                   tissue_range_hu: tuple[float, float] = (-100.0, 100.0),
                   sigma_vox: float | None = None) -> list[np.ndarray]:
    """:func:`halfmax_bone` at several fractions ``fracs`` (one smoothing and one rim/tissue estimate)."""
    sp = np.asarray(spacing_mm, float)
    sig = np.maximum(0.5, 0.5 / sp) if sigma_vox is None else np.full(3, sigma_vox)
    sm = ndi.gaussian_filter(hu.astype(np.float32), sig) if np.any(sig > 0) else hu.astype(np.float32)
    rim = ndi.maximum_filter(sm, size=_box(rim_mm, sp))
    tissue = np.clip(ndi.minimum_filter(sm, size=_box(tissue_mm, sp)), *tissue_range_hu)
    return [sm > np.maximum(tissue + f * (rim - tissue), floor_hu) for f in fracs]


def _band_element(band_mm: float, sp: np.ndarray) -> np.ndarray:
    rad = np.maximum(np.round(band_mm / sp).astype(int), 1)
    st = np.zeros(tuple(2 * rad + 1), bool)
    g = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(rad, sp)], indexing="ij")
    st[(g[0] ** 2 + g[1] ** 2 + g[2] ** 2) <= max(band_mm, float(sp.max())) ** 2 + 1e-6] = True
    return st


def fill_axial_holes(mask: np.ndarray, spacing_mm: np.ndarray, max_mm2: float) -> np.ndarray:
    """Fill the holes of ``mask`` in its axial sections (canonical arrays) that are at most ``max_mm2``.

    The cancellous interior of a lamina or process (its cortex seen in cross-section) is a small
    hole; the vertebral foramen (the spinal canal, > 100 mm² in adults) is not filled.
    """
    out = mask.copy()
    px = float(spacing_mm[0] * spacing_mm[1])
    for z in range(mask.shape[2]):
        s = mask[:, :, z]
        if not s.any():
            continue
        h = ndi.binary_fill_holes(s) & ~s
        if not h.any():
            continue
        hl, nh = ndi.label(h)
        small = np.zeros(nh + 1, bool)
        small[1:] = np.bincount(hl.ravel())[1:] * px <= max_mm2
        out[:, :, z] |= small[hl]
    return out


def refine_native(lab: np.ndarray, hu: np.ndarray, spacing_mm: np.ndarray, cortical_hu: float, n: int, *,
                  band_mm: float = 2.0, deep_mm: float = 4.0, frac: float = 0.5, floor_frac: float = 0.75,
                  sigma_vox: float = 0.35, fragment_mm3: float = 100.0,
                  axial_hole_mm2: float = 50.0, dropped: np.ndarray | None = None,
                  spare_halfmax: bool = False) -> np.ndarray:
    """Redraw every vertebra on the full-resolution CT (canonical arrays, same grid).

    The working-grid label map (``lab``, labels 1…n, nearest neighbour on this grid) is trusted only
    for its *deep* interior (eroded by ``deep_mm``: the working grid's closing and 1.25–3 mm voxels
    make its masks up to ~3 mm fat in concave places); everything else is re-decided on this grid:

    1. bone = :func:`halfmax_bone` at ``frac`` (0.5: the half-maximum surface; a voxel whose centre
       lies inside the blurred surface is brighter than half-way) within ``band_mm`` of the label,
       never in a neighbour's voxels;
    2. connected components of bone ∪ deep interior (6-connected): components holding no deep
       interior are another bone seen through the band, or noise (dropped), except pieces smaller than ``fragment_mm3`` within two voxels of the kept
       bone (a thin cortex broken by partial volume);
    3. interiors: holes of the sagittal and coronal sections (marrow of the body, of the processes)
       and axial holes up to ``axial_hole_mm2`` (a process's cancellous core, not the canal);
       then an opening by the 6-neighbourhood removes one-voxel noise spurs of the solid mask
       (``spare_halfmax``: except voxels that are bone by the half-maximum criterion, f = 0.5 — the
       thin cortex of a lamina or process whose cancellous core is not enclosed; for voxels that
       resolve a 1-1.5 mm cortex, i.e. ≤ 2 mm).

    ``dropped`` (bool array like ``lab``, optional) receives the bone of each vertebra's working-grid
    label that step 2 dropped (components without deep interior, e.g. a neighbour's spinous process
    that the working grid gave to this vertebra), for :func:`reassign_by_connectivity`.
    """
    sp = np.asarray(spacing_mm, float)
    st = _band_element(band_mm, sp)
    sd = _band_element(deep_mm, sp)
    rad = (np.asarray(sd.shape) - 1) // 2
    out = np.zeros_like(lab)
    margin = int(rad.max()) + 2 + int(np.ceil(3.0 / sp.min()))
    vox_mm3 = float(np.prod(sp))
    for k, box in enumerate(_boxes(lab, n, margin=margin), start=1):
        if box is None:
            continue
        sub = lab[box]
        m = sub == k
        if m.sum() < 10:
            out[box][m] = k
            continue
        allowed = ndi.binary_dilation(m, structure=st) & ((sub == 0) | m)
        bone, half = halfmax_levels(hu[box], sp, floor_frac * cortical_hu, (frac, 0.5), sigma_vox=sigma_vox)
        bone &= allowed
        half &= allowed
        deep = ndi.binary_erosion(m, structure=sd)
        solid = bone | deep
        cl, nc = ndi.label(solid)
        if nc > 1:
            sizes = np.bincount(cl.ravel())
            keep = np.zeros(nc + 1, bool)
            keep[np.unique(cl[deep])] = True
            if not keep[1:].any():
                keep[int(np.argmax(sizes[1:])) + 1] = True
            keep[0] = False
            # small pieces within two voxels of the kept bone: a thin cortex broken by partial volume
            near = ndi.binary_dilation(keep[cl], iterations=2)
            small = (sizes * vox_mm3 < fragment_mm3)
            small[0] = False
            keep[np.unique(cl[near & small[cl]])] = True
            keep[0] = False
            if dropped is not None:
                d = dropped[box]
                d |= (cl > 0) & ~keep[cl] & m
            solid = keep[cl]
        solid = fill_axial_holes(fill_sections(solid), sp, axial_hole_mm2) & allowed
        # noise spurs of the filled (solid) mask; with ``spare_halfmax`` bone by the half-maximum
        # criterion is no spur (a 1-1.5 mm cortex whose cancellous core no section encloses is one voxel
        # thick on voxels of that size)
        opened = ndi.binary_opening(solid)
        solid = (opened | (solid & half) if spare_halfmax else opened) | deep
        o = out[box]
        o[solid & (o == 0)] = k
    return out


def ct_watershed(hu: np.ndarray, markers: np.ndarray, mask: np.ndarray, sigma_vox: float = 0.35) -> np.ndarray:
    """Marker watershed inside ``mask`` over the negated, lightly smoothed CT (Gaussian ``sigma_vox``
    voxels): floods by decreasing brightness, so a region reached through bright cortex is claimed
    before a flood can cross a dark joint space. Returns the marker label of every masked voxel."""
    from skimage.segmentation import watershed

    img = -ndi.gaussian_filter(hu.astype(np.float32), sigma_vox)
    return watershed(img, markers=markers, mask=mask)


def connected_seeds(seeds: np.ndarray, hu: np.ndarray, spacing_mm: np.ndarray, floor_hu: float, n: int, *,
                    sigma_vox: float = 0.35) -> np.ndarray:
    """Keep of each vertebra's body seed (labels 1…n) only what is joined to its body through its own bone.

    The seed region (working-grid body region: within 25 mm of the axis, between the disc planes) is
    drawn by geometry; on short thoracic levels the superior articular process of the level below rises
    above the disc plane into it (the process's tip lies beside the upper level's lower body, behind
    its pedicle, across the intervertebral foramen and the facet joint space). A seed voxel is kept
    only when, inside its own seed region, it is joined to the seed's main piece of bone (the body's
    cortex and the pedicles arising from it) through **half-maximum bone** (:func:`halfmax_bone`,
    ``frac`` = 0.5: the physical surface, so a joint space or foramen of a voxel or more is a gap),
    6-connected; a non-bone seed voxel (marrow, a process's cancellous core) is kept when its nearest
    seed bone voxel is kept. Dropped seed voxels are not relabelled here: they stay in their mask and
    are re-owned by the flood like any other unseeded voxel.
    """
    sp = np.asarray(spacing_mm, float)
    out = np.zeros_like(seeds)
    for k, box in enumerate(_boxes(seeds, n, margin=2), start=1):
        if box is None:
            continue
        m = seeds[box] == k
        bone = halfmax_bone(hu[box], sp, floor_hu, sigma_vox=sigma_vox, frac=0.5) & m
        cl, nc = ndi.label(bone)
        if nc == 0:
            out[box][m] = k
            continue
        sizes = np.bincount(cl.ravel())
        sizes[0] = 0
        keep = cl == int(np.argmax(sizes))
        if (m & ~bone).any():
            idx = ndi.distance_transform_edt(~bone, sampling=sp, return_distances=False, return_indices=True)
            near_keep = keep[tuple(idx)]
            keep |= m & ~bone & near_keep
        o = out[box]
        o[keep] = k
    return out


def reassign_by_connectivity(lab: np.ndarray, seeds: np.ndarray, hu: np.ndarray, n: int, *,
                             keep: tuple[int, ...] = (), sigma_vox: float = 0.35,
                             orphans: np.ndarray | None = None, spacing_mm: np.ndarray | None = None,
                             floor_hu: float = 150.0) -> np.ndarray:
    """Re-own the vertebra voxels by bony connectivity to a vertebral body (canonical arrays).

    ``lab`` holds the native-grid vertebrae 1…n; ``seeds`` (same grid, labels 1…n, 0 elsewhere) their
    bodies. Inside the union of the vertebrae a marker watershed floods from the seeds over the
    negated, lightly smoothed CT (Gaussian, ``sigma_vox`` voxels): an articular process is reached
    through its own pedicle and lamina, whose cortex is bright all along, before the flood of a
    neighbour can cross the facet joint space, a dark valley between two bright articular plates.
    A voxel changes label only when its present owner's body lies in the same connected piece of the
    union (otherwise its connection runs outside the field of view or across a gap: nothing to
    compare), and never when its owner is in ``keep`` (vertebrae cut by the field of view: their
    pedicles may lie outside it; they may still take back their own processes). With ``spacing_mm``
    given, a piece of a cut vertebra's mask that is detached (within that mask) from its own body seed
    is released to the flood when half-maximum bone (:func:`halfmax_bone` at 0.5, floor ``floor_hu``)
    joins it to the flooding vertebra's body and not to the cut one's.

    ``orphans`` (bool, optional): unlabelled bone that may join the flood (bone that
    :func:`refine_native` dropped from a vertebra it was not connected to); such a voxel goes to the
    vertebra whose flood reaches it, or stays 0 when none does.
    """
    seeded = np.zeros(n + 1, bool)
    seeded[np.unique(seeds[(seeds > 0) & (seeds <= n)])] = True
    seeded[0] = False
    u = seeded[lab]                      # vertebrae without a body seed take no part
    orph = np.zeros(lab.shape, bool) if orphans is None else orphans & (lab == 0)
    u = u | orph
    if not u.any():
        return lab
    sl = ndi.find_objects(u.astype(np.uint8))[0]
    sub_u = u[sl]
    old = lab[sl]
    mk = np.where(sub_u & seeded[seeds[sl]], seeds[sl], 0).astype(np.int32)
    ws = ct_watershed(hu[sl], mk, sub_u, sigma_vox)
    comp, nc = ndi.label(sub_u)
    has = np.zeros((nc + 1) * (n + 1), bool)
    has[comp[mk > 0].astype(np.int64) * (n + 1) + mk[mk > 0]] = True
    frozen = np.zeros(old.shape, bool)
    bcomp = None
    for k in keep:
        if not 0 < k <= n:
            continue
        frozen |= old == k
        if spacing_mm is None or not seeded[k]:
            continue
        # a piece of a cut vertebra's mask detached from its own body seed (within its mask) is
        # released to the flood only when half-maximum bone joins it to the body of the vertebra that
        # floods it and not to its own (the tip of a long spinous process of the level above that the
        # working grid gave to the cut level); across a joint space it stays
        cl, nc = ndi.label(old == k)
        if nc < 2:
            continue
        if bcomp is None:
            hb = halfmax_bone(hu[sl], spacing_mm, floor_hu, sigma_vox=sigma_vox, frac=0.5)
            bcomp, nb = ndi.label(hb)
            # seed labels reached by each bone piece (n + 1 columns)
            bseed = np.zeros((nb + 1, n + 1), bool)
            sm = (mk > 0) & (bcomp > 0)
            bseed[bcomp[sm], mk[sm]] = True
        own = set(np.unique(cl[mk == k]).tolist())
        for c, pb in enumerate(ndi.find_objects(cl), start=1):
            if c in own or pb is None:
                continue
            piece = cl[pb] == c
            bc = bcomp[pb][piece]
            bs = bseed[np.unique(bc[bc > 0])]
            if not bs.any() or bs[:, k].any():
                continue
            ok = bs.any(axis=0)
            fz = frozen[pb]
            fz[piece & ok[ws[pb]]] = False
    chg = (ws > 0) & (ws != old) & has[comp.astype(np.int64) * (n + 1) + old] & ~frozen
    chg |= (ws > 0) & orph[sl]
    out = lab.copy()
    o = out[sl]
    o[chg] = ws[chg]
    return out


def fill_interiors(lab: np.ndarray, spacing_mm: np.ndarray, n: int, *, axial_hole_mm2: float = 50.0) -> np.ndarray:
    """Add to each vertebra 1…n the unlabelled voxels its mask encloses: holes of its sagittal and
    coronal sections and axial holes up to ``axial_hole_mm2`` (as in :func:`refine_native` step 3);
    never takes another label's voxel and removes nothing."""
    sp = np.asarray(spacing_mm, float)
    out = lab.copy()
    for k, box in enumerate(_boxes(lab, n, margin=1), start=1):
        if box is None:
            continue
        sub = lab[box]
        m = sub == k
        f = fill_axial_holes(fill_sections(m), sp, axial_hole_mm2)
        o = out[box]
        o[f & (o == 0)] = k
    return out
