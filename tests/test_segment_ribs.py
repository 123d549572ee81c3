"""Rib separation at the costovertebral / costotransverse joint space (segment.subregions.cut_costal)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from kyphosim.segment.subregions import cut_costal


def _thoracic_scene(long_process: bool = False):
    """A vertebra on a 1 mm RAS grid (body in front, +y; a ring of pedicles and laminae around the
    canal; a spinous process; a transverse process on the right) and, on the right, a rib whose head
    lies beside the body and whose neck passes in front of the transverse-process tip, 2 mm (two
    voxels) off the vertebra everywhere (the joint space), then runs laterally. The label map holds
    vertebra, rib and the joint spaces (a fat mask, as the working grid gives). With
    ``long_process`` there is no rib: the transverse process itself runs on to 58 mm (bone
    continuous with the vertebra). Returns hu, label map, vertebra truth, rib truth."""
    sh = (130, 90, 40)
    x = np.arange(sh[0])[:, None, None] - 60.0
    y = np.arange(sh[1])[None, :, None] - 45.0
    z = np.arange(sh[2])[None, None, :]
    zin = (z >= 8) & (z < 32)
    body = (np.abs(x) <= 17) & (y >= 5) & (y <= 33) & zin
    canal = (np.abs(x) <= 9) & (y > -12) & (y < 5)
    ring = (np.abs(x) <= 15) & (y >= -18) & (y < 5) & ~canal & (z >= 12) & (z < 28)
    spinous = (np.abs(x) <= 3) & (y >= -35) & (y < -18) & (z >= 12) & (z < 28)
    tp_end = 58 if long_process else 36
    tp = (x >= 15) & (x <= tp_end) & (y >= -17) & (y <= -11) & (z >= 16) & (z < 24)
    vert = np.broadcast_to(body | ring | spinous | tp, sh)
    rib = np.zeros(sh, bool)
    if not long_process:
        zr = (z >= 17) & (z < 24)
        head = (x >= 20) & (x <= 25) & (y >= -8) & (y <= 8) & zr
        neck = (x >= 20) & (x <= 62) & (y >= -8) & (y <= -3) & zr
        rib = np.broadcast_to(head | neck, sh) & ~ndi.binary_dilation(vert, iterations=2)
    lab = np.where(ndi.binary_closing(vert | rib, iterations=3) | vert | rib, 7, 0).astype(np.int32)
    hu = np.where(vert | rib, 900.0, 40.0)
    hu = ndi.gaussian_filter(hu, 1.0 / 2.3548).astype(np.float32)
    return hu, lab, vert, rib


def test_rib_head_and_neck_go_at_the_joint_space():
    hu, lab, vert, rib = _thoracic_scene()
    sp = np.ones(3)
    rules_only = cut_costal(lab, [7], sp, rib_bearing={7}) == 7
    flood = cut_costal(lab, [7], sp, rib_bearing={7}, hu=hu) == 7
    medial = rib & (np.arange(lab.shape[0])[:, None, None] - 60.0 < 39)   # within the 30 mm rule
    # the two rules alone keep the rib's neck (medial part, between the body and the process tip)
    assert rules_only[medial].mean() > 0.8
    # separated at the joint space: the whole rib goes, the vertebra stays
    assert flood[rib].mean() < 0.02
    assert flood[vert].mean() > 0.99


def test_bone_continuous_with_the_vertebra_only_loses_the_rule_voxels():
    """No joint space (a long process on a vertebra taken as rib-bearing): the flood finds no dark
    valley between the floods, so only the 30 mm rule applies, as without the CT."""
    hu, lab, vert, _ = _thoracic_scene(long_process=True)
    sp = np.ones(3)
    rules_only = cut_costal(lab, [7], sp, rib_bearing={7})
    flood = cut_costal(lab, [7], sp, rib_bearing={7}, hu=hu)
    assert (flood == rules_only).all()
    x = np.arange(lab.shape[0])[:, None, None] - 60.0
    assert (flood[vert & (x < 38)] == 7).all()
    assert not (flood[vert & (x > 41)] == 7).any()


def test_mid_thoracic_phantom_is_split_at_the_discs():
    """Short mid-thoracic bodies (17–20 mm, discs 4–5 mm): the marrow between two endplates is not
    taken for a disc (doublet reach capped by the disc-to-disc period). Without the cap the split
    falls at mid-body, half a level off (Dice ≈ 0.4–0.5, an extra level)."""
    from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
    from kyphosim.segment import segment_spine

    ph = make_phantom(PhantomSpec(levels="T5-T8", fractures=[], bmd_mg_cm3=85, spacing_mm=1.5, seed=5))
    res = segment_spine(ph.ct, backend="classic", first_label="T5")
    assert [lv["name"] for lv in res.levels] == ["T5", "T6", "T7", "T8"]
    o, g = res.labels.data, ph.labels.data
    for v in (13, 14):                  # T6, T7 (fully in view)
        a, b = o == v, g == v
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.8


def test_orphan_bone_joins_the_vertebra_it_is_joined_to():
    """Bone that the native redraw dropped from the wrong vertebra's mask (an orphan: e.g. a long
    thoracic spinous process the working grid gave to the level below) goes to the vertebra whose
    flood reaches it through bone; an orphan joined to no vertebra stays unlabelled."""
    from kyphosim.segment.refine import reassign_by_connectivity

    hu = np.full((30, 12, 12), -50.0, np.float32)
    lab = np.zeros(hu.shape, np.int32)
    seeds = np.zeros(hu.shape, np.int32)
    hu[2:8, 2:10, 2:10] = 600; lab[2:8, 2:10, 2:10] = 1; seeds[3:7, 3:9, 3:9] = 1
    hu[22:28, 2:10, 2:10] = 600; lab[22:28, 2:10, 2:10] = 2; seeds[23:27, 3:9, 3:9] = 2
    hu[8:12, 5:7, 5:7] = 700; lab[8:12, 5:7, 5:7] = 1          # 1's process ...
    hu[12:16, 5:7, 5:7] = 700                                   # ... whose tip no mask holds
    hu[18:20, 0:2, 0:2] = 700                                   # a separate bone fragment
    orphans = np.zeros(hu.shape, bool)
    orphans[12:16, 5:7, 5:7] = True
    orphans[18:20, 0:2, 0:2] = True
    out = reassign_by_connectivity(lab, seeds, hu, 2, orphans=orphans)
    assert (out[12:16, 5:7, 5:7] == 1).all()
    assert (out[18:20, 0:2, 0:2] == 0).all()
    assert (reassign_by_connectivity(lab, seeds, hu, 2) == lab).all()


def test_fill_interiors_adds_enclosed_voxels_only():
    """A process's cortex (a hollow bar, label 1) encloses its cancellous core: filled; another
    label's voxels and open space stay as they are; nothing is removed."""
    from kyphosim.segment.refine import fill_interiors

    lab = np.zeros((20, 20, 20), np.int32)
    lab[4:16, 4:10, 4:10] = 1
    lab[5:15, 5:9, 5:9] = 0          # the core, enclosed in every section
    lab[7, 6, 6] = 2                 # a voxel of another vertebra inside it
    lab[12:18, 12:18, 12:18] = 3
    out = fill_interiors(lab, np.ones(3), 3)
    assert (out[5:15, 5:9, 5:9][lab[5:15, 5:9, 5:9] == 0] == 1).all()
    assert out[7, 6, 6] == 2
    assert ((out == lab) | (lab == 0)).all()
    assert (out[0:3] == 0).all()
