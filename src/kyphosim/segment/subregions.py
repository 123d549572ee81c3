"""Sub-regions of each vertebra: body, left/right pedicle, posterior elements and the spinal canal.

Works on the full-resolution canonical (R, A, S) label map, slice by axial slice (the spine is assumed
roughly cranio-caudal, as in the rest of the pipeline).

**Canal (5).** In an axial slice through the pedicles the vertebral foramen is a hole of the vertebra's
own mask, enclosed by the body's posterior wall, the pedicles and the laminae. After a closing of
``close_mm`` (thin laminae, partial volume), the holes of the slice that lie behind the body and are at
least ``min_canal_mm2`` large are canal candidates; the largest is the canal of that slice. Slices
where the ring is open (above and below the pedicles, across the discs) get the canal shape of the
nearest slice where it was closed, moved to the linearly interpolated centroid, minus any bone, so
the canal is a continuous tube over the levels in view (as in the phantom and in anatomy).

**Body (1).** Vertebra voxels in front of the canal: AP coordinate ``y`` ≥ the canal's anterior
boundary (median over the canal's width, per level) — the posterior wall is part of the body. (The
body's rounded posterolateral corners, where the pedicles join, are thus given to the pedicles: a
known bias, see docs/segmentation.md.)

**Pedicles (2 left, 3 right; RAS: left is −x).** Non-body vertebra voxels between the body and the
middle of the canal's antero-posterior depth, lateral to the canal (within ``pedicle_lateral_mm`` of
its side walls): the bone joining the body to the arch beside the canal. Farther back (laminae,
articular, transverse and spinous processes) is posterior elements (4).

Vertebrae where no closed ring is found (an arch out of view or a broken ring) fall back to the
axis-distance split body vs posterior elements of the working grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from kyphosim.imaging.labels import SUBREGION_IDS

__all__ = ["make_subregions", "axial_subregions", "find_canal", "canal_frame", "cut_costal"]

BODY, LPED, RPED, POST, CANAL = (SUBREGION_IDS[k] for k in
                                 ("vertebral_body", "pedicle_left", "pedicle_right",
                                  "posterior_elements", "spinal_canal"))


def make_subregions(wk, seg_w: np.ndarray, vert_w: np.ndarray) -> np.ndarray:
    """Coarse sub-region map on the working grid: body (within 25 mm of the axis) vs posterior
    elements. Used as the fallback of :func:`axial_subregions`."""
    out = np.zeros(seg_w.shape, np.uint8)
    body = (seg_w > 0) & (wk.axis_dist_mm <= 25.0)
    out[(vert_w > 0)] = POST
    out[body & (vert_w > 0)] = BODY
    return out


def _disk(radius_mm: float, sp: np.ndarray) -> np.ndarray:
    r = np.maximum(np.round(radius_mm / sp[:2]).astype(int), 1)
    g = np.meshgrid(np.arange(-r[0], r[0] + 1) * sp[0], np.arange(-r[1], r[1] + 1) * sp[1], indexing="ij")
    return (g[0] ** 2 + g[1] ** 2) <= max(radius_mm, float(sp[:2].max())) ** 2 + 1e-6


def find_canal(lab: np.ndarray, verts: list[int], spacing_mm: np.ndarray, *, close_mm: float = 1.5,
               min_canal_mm2: float = 40.0, max_canal_mm2: float = 800.0,
               path_mm: float = 10.0) -> dict[int, tuple]:
    """Per axial slice, the canal hole enclosed by a vertebra's own mask.

    Returns {z: (vertebra label, 2-D hole mask)} for slices where a closed ring was found. Candidates
    are the holes of the closed axial section behind the bone's centroid, ``min_canal_mm2`` to
    ``max_canal_mm2``; per slice the one nearest the running median (± ``path_mm`` along z) of the
    slices' largest candidates is the canal (the canal is a continuous tube), unless it lies farther
    from that path than its own equivalent radius (e.g. the hole of a body's axial section at the level
    of a thin central endplate, inside its cortical ring).
    """
    sp = np.asarray(spacing_mm, float)
    disk = _disk(close_mm, sp)
    pad = disk.shape[0]
    px_mm2 = float(sp[0] * sp[1])
    cands: dict[int, list] = {}
    for v in verts:
        sl = ndi.find_objects((lab == v).astype(np.uint8))
        if not sl or sl[0] is None:
            continue
        bx = sl[0]
        x0, y0 = max(0, bx[0].start - pad), max(0, bx[1].start - pad)
        x1, y1 = min(lab.shape[0], bx[0].stop + pad), min(lab.shape[1], bx[1].stop + pad)
        for z in range(bx[2].start, bx[2].stop):
            m = lab[x0:x1, y0:y1, z] == v
            if m.sum() * px_mm2 < 200.0:
                continue
            mc = ndi.binary_closing(m, structure=disk) | m
            holes = ndi.binary_fill_holes(mc) & ~mc & (lab[x0:x1, y0:y1, z] == 0)
            hl, nh = ndi.label(holes)
            if nh == 0:
                continue
            areas = np.bincount(hl.ravel())[1:] * px_mm2
            # the body is in front (+y) of the canal: keep holes whose centroid lies behind the
            # centroid of the slice's bone
            ys = np.nonzero(m)[1]
            y_bone = float(ys.mean())
            for j, a in enumerate(areas, start=1):
                if a < min_canal_mm2 or a > max_canal_mm2:
                    continue
                xs_j, ys_j = np.nonzero(hl == j)
                if float(ys_j.mean()) > y_bone:
                    continue
                full = np.zeros(lab.shape[:2], bool)
                full[x0:x1, y0:y1] = hl == j
                cands.setdefault(z, []).append((v, full, a, np.array([xs_j.mean() + x0, ys_j.mean() + y0])))
    if not cands:
        return {}
    # the canal is a continuous tube: per slice, the candidate nearest the running median of the largest
    # candidates' centroids (± path_mm along z) — a hole enclosed behind it by processes of the same or
    # a neighbouring vertebra (a larger, but displaced, hole) is not the canal
    zs = np.array(sorted(cands))
    big = np.array([max(cands[z], key=lambda c: c[2])[3] for z in zs])
    half = max(1, int(round(path_mm / float(sp[2]))))
    found = {}
    for i, z in enumerate(zs):
        lo, hi = np.searchsorted(zs, [z - half, z + half + 1])
        ref = np.median(big[lo:hi], axis=0)
        d = [float(np.hypot(*((c[3] - ref) * sp[:2]))) for c in cands[z]]
        j = int(np.argmin(d))
        v, m, a, _ = cands[z][j]
        if d[j] <= np.sqrt(a / np.pi):        # off the tube by more than its own radius: not the canal
            found[z] = (v, m)
    return found


def _shifted(mask2d: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return ndi.shift(mask2d.astype(np.float32), (dx, dy), order=0, mode="constant") > 0.5


def canal_frame(canal_slices: list[np.ndarray], spacing_mm: np.ndarray) -> tuple[float, float, float, float, float]:
    """(y_front, y_mid, x_left, x_right, x_centre) in mm of a vertebra's canal, medians over its
    closed-ring slices (2-D hole masks): the anterior boundary is the most anterior canal voxel per
    column, median over the canal's width."""
    sp = np.asarray(spacing_mm, float)
    fronts, mids, lefts, rights = [], [], [], []
    for cm in canal_slices:
        ii, jj = np.nonzero(cm)
        front = np.full(cm.shape[0], -1)
        np.maximum.at(front, ii, jj)
        fronts.append(float(np.median(front[front >= 0])) * sp[1] + 0.5 * sp[1])
        mids.append(float(jj.mean()) * sp[1])
        lefts.append(float(ii.min()) * sp[0] - 0.5 * sp[0])
        rights.append(float(ii.max()) * sp[0] + 0.5 * sp[0])
    x_l, x_r = float(np.median(lefts)), float(np.median(rights))
    return float(np.median(fronts)), float(np.median(mids)), x_l, x_r, 0.5 * (x_l + x_r)


def _canal_framed(lab: np.ndarray, verts: list[int], canal: dict, sp: np.ndarray):
    """For each vertebra of ``verts`` owning canal sections: (label, its canal slice indices in
    order, :func:`canal_frame` of those sections, the bounding-box slices of its voxels, its mask
    within that box)."""
    for v in verts:
        zz = sorted(z for z in canal if canal[z][0] == v)
        if not zz:
            continue
        m = lab == v
        sl = ndi.find_objects(m.astype(np.uint8))[0]
        yield v, zz, canal_frame([canal[z][1] for z in zz], sp), sl, m[sl]


def cut_costal(lab: np.ndarray, verts: list[int], spacing_mm: np.ndarray, canal: dict | None = None, *,
               anterior_mm: float = 5.0, margin_mm: float = 5.0, rib_bearing: set[int] | None = None,
               process_reach_mm: float = 30.0, hu: np.ndarray | None = None,
               sigma_vox: float = 0.35) -> np.ndarray:
    """Remove rib heads and necks attached to a vertebra's mask (canonical RAS label map).

    No part of a vertebra lies *lateral to its body and in front of its posterior wall*: the
    pedicles, transverse and articular processes all arise behind the posterior wall (the canal's
    anterior boundary). Bone there is a rib (head and neck at the costovertebral joint, passing
    beside the body) or another bone bridged to the vertebra by partial volume. The body's half
    width is measured on its anterior part (``anterior_mm`` in front of the canal, where no rib
    attaches), median over the closed-ring slices, plus ``margin_mm`` for the ring apophysis and
    marginal osteophytes. Voxels beyond it and in front of the canal's anterior boundary are
    removed, then whatever is no longer connected to the vertebra's largest part (the rest of a
    rib reached only through its head). Vertebrae without a closed ring in view are left as they are.

    For the vertebrae in ``rib_bearing`` (ribs detected beside them), bone farther than
    ``process_reach_mm`` lateral to the canal's side walls is removed too: a thoracic transverse
    process ends within ~2–3 cm of the canal, the rib runs on laterally far beyond it.

    With the CT (``hu``, same grid; given by the caller only for voxels ≤ 2 mm, where a 1–2 mm joint
    space stays dark) the rest of the rib is separated at its joints: the voxels found by the two rules
    seed the rib, the bone medial to the canal's side walls (body, laminae, spinous process: no rib
    lies there) seeds the vertebra, and a marker watershed on the negated CT (Gaussian ``sigma_vox``
    voxels) floods the vertebra's mask from both. Flooding by increasing darkness, the rib's neck and
    head are reached through the rib's own cortex before the vertebra's flood crosses the
    costovertebral / costotransverse joint space (a dark valley between two cortices). The rib's
    flood is accepted only where it stops at such a valley: at least half of the voxel faces between
    the two floods must lie on non-bone by the half-maximum criterion (:func:`kyphosim.segment.refine.halfmax_bone`
    at 0.5); otherwise (no joint space: bone continuous with the vertebra, e.g. a long lumbar
    transverse process) only the rule voxels go.
    """
    sp = np.asarray(spacing_mm, float)
    if canal is None:
        canal = find_canal(lab, verts, sp)
    out = lab.copy()
    px = np.arange(lab.shape[0]) * sp[0]
    py = np.arange(lab.shape[1]) * sp[1]
    for v, zz, (y_front, _, x_l, x_r, x_c), sl, mb in _canal_framed(lab, verts, canal, sp):
        dx = np.abs(px[sl[0]] - x_c)
        Y = py[sl[1]][None, :, None]
        ant = mb & (Y >= y_front + anterior_mm)
        widths = [float(dx[ant[:, :, z - sl[2].start].any(axis=1)].max())
                  for z in zz if ant[:, :, z - sl[2].start].any()]
        if not widths:
            continue
        costal = mb & (dx[:, None, None] > float(np.median(widths)) + margin_mm) & (Y >= y_front)
        if rib_bearing is not None and v in rib_bearing:
            costal |= mb & (dx[:, None, None] > 0.5 * (x_r - x_l) + process_reach_mm)
        if not costal.any():
            continue
        if hu is not None:
            vseed = mb & ~costal & (dx[:, None, None] <= 0.5 * (x_r - x_l))
            costal = _rib_flood(mb, costal, vseed, hu[sl], sp, sigma_vox)
        rest = mb & ~costal
        cl, n = ndi.label(rest)
        if n > 1:
            sizes = np.bincount(cl.ravel())
            sizes[0] = 0
            rest = cl == int(np.argmax(sizes))
        o = out[sl]
        o[mb & ~rest] = 0
    return out


def _rib_flood(mb: np.ndarray, rib_seed: np.ndarray, vert_seed: np.ndarray, hu: np.ndarray,
               sp: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Rib part of a vertebra's mask ``mb`` by a two-marker watershed on the negated CT (see
    :func:`cut_costal`); ``rib_seed`` alone when the floods do not meet at a joint-space valley."""
    from kyphosim.segment.refine import ct_watershed, halfmax_bone

    if not vert_seed.any():
        return rib_seed
    mk = np.where(rib_seed, 2, np.where(vert_seed, 1, 0)).astype(np.int32)
    ws = ct_watershed(hu, mk, mb, sigma_vox)
    rib = ws == 2
    if not (rib & ~rib_seed).any():
        return rib_seed
    bone = halfmax_bone(hu, sp, -np.inf, sigma_vox=sigma_vox, frac=0.5)
    gap = faces = 0
    for ax in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(0, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        f = (rib[a] & (ws[b] == 1)) | ((ws[a] == 1) & rib[b])
        faces += int(f.sum())
        gap += int((f & ~(bone[a] & bone[b])).sum())
    if faces == 0 or 2 * gap < faces:
        return rib_seed
    return rib | rib_seed


def _body_outline(front: np.ndarray, closed: np.ndarray, reach_vox: float) -> np.ndarray | None:
    """Axial outline of the body beside the pedicles: voxels in front of the canal in at least half of
    the open-ring slices within ``reach_vox`` slices above and below the closed-ring (pedicle) slices
    (where the body is seen without its pedicles); None when no such slice holds bone."""
    ks = np.nonzero(closed)[0]
    if ks.size == 0:
        return None
    r = max(1, int(np.ceil(reach_vox)))
    cand = [k for k in list(range(ks.min() - r, ks.min())) + list(range(ks.max() + 1, ks.max() + 1 + r))
            if 0 <= k < front.shape[2] and not closed[k] and front[:, :, k].any()]
    if not cand:
        return None
    return front[:, :, cand].sum(axis=2) * 2 >= len(cand)


def axial_subregions(lab: np.ndarray, verts: list[int], spacing_mm: np.ndarray,
                     fallback: np.ndarray | None = None, *, pedicle_lateral_mm: float = 12.0,
                     canal: dict | None = None, outline_reach_mm: float = 3.0) -> np.ndarray:
    """Sub-region map (kyphosim ids) on the grid of ``lab`` (canonical RAS, labels ``verts``).

    ``fallback`` (same grid) supplies body/posterior elements for vertebrae without a closed ring.
    """
    sp = np.asarray(spacing_mm, float)
    out = np.zeros(lab.shape, np.uint8)
    isv = np.isin(lab, verts)
    if fallback is not None:
        out[isv] = np.where(fallback[isv] > 0, fallback[isv], POST)
    else:
        out[isv] = POST
    if canal is None:
        canal = find_canal(lab, verts, sp)
    if not canal:
        return out
    zs = np.array(sorted(canal))
    cent = np.array([[c.mean() for c in np.nonzero(canal[z][1])] for z in zs])
    # canal: a continuous tube from the lowest to the highest vertebra slice
    zv = np.nonzero(isv.any(axis=(0, 1)))[0]
    bone_any = lab > 0
    canal3 = np.zeros(lab.shape, bool)
    for z in range(int(zv.min()), int(zv.max()) + 1):
        if z in canal:
            canal3[:, :, z] = canal[z][1]
            continue
        j = int(np.argmin(np.abs(zs - z)))
        cx = float(np.interp(z, zs, cent[:, 0]))
        cy = float(np.interp(z, zs, cent[:, 1]))
        canal3[:, :, z] = _shifted(canal[zs[j]][1], cx - cent[j, 0], cy - cent[j, 1]) & ~bone_any[:, :, z]
    out[canal3 & (lab == 0)] = CANAL
    # per vertebra: body in front of the canal, pedicles beside its anterior half
    px = np.arange(lab.shape[0]) * sp[0]
    py = np.arange(lab.shape[1]) * sp[1]
    for v, zz, (y_front, y_mid, x_l, x_r, x_c), sl, mb in _canal_framed(lab, verts, canal, sp):
        X = px[sl[0]][:, None, None]
        Y = py[sl[1]][None, :, None]
        body = mb & (Y >= y_front) & np.ones(mb.shape, bool)
        closed = np.zeros(mb.shape[2], bool)
        closed[[z - sl[2].start for z in zz]] = True
        foot = _body_outline(body, closed, outline_reach_mm / sp[2])
        if foot is not None:
            # in the pedicle (closed-ring) slices the body ends at its own outline, that of its
            # sections just above and below the pedicles; the bone beside the canal outside it is pedicle
            beside = np.abs(X[:, :, 0] - x_c) > 0.5 * (x_r - x_l)
            keep2d = foot | ~beside
            body[:, :, closed] &= keep2d[:, :, None]
        ped_zone = mb & ~body & (Y >= y_mid)
        left = ped_zone & (X < x_c) & (X >= x_l - pedicle_lateral_mm)
        right = ped_zone & (X > x_c) & (X <= x_r + pedicle_lateral_mm)
        o = out[sl]
        o[mb] = POST
        o[body] = BODY
        o[left] = LPED
        o[right] = RPED
    return out
