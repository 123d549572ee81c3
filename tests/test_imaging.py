"""Imaging I/O: Volume geometry, readers on every shared case, orientation round trips, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from kyphosim.errors import GridMismatchError, InputError, LabelError, NotCTError
from kyphosim.imaging import (Volume, centroids_to_world, label_centroids_world, load_ct, load_image,
                              load_labels, parse_levels, read_dicom_series, read_verse_centroids,
                              save_volume, vertebra_id, vertebra_ids_present, vertebra_name)
from kyphosim.imaging.labels import TS_V1_IDS, TS_V2_IDS, craniocaudal_order, ts_name_to_verse


def _random_affine(rng: np.random.RandomState, spacing=(0.8, 1.1, 2.5)) -> np.ndarray:
    q, _ = np.linalg.qr(rng.randn(3, 3))
    aff = np.eye(4)
    aff[:3, :3] = q * np.asarray(spacing)
    aff[:3, 3] = rng.uniform(-200, 200, 3)
    return aff


# ----------------------------------------------------------------------------- Volume
def test_volume_world_voxel_round_trip():
    rng = np.random.RandomState(0)
    vol = Volume(np.zeros((10, 12, 14), np.int16), _random_affine(rng))
    ijk = rng.uniform(0, 9, (50, 3))
    np.testing.assert_allclose(vol.world_to_voxel(vol.voxel_to_world(ijk)), ijk, atol=1e-9)
    np.testing.assert_allclose(np.sort(vol.spacing), np.sort([0.8, 1.1, 2.5]), rtol=1e-12)


@pytest.mark.parametrize("codes", [("P", "I", "R"), ("L", "P", "S"), ("R", "A", "S"), ("S", "L", "A")])
def test_reorient_keeps_world_positions(codes):
    rng = np.random.RandomState(1)
    data = rng.randint(-1000, 2000, (9, 11, 13)).astype(np.int16)
    vol = Volume(data, _random_affine(rng, (1.0, 1.5, 3.0)))
    out = vol.reorient(codes)
    assert out.axcodes == codes
    # the same world point holds the same value
    for ijk in [(0, 0, 0), (8, 10, 12), (3, 7, 5)]:
        w = vol.voxel_to_world(ijk)
        j = np.round(out.world_to_voxel(w)).astype(int)
        assert out.data[tuple(j)] == data[ijk]
    back = out.reorient(vol.axcodes)
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-9)


def test_canonical_is_ras():
    aff = np.diag([-1.0, -1.0, 2.0, 1.0])  # LPS
    vol = Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), aff)
    can = vol.as_canonical()
    assert can.axcodes == ("R", "A", "S")
    assert vol.source_axcodes == ("L", "P", "S") and can.source_axcodes == ("L", "P", "S")


def test_crop_updates_affine():
    rng = np.random.RandomState(2)
    data = rng.randint(0, 100, (20, 20, 20)).astype(np.int16)
    vol = Volume(data, _random_affine(rng))
    sub = vol.crop((3, 4, 5), (10, 12, 15))
    assert sub.shape == (7, 8, 10)
    np.testing.assert_allclose(sub.voxel_to_world((0, 0, 0)), vol.voxel_to_world((3, 4, 5)))
    assert sub.data[2, 3, 4] == data[5, 7, 9]
    with pytest.raises(InputError):
        vol.crop((5, 5, 5), (5, 6, 6))
    with pytest.raises(TypeError):
        vol[0]


def test_resample_linear_and_nearest():
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    x = np.arange(20, dtype=np.float32)
    ramp = np.broadcast_to(x[:, None, None], (20, 20, 20)).copy()
    vol = Volume(ramp, aff, meta={"units": "HU"})
    half = vol.resample(spacing=0.5)
    assert half.shape == (40, 40, 40)
    # a linear ramp is reproduced exactly by linear interpolation in the interior
    w = half.voxel_to_world((11, 11, 11))
    assert half.data[11, 11, 11] == pytest.approx(w[0], abs=1e-4)
    lab = Volume((ramp > 9.5).astype(np.uint8) * 20, aff, is_label=True)
    lab2 = lab.resample(spacing=2.0)
    assert set(np.unique(lab2.data)) <= {0, 20}
    assert lab2.data.dtype == np.uint8
    onto = vol.resample(like=half)
    assert onto.same_grid(half)


@pytest.mark.parametrize("spacing", [(0.0, 1, 1), (1, 1, 1e-6), (np.nan, 1, 1), (100, 1, 1)])
def test_absurd_spacing_rejected(spacing):
    aff = np.eye(4)
    aff[:3, :3] = np.diag(spacing)
    with pytest.raises(InputError):
        Volume(np.zeros((3, 3, 3)), aff)


def test_non_3d_rejected():
    with pytest.raises(InputError):
        Volume(np.zeros((3, 3)), np.eye(4))


# ----------------------------------------------------------------------------- labels
def test_vertebra_names_and_ids():
    assert vertebra_name(1) == "C1" and vertebra_name(8) == "T1" and vertebra_name(19) == "T12"
    assert vertebra_name(20) == "L1" and vertebra_name(25) == "L6" and vertebra_name(28) == "T13"
    assert vertebra_id("vertebrae_L1") == 20 and vertebra_id("t12") == 19 and vertebra_id(28) == 28
    assert parse_levels("T10-L3") == [17, 18, 19, 20, 21, 22]
    assert parse_levels("L1,T12") == [19, 20]
    assert craniocaudal_order([20, 28, 19]) == [19, 28, 20]
    assert TS_V2_IDS[31] == 20 and TS_V2_IDS[32] == 19 and TS_V2_IDS[27] == 24 and TS_V2_IDS[50] == 1
    assert TS_V1_IDS[22] == 20 and TS_V1_IDS[18] == 24 and TS_V1_IDS[41] == 1
    assert ts_name_to_verse("vertebrae_T12") == 19 and ts_name_to_verse("liver") is None
    with pytest.raises(ValueError):
        vertebra_id("X9")


# ----------------------------------------------------------------------------- real data
VERSE_CASES = ["sub-verse004", "sub-verse005", "sub-verse006", "sub-verse007", "sub-verse008",
               "sub-verse009", "sub-verse010", "sub-verse012"]


@pytest.mark.parametrize("case", VERSE_CASES)
def test_every_verse_case_reads(shared_data, case):
    d = shared_data / "verse19"
    mask = d / f"{case}_seg-vert_msk.nii.gz"
    ct_path = d / f"{case}_ct.nii.gz"
    ref = load_ct(ct_path) if ct_path.exists() else None
    lab = load_labels(mask, reference=ref)
    ids = vertebra_ids_present(lab)
    assert ids and all(1 <= i <= 28 for i in ids)
    raw = nib.load(str(mask))
    assert lab.axcodes == tuple(nib.aff2axcodes(raw.affine))
    # canonical view holds the same voxels
    can = lab.as_canonical()
    assert np.count_nonzero(can.data) == np.count_nonzero(lab.data)
    # anatomy sanity: cranial levels sit higher (+z) in world space
    cents = label_centroids_world(lab)
    zs = [cents[i][2] for i in ids]
    assert all(a > b for a, b in zip(zs, zs[1:])), f"{case}: centroids not ordered cranio-caudally"


@pytest.mark.parametrize("case", ["sub-verse004", "sub-verse010", "sub-verse012"])
def test_verse_centroids_fall_inside_their_vertebra(shared_data, case):
    d = shared_data / "verse19"
    lab = load_labels(d / f"{case}_seg-vert_msk.nii.gz")
    codes, pts = read_verse_centroids(d / f"{case}_seg-subreg_ctd.json")
    world = centroids_to_world(codes, pts, lab)
    assert world
    for label, xyz in world.items():
        ijk = np.round(lab.world_to_voxel(xyz)).astype(int)
        assert np.all(ijk >= 0) and np.all(ijk < lab.shape)
        assert int(lab.data[tuple(ijk)]) == label, f"{case} centroid of {label} lands in {lab.data[tuple(ijk)]}"


def test_verse012_centroid_world_matches_mask_centroid(shared_data):
    """The official body centroid lies within a few mm of the whole-vertebra mask centroid (anterior of it)."""
    d = shared_data / "verse19"
    lab = load_labels(d / "sub-verse012_seg-vert_msk.nii.gz")
    codes, pts = read_verse_centroids(d / "sub-verse012_seg-subreg_ctd.json")
    world = centroids_to_world(codes, pts, lab)
    mask_c = label_centroids_world(lab)
    for label, xyz in world.items():
        delta = xyz - mask_c[label]
        assert abs(delta[2]) < 6.0  # same height
        assert delta[1] > 0  # the body centroid is anterior to the whole-vertebra centroid


def test_totalsegmentator_inputs_agree(shared_data):
    d = shared_data / "totalsegmentator_example"
    ct = load_ct(d / "example_ct.nii.gz")
    folder = load_labels(d / "example_seg_v1", reference=ct)
    v2 = load_labels(d / "spine_report" / "totalseg.nii.gz", reference=ct)
    assert v2.meta["label_format"] == "ts2"
    assert vertebra_ids_present(folder) == [18, 19, 20, 21, 22, 23, 24]
    assert vertebra_ids_present(v2) == [18, 19, 20, 21, 22, 23, 24]
    # two segmentations of the same CT: the same level overlaps itself far better than its neighbour
    for vid in (19, 20, 22):
        a, b = folder.data == vid, v2.data == vid
        dice = 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))
        assert dice > 0.7, (vid, dice)


def test_ts_v1_multilabel_mapping(tmp_path):
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    data = np.zeros((6, 6, 6), np.uint8)
    data[1, 1, 1] = 22  # v1 L1
    data[2, 2, 2] = 5   # liver
    data[3, 3, 3] = 23  # v1 T12
    nib.save(nib.Nifti1Image(data, aff), str(tmp_path / "v1.nii.gz"))
    lab = load_labels(tmp_path / "v1.nii.gz", fmt="ts1")
    assert lab.data[1, 1, 1] == 20 and lab.data[3, 3, 3] == 19 and lab.data[2, 2, 2] == 0


def test_other_shared_files_read(shared_data):
    fe = load_image(shared_data / "spinefe_verse004_L2" / "sub-verse004_0000_vertebra_21_im.nii.gz")
    assert fe.axcodes == ("L", "P", "S") and fe.shape == (100, 89, 74)
    seg = load_image(shared_data / "spinefe_verse004_L2" / "sub-verse004_0000_vertebra_21_seg.nii.gz")
    assert set(np.unique(seg.data)) == set(range(7))
    ct = load_ct(shared_data / "tptbox_l3" / "sub-ct_label-22_ct.nii.gz")
    lab = load_labels(shared_data / "tptbox_l3" / "sub-ct_seg-vert_label-22_msk.nii.gz", reference=ct)
    assert vertebra_ids_present(lab) == [21, 22, 23] and ct.axcodes == ("P", "I", "R")


def test_dicom_series_matches_nifti_round_trip_and_simpleitk(shared_data, tmp_path):
    d = shared_data / "totalsegmentator_example" / "example_ct_dicom"
    vol = read_dicom_series(d)
    assert vol.shape == (512, 512, 20)
    assert vol.meta["modality"] == "CT"
    assert -1100 <= vol.data.min() <= -900 and vol.data.max() > 500  # rescaled to HU
    out = save_volume(vol, tmp_path / "dicom.nii.gz")
    back = load_ct(out)
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(d)))
    img = reader.Execute()
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    np.testing.assert_array_equal(arr, vol.data)
    origin_ras = np.array(img.GetOrigin()) * [-1, -1, 1]
    np.testing.assert_allclose(vol.affine[:3, 3], origin_ras, atol=1e-4)
    np.testing.assert_allclose(vol.spacing, img.GetSpacing(), atol=1e-6)


@pytest.mark.parametrize("codes", [("P", "I", "R"), ("L", "P", "S")])
def test_writer_keeps_input_orientation(shared_data, tmp_path, codes):
    src = shared_data / "verse19" / ("sub-verse005_ct.nii.gz" if codes[0] == "P" else "sub-verse012_ct.nii.gz")
    vol = load_ct(src)
    can = vol.as_canonical()
    out = save_volume(can, tmp_path / "x.nii.gz")
    img = nib.load(str(out))
    assert tuple(nib.aff2axcodes(img.affine)) == codes
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), vol.data)


# ----------------------------------------------------------------------------- bad input
def _save(tmp_path, name, data, aff=None):
    p = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if aff is None else aff), str(p))
    return p


def _ct_like(shape=(8, 8, 8)):
    rng = np.random.RandomState(3)
    return rng.randint(-1000, 1500, shape).astype(np.int16)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_ct(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"this is not an image" * 10))
    with pytest.raises(InputError, match="cannot read"):
        load_ct(junk)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match="not a NIfTI"):
        load_ct(txt)
    with pytest.raises(InputError, match="2-D"):
        load_ct(_save(tmp_path, "flat.nii.gz", _ct_like((8, 8))))
    with pytest.raises(InputError, match="4-D"):
        load_ct(_save(tmp_path, "four.nii.gz", _ct_like((4, 4, 4, 3))))
    with pytest.raises(NotCTError, match="8-bit"):
        load_ct(_save(tmp_path, "photo.nii.gz", np.random.RandomState(0).randint(0, 256, (8, 8, 8)).astype(np.uint8)))
    bad_aff = np.eye(4)
    bad_aff[0, 0] = np.nan
    p = _save(tmp_path, "nanaff.nii.gz", _ct_like())
    img = nib.load(str(p))
    hdr = img.header.copy()
    hdr["srow_x"] = [np.nan, 0, 0, 0]
    hdr.set_sform(None, code=1)
    hdr["sform_code"] = 1
    hdr["qform_code"] = 0
    nib.save(nib.Nifti1Image(_ct_like(), None, hdr), str(tmp_path / "nanaff2.nii.gz"))
    with pytest.raises(InputError):
        load_ct(tmp_path / "nanaff2.nii.gz")
    zimg = nib.Nifti1Image(_ct_like(), None)
    zimg.header["pixdim"][1:4] = [1.0, 1.0, 0.0]
    zimg.header["qform_code"] = 0
    zimg.header["sform_code"] = 0
    nib.save(zimg, str(tmp_path / "zero.nii.gz"))
    with pytest.raises(InputError, match="spacing|degenerate"):
        load_ct(tmp_path / "zero.nii.gz")


def test_label_errors(tmp_path):
    ct_p = _save(tmp_path, "ct.nii.gz", _ct_like())
    ct = load_ct(ct_p)
    empty = _save(tmp_path, "empty.nii.gz", np.zeros((8, 8, 8), np.uint8))
    with pytest.raises(LabelError, match="no vertebra"):
        load_labels(empty, reference=ct)
    organs = np.zeros((8, 8, 8), np.uint8)
    organs[2:4, 2:4, 2:4] = 5
    organs[4:6, 4:6, 4:6] = 7
    # ids 5 and 7 are VerSe C5/C7, so this is *read* as cervical vertebrae, not rejected:
    assert vertebra_ids_present(load_labels(_save(tmp_path, "o.nii.gz", organs))) == [5, 7]
    small = np.zeros((6, 6, 6), np.uint8)
    small[2:4, 2:4, 2:4] = 20
    other = _save(tmp_path, "other.nii.gz", small)
    with pytest.raises(GridMismatchError, match="--resample-labels"):
        load_labels(other, reference=ct)
    lab = load_labels(other, reference=ct, resample=True)
    assert lab.same_grid(ct)
    far = np.eye(4)
    far[:3, 3] = 500
    outside = _save(tmp_path, "outside.nii.gz", small, far)
    with pytest.raises(LabelError, match="field of view"):
        load_labels(outside, reference=ct, resample=True)
    floaty = _save(tmp_path, "floaty.nii.gz", np.random.RandomState(0).rand(6, 6, 6).astype(np.float32) * 20)
    with pytest.raises(LabelError, match="not integers"):
        load_labels(floaty)


# ----------------------------------------------------------------------------- CLI
def test_info_cli(shared_data, cli, capsys):
    d = shared_data / "verse19"
    code, out, err = cli(["info", d / "sub-verse012_ct.nii.gz", "--labels", d / "sub-verse012_seg-vert_msk.nii.gz",
                          "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["orientation"] == "LPS" and info["spacing_mm"] == [3.0, 1.0, 1.0]
    assert [v["name"] for v in info["vertebrae"]] == ["T10", "T11", "T12", "L1", "L2", "L3"]
    code, out, err = cli(["info", d / "sub-verse012_ct.nii.gz", "--labels", d / "sub-verse005_seg-vert_msk.nii.gz"], capsys)
    assert code == 2 and "--resample-labels" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("make", ["missing", "text", "2d", "4d", "photo", "nolabels"])
def test_info_cli_bad_input_exit_2(tmp_path, cli, capsys, make):
    args = ["info"]
    if make == "missing":
        args.append(tmp_path / "nope.nii.gz")
    elif make == "text":
        (tmp_path / "a.txt").write_text("x")
        args.append(tmp_path / "a.txt")
    elif make == "2d":
        args.append(_save(tmp_path, "a.nii.gz", _ct_like((8, 8))))
    elif make == "4d":
        args.append(_save(tmp_path, "a.nii.gz", _ct_like((4, 4, 4, 2))))
    elif make == "photo":
        args.append(_save(tmp_path, "a.nii.gz", np.full((8, 8, 8), 128, np.uint8)))
    elif make == "nolabels":
        args += [_save(tmp_path, "ct.nii.gz", _ct_like()), "--labels",
                 _save(tmp_path, "l.nii.gz", np.zeros((8, 8, 8), np.uint8))]
    code, out, err = cli(args, capsys)
    assert code == 2
    assert err.startswith("kyphosim: error:") and len(err.strip().splitlines()) == 1
