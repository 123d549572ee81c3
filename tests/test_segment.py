"""Tests of kyphosim.segment: labelling rules, anchors, the pipeline on a shared case and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kyphosim.errors import InputError
from kyphosim.segment.labelling import Landmarks, assign_labels


def names(levels):
    return [lv.name for lv in levels]


def test_sacrum_landmark_counts_up_from_l5():
    levels, amb, method = assign_labels(4, Landmarks(sacrum_below=True, sacrum_confidence=1.0))
    assert names(levels) == ["L2", "L3", "L4", "L5"]
    assert not amb and method == "sacrum"
    assert levels[-1].confidence > levels[0].confidence


def test_lowest_rib_is_t12():
    levels, amb, method = assign_labels(4, Landmarks(rib_bearing=(True, True, False, False), rib_confidence=1.0))
    assert names(levels) == ["T11", "T12", "L1", "L2"]
    assert method == "ribs" and amb and max(lv.confidence for lv in levels) < 0.6


def test_disagreeing_landmarks_flag_transitional():
    # six vertebrae without ribs above the sacrum: L6 or a lumbarised S1
    levels, amb, _ = assign_labels(7, Landmarks(sacrum_below=True, sacrum_confidence=1.0,
                                                rib_bearing=(True,) + (False,) * 6, rib_confidence=1.0))
    assert amb
    assert all("transitional_or_rib_variant" in lv.flags for lv in levels)
    assert max(lv.confidence for lv in levels) < 0.6


def test_no_landmark_is_ambiguous_and_never_confident():
    levels, amb, method = assign_labels(3, Landmarks())
    assert amb and method == "guess"
    assert all(lv.confidence <= 0.3 for lv in levels)
    assert all("no_landmark_in_view" in lv.flags for lv in levels)


def test_anchor_and_first_label():
    levels, amb, _ = assign_labels(3, Landmarks(), z_mm=[100.0, 70.0, 40.0], anchor=("L1", 72.0))
    assert names(levels) == ["T12", "L1", "L2"] and not amb
    levels, _, _ = assign_labels(3, Landmarks(), first_label="T11")
    assert names(levels) == ["T11", "T12", "L1"]


def test_bad_anchor_is_an_input_error():
    from kyphosim.segment import parse_anchor

    with pytest.raises(InputError):
        parse_anchor("L1:12")
    assert parse_anchor("l1=-12.5") == ("L1", -12.5)


def test_surface_fraction_out_of_range_is_an_input_error(tmp_path, cli, capsys):
    from kyphosim.imaging.io import save_volume
    from kyphosim.imaging.volume import Volume

    ct = tmp_path / "ct.nii.gz"
    hu = np.full((8, 8, 8), -1000.0, np.float32)
    hu[2:6, 2:6, 2:6] = 40.0
    hu[4, 4, 4] = 700.0
    save_volume(Volume(hu, np.eye(4)), ct)
    code, _, err = cli(["segment", ct, "--out", tmp_path / "l.nii.gz", "--backend", "classic",
                        "--surface-fraction", "1.5"], capsys)
    assert code == 2 and "surface fraction" in err


@pytest.mark.realdata
def test_segment_verse008_bodies_and_cli(shared_data, tmp_path, cli, capsys):
    from kyphosim.imaging.io import load_labels

    ct = shared_data / "verse19" / "sub-verse008_ct.nii.gz"
    out = tmp_path / "labels.nii.gz"
    code, stdout, err = cli(["segment", ct, "--out", out, "--backend", "classic"], capsys)
    assert code == 0, err
    side = json.loads((tmp_path / "labels.json").read_text())
    assert side["schema"] == "kyphosim.segmentation/1"
    assert len(side["levels"]) >= 5
    ours = load_labels(out)
    ref = load_labels(shared_data / "verse19" / "sub-verse008_seg-vert_msk.nii.gz")
    assert ours.same_grid(ref) and ours.axcodes == ref.axcodes
    # every fully visible reference vertebra is matched by one predicted vertebra with Dice > 0.45
    for vid in (20, 21, 22, 23):
        rm = ref.data == vid
        cand = np.bincount(ours.data[rm].ravel(), minlength=30)
        cand[0] = 0
        om = ours.data == int(np.argmax(cand))
        d = 2 * (om & rm).sum() / (om.sum() + rm.sum())
        assert d > 0.45, (vid, d)


def test_phantom_without_landmarks_is_ambiguous_and_anchor_fixes_names():
    from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
    from kyphosim.segment import segment_spine

    ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=[], bmd_mg_cm3=85, spacing_mm=(1.5, 1.5, 1.5),
                                  orientation="PIR", seed=5))
    free = segment_spine(ph.ct, backend="classic")
    assert free.ambiguous and all(lv["confidence"] <= 0.3 for lv in free.levels)
    res = segment_spine(ph.ct, backend="classic", first_label="T12")
    assert res.labels.same_grid(ph.labels)
    assert [lv["name"] for lv in res.levels] == ["T12", "L1", "L2"]
    full = [lv["label"] for lv in res.levels if lv["fully_in_view"]]
    assert full
    for v in full:
        a, b = res.labels.data == v, ph.labels.data == v
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.5


def test_doublet_finds_dip_between_two_peaks_only():
    from kyphosim.segment.split import doublet

    p = np.zeros(60)
    p[20], p[26] = 1.0, 1.0          # two endplates 6 mm apart around a disc at 23
    p[40] = 1.0                      # a lone bright line (no disc)
    d = doublet(p, 1.0, reach_mm=8.0)
    assert np.argmax(d) in (21, 22, 23, 24, 25) and d[23] == 1.0
    assert d[45] == 0.0 and d[10] == 0.0


def _fake_totalsegmentator(root, monkeypatch, with_weights: bool):
    """A stand-in ``totalsegmentator`` package (no network, no real weights) and its home folder."""
    pkg = root / "fakepkg" / "totalsegmentator"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "map_to_binary.py").write_text(
        "class_map = {'total': {1: 'spleen', 27: 'vertebrae_L5', 28: 'vertebrae_L4', 25: 'sacrum'}}\n")
    (pkg / "python_api.py").write_text(
        "import nibabel as nib, numpy as np\n"
        "CALLS = []\n"
        "def totalsegmentator(input, output, ml=False, task='total', roi_subset=None, fast=False, quiet=False):\n"
        "    CALLS.append(dict(ml=ml, task=task, roi_subset=roi_subset, fast=fast))\n"
        "    img = nib.load(input)\n"
        "    d = np.zeros(img.shape, np.uint8)\n"
        "    d[:, :, :3] = 25; d[:, :, 3:6] = 27; d[:, :, 6:9] = 28; d[0, 0, 9] = 1\n"
        "    nib.save(nib.Nifti1Image(d, img.affine), output)\n")
    monkeypatch.syspath_prepend(str(root / "fakepkg"))
    home = root / "tshome"
    if with_weights:
        w = home / "nnunet" / "results" / "Dataset292_TotalSegmentator_part2_vertebrae_1532subj" / "fold_0"
        w.mkdir(parents=True)
        (w / "checkpoint_final.pth").write_bytes(b"not real weights")
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)


def test_totalsegmentator_backend_needs_weights_on_disk(tmp_path, monkeypatch):
    from kyphosim.segment.backends import resolve_backend, totalsegmentator_available

    _fake_totalsegmentator(tmp_path, monkeypatch, with_weights=False)
    assert not totalsegmentator_available()
    assert resolve_backend("auto") == "classic"
    with pytest.raises(InputError):
        resolve_backend("totalsegmentator")


def test_totalsegmentator_backend_maps_names_to_verse(tmp_path, monkeypatch):
    import sys

    from kyphosim.imaging.volume import Volume
    from kyphosim.segment import segment_spine
    from kyphosim.segment.backends import resolve_backend

    _fake_totalsegmentator(tmp_path, monkeypatch, with_weights=True)
    assert resolve_backend("auto") == "totalsegmentator"
    aff = np.diag([-1.0, -1.0, 2.0, 1.0])           # LPS input: the output must stay on its grid
    ct = Volume(np.zeros((4, 5, 10), np.int16), aff)
    res = segment_spine(ct, backend="auto")
    assert res.backend == "totalsegmentator" and res.labels.same_grid(ct)
    d = res.labels.data
    assert (d[:, :, :3] == 26).all() and (d[:, :, 3:6] == 24).all() and (d[:, :, 6:9] == 23).all()
    assert d[0, 0, 9] == 0                           # organs are not vertebrae
    assert [lv["name"] for lv in res.levels] == ["L4", "L5"]
    calls = sys.modules["totalsegmentator.python_api"].CALLS
    assert calls[-1]["ml"] and "vertebrae_L5" in calls[-1]["roi_subset"] and not calls[-1]["fast"]
    for m in [m for m in sys.modules if m.startswith("totalsegmentator")]:
        del sys.modules[m]


@pytest.mark.realdata
def test_landmarks_label_the_totalsegmentator_example(shared_data):
    """Sacrum and ribs in view: confident, correct labels (the reference masks are used to score)."""
    from kyphosim.imaging.io import load_ct, load_labels
    from kyphosim.segment import segment_spine

    d = shared_data / "totalsegmentator_example"
    ct = load_ct(d / "example_ct.nii.gz")
    ref = load_labels(d / "example_seg_v1", reference=ct).data
    res = segment_spine(ct, backend="classic")
    assert res.sacrum_found and not res.ambiguous
    ours = res.labels.data
    for vid in (20, 21, 22, 23, 24):
        rm = ref == vid
        cand = np.bincount(ours[rm].ravel(), minlength=30)
        cand[0] = 0
        assert int(np.argmax(cand)) == vid
        om = ours == vid
        assert 2 * (om & rm).sum() / (om.sum() + rm.sum()) > 0.5


def test_axial_subregions_canal_pedicles_body():
    """A synthetic vertebra (1 mm grid, RAS): body in front, a ring of pedicles and laminae around
    the canal, a spinous process behind. Canal, left/right pedicles and body are recovered."""
    from kyphosim.imaging.labels import SUBREGION_IDS as S
    from kyphosim.segment.subregions import axial_subregions

    lab = np.zeros((80, 90, 40), np.uint8)
    x = np.arange(80)[:, None, None] - 40.0
    y = np.arange(90)[None, :, None] - 45.0
    z = np.arange(40)[None, None, :]
    zin = (z >= 8) & (z < 32)
    body = (np.abs(x) <= 20) & (y >= 5) & (y <= 35) & zin
    canal = (np.abs(x) <= 9) & (y > -12) & (y < 5)
    ring = (np.abs(x) <= 15) & (y >= -18) & (y < 5) & ~canal & (z >= 12) & (z < 28)
    spinous = (np.abs(x) <= 3) & (y >= -35) & (y < -18) & (z >= 12) & (z < 28)
    lab[np.broadcast_to(body | ring | spinous, lab.shape)] = 7
    sub = axial_subregions(lab, [7], np.ones(3))
    inner = (slice(None), slice(None), 20)
    assert np.all(sub[inner][np.broadcast_to(canal, lab.shape)[inner]] == S["spinal_canal"])
    assert (sub == S["spinal_canal"]).any(axis=(0, 1))[8:32].all()   # a tube, also where the ring is open
    assert sub[40, 70, 20] == S["vertebral_body"]
    assert sub[40 - 12, 45 - 2, 20] == S["pedicle_left"]        # −x is the patient's left (RAS)
    assert sub[40 + 12, 45 - 2, 20] == S["pedicle_right"]
    assert sub[40, 45 - 30, 20] == S["posterior_elements"]
    assert not np.any((sub == S["spinal_canal"]) & (lab > 0))


def _blurred_box_scene():
    """A hollow 'vertebra' (1.5 mm cortex, 1200 HU; fatty 60 HU marrow) and a separate thin bar (3.2 mm
    across, thinner than the trusted deep interior of a fat working mask) 3 mm away, 0.8 mm voxels, blurred like a CT (FWHM 1 mm), in 40 HU tissue. Returns hu, truth, rib."""
    from scipy import ndimage as ndi

    sp = 0.8
    g = np.mgrid[0:70, 0:70, 0:60].astype(float) * sp
    x, y, z = g
    outer = (np.abs(x - 22.2) <= 12) & (np.abs(y - 28.2) <= 12) & (np.abs(z - 24.2) <= 10)
    inner = (np.abs(x - 22.2) <= 10.5) & (np.abs(y - 28.2) <= 10.5) & (np.abs(z - 24.2) <= 8.5)
    rib = (x >= 37) & (x <= 52) & (np.abs(y - 28) <= 1.6) & (np.abs(z - 24) <= 1.6)
    hu = np.full(x.shape, 40.0)
    hu[outer] = 1200.0
    hu[inner] = 60.0
    hu[rib] = 1200.0
    hu = ndi.gaussian_filter(hu, (1.0 / 2.3548) / sp)
    return hu.astype(np.float32), outer, rib, np.full(3, sp)


@pytest.mark.parametrize("frac", [0.3, 0.5])
def test_refine_native_redraws_boundary_fills_marrow_drops_other_bone(frac):
    from scipy import ndimage as ndi

    from kyphosim.segment.refine import refine_native

    hu, truth, rib, sp = _blurred_box_scene()
    # a fat working-grid label: truth and rib bridged and dilated by 2.4 mm, as on a coarse grid
    fat = ndi.binary_dilation(truth | rib, iterations=3)
    out = refine_native(fat.astype(np.int32), hu, sp, 200.0, 1, frac=frac)
    m = out == 1
    dice = 2 * (m & truth).sum() / (m.sum() + truth.sum())
    assert dice > (0.95 if frac == 0.5 else 0.9)
    assert (m & rib).sum() < 0.05 * rib.sum()          # the separate bar is another bone
    inner = ndi.binary_erosion(truth, iterations=4)
    assert m[inner].mean() > 0.99                        # fatty marrow below any bone threshold is filled


def test_reassign_by_connectivity_follows_bone_not_the_joint_space():
    """A process joined to body 1 by bright bone but labelled 2, with a dark 1-voxel joint space to
    vertebra 2's own bone, goes back to 1; an owner in ``keep`` or without a body seed keeps it."""
    from kyphosim.segment.refine import reassign_by_connectivity

    hu = np.full((30, 12, 12), -50.0, np.float32)
    lab = np.zeros(hu.shape, np.int32)
    seeds = np.zeros(hu.shape, np.int32)
    hu[2:8, 2:10, 2:10] = 600; lab[2:8, 2:10, 2:10] = 1; seeds[3:7, 3:9, 3:9] = 1    # body 1
    hu[22:28, 2:10, 2:10] = 600; lab[22:28, 2:10, 2:10] = 2; seeds[23:27, 3:9, 3:9] = 2  # body 2
    hu[8:14, 5:7, 5:7] = 700; lab[8:12, 5:7, 5:7] = 1; lab[12:14, 5:7, 5:7] = 2       # 1's pedicle + process
    hu[14, 5:7, 5:7] = 150; lab[14, 5:7, 5:7] = 2        # joint space: partial-volume contact, darker
    hu[15:22, 5:7, 5:7] = 700; lab[15:22, 5:7, 5:7] = 2   # 2's own process
    out = reassign_by_connectivity(lab, seeds, hu, 2)
    assert (out[12:14, 5:7, 5:7] == 1).all()              # process back to the body it is joined to
    assert (out[15:22, 5:7, 5:7] == 2).all() and (out[22:28] == lab[22:28]).all()
    assert (out[lab == 0] == 0).all()
    kept = reassign_by_connectivity(lab, seeds, hu, 2, keep=(2,))
    assert (kept == lab).all()
    no_seed = reassign_by_connectivity(lab, np.where(seeds == 2, 2, 0), hu, 2)
    assert (no_seed == lab).all()


def test_connected_seeds_drop_a_process_across_a_joint_space():
    """A body seed (cortex + dark marrow + a pedicle) keeps everything joined to its cortex through
    bone; a process piece inside the same geometric seed region but across a 2-voxel dark gap (the
    lower level's articular process beside the body) is dropped, and the flood then gives it to the
    level whose own bone it is joined to."""
    from kyphosim.segment.refine import connected_seeds, reassign_by_connectivity

    hu = np.full((40, 24, 24), 0.0, np.float32)
    lab = np.zeros(hu.shape, np.int32)
    hu[4:20, 4:20, 4:20] = 700                     # body 1 cortex
    hu[6:18, 6:18, 6:18] = 60                      # fatty marrow (below any bone threshold)
    lab[4:20, 4:20, 4:20] = 1
    hu[10:14, 20:23, 10:14] = 700; lab[10:14, 20:23, 10:14] = 1   # pedicle joined to the cortex
    hu[24:36, 4:23, 4:20] = 700; lab[24:36, 4:23, 4:20] = 2        # body 2 (and its arch root)
    # body 2's process rising beside body 1 across a joint space, joined to body 2 by bone; the joint
    # space is partial-volumed (150 HU) and inside body 1's mask, so the union is one piece
    hu[16:24, 21:23, 16:20] = 700; lab[16:24, 21:23, 16:20] = 2
    hu[16:24, 20, 16:20] = 150; lab[16:20, 20, 16:20] = 1
    lab[16:22, 21:23, 16:20] = 1                   # the geometric split gave its upper part to 1
    region = np.zeros(hu.shape, bool)
    region[2:22] = True                            # body 1's geometric seed region (below the disc plane)
    seeds = np.where(region & (lab == 1), 1, 0)
    seeds[26:34, 6:18, 6:18] = 2
    kept = connected_seeds(seeds, hu, np.ones(3), 150.0, 2)
    assert (kept[4:20, 4:20, 4:20] == 1).all()     # cortex and marrow
    assert (kept[10:14, 20:23, 10:14] == 1).all()  # the pedicle
    assert not kept[16:22, 21:23, 16:20].any()     # the other level's process is no seed
    out = reassign_by_connectivity(lab, kept, hu, 2)
    assert (out[16:24, 21:23, 16:20] == 2).all()
    # with the geometric seeds the process stays with body 1 (what the restriction fixes)
    assert (reassign_by_connectivity(lab, seeds, hu, 2)[16:22, 21:23, 16:20] == 1).all()


def test_cut_vertebra_releases_a_detached_piece_joined_by_bone_to_its_neighbour():
    """A cut vertebra (``keep``) holding the tip of the neighbour's process: released to the neighbour
    when bone joins the tip to the neighbour's body (and not to its own), kept across a joint space."""
    from kyphosim.segment.refine import reassign_by_connectivity

    def case(joint: bool):
        hu = np.full((30, 12, 12), -50.0, np.float32)
        lab = np.zeros(hu.shape, np.int32)
        seeds = np.zeros(hu.shape, np.int32)
        hu[2:8, 2:10, 2:10] = 600; lab[2:8, 2:10, 2:10] = 1; seeds[3:7, 3:9, 3:9] = 1
        hu[22:28, 2:10, 2:10] = 600; lab[22:28, 2:10, 2:10] = 2; seeds[23:27, 3:9, 3:9] = 2   # cut level
        hu[8:18, 5:7, 5:7] = 700; lab[8:14, 5:7, 5:7] = 1; lab[14:18, 5:7, 5:7] = 2   # 1's process, tip held by 2
        if joint:
            hu[13, 5:7, 5:7] = 0                          # the tip is another bone across a joint space
        hu[8:22, 2, 2] = 150; lab[8:22, 2, 2] = 1         # a dark partial-volume contact: one union piece
        return hu, lab, seeds

    hu, lab, seeds = case(joint=False)
    out = reassign_by_connectivity(lab, seeds, hu, 2, keep=(2,), spacing_mm=np.ones(3), floor_hu=150.0)
    assert (out[14:18, 5:7, 5:7] == 1).all()
    assert (out[22:28] == lab[22:28]).all()               # the cut level keeps what is joined to its body
    assert (reassign_by_connectivity(lab, seeds, hu, 2, keep=(2,))[14:18, 5:7, 5:7] == 2).all()  # no bone test
    hu, lab, seeds = case(joint=True)
    out = reassign_by_connectivity(lab, seeds, hu, 2, keep=(2,), spacing_mm=np.ones(3), floor_hu=150.0)
    assert (out[14:18, 5:7, 5:7] == 2).all()


def test_refine_native_keeps_a_one_voxel_cortex_only_when_told():
    """A 1-voxel-thick cortical plate (a lamina's shell whose core no section encloses) is half-maximum
    bone: the spur opening removes it unless ``spare_halfmax``."""
    from scipy import ndimage as ndi

    from kyphosim.segment.refine import refine_native

    hu = np.full((40, 40, 40), 20.0, np.float32)
    hu[10:26, 10:26, 10:26] = 700.0                     # a solid block of bone
    hu[26:34, 17, 12:24] = 900.0                        # a one-voxel-thick plate continuing it
    lab = ndi.binary_dilation(hu > 200, iterations=2).astype(np.int32)   # working-grid label (fat)
    kw = dict(band_mm=2.0, deep_mm=4.0, frac=0.3, sigma_vox=0.0)
    spared = refine_native(lab, hu, np.ones(3), 200.0, 1, spare_halfmax=True, **kw)
    opened = refine_native(lab, hu, np.ones(3), 200.0, 1, spare_halfmax=False, **kw)
    assert (spared[26:34, 17, 12:24] == 1).mean() > 0.9
    assert (opened[26:34, 17, 12:24] == 1).mean() < 0.2
    assert (spared[10:26, 10:26, 10:26] == 1).all() and (opened[11:25, 11:25, 11:25] == 1).all()


def test_find_canal_keeps_to_the_tube():
    """Slices where the ring is open but another hole behind the bone's centroid appears (a body's
    section inside its cortical ring at a thin endplate) do not take that hole as the canal."""
    from kyphosim.segment.subregions import find_canal

    lab = np.zeros((50, 70, 20), np.int32)
    lab[5:45, 2:40, :] = 7
    lab[21:29, 8:16, :] = 0                      # canal (8 x 8 mm) behind the body
    for z in (8, 9, 10):
        lab[21:29, 0:16, z] = 0                  # ring open behind the canal (no lamina here)
        lab[5:45, 40:60, z] = 7                  # more bone in front: centroid moves forward
        lab[21:29, 22:30, z] = 0                 # a hole off the canal's path
    found = find_canal(lab, [7], np.ones(3))
    assert set(found) == set(range(20)) - {8, 9, 10}
    assert all(found[z][1][21:29, 8:16].all() for z in found)
