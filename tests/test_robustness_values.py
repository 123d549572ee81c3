"""Robustness to how real CTs store their values: padding outside the reconstruction circle, coarse grids
(docs/robustness.md)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture(scope="module")
def block_with_air():
    """The 2 mm synthetic block with air (−1000 HU) around an elliptic body outline, so the internal
    density calibration has air, and a circular reconstruction field of view in the axial plane."""
    from kyphosim.imaging.volume import Volume
    from kyphosim.simulation.synthetic import make_block_spine

    ct, lab, _sub, _truth = make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=2.0)
    n0, n1, _ = ct.shape
    i, j = np.meshgrid(np.linspace(-1, 1, n0), np.linspace(-1, 1, n1), indexing="ij")
    rng = np.random.default_rng(3)
    data = np.asarray(ct.data, np.float32).copy()
    body_outline = (i / 0.85) ** 2 + (j / 0.9) ** 2 <= 1.0
    air = np.broadcast_to(~body_outline[:, :, None], data.shape)
    data[air] = -1000.0 + rng.normal(0, 15, int(air.sum()))
    data = np.round(data).astype(np.int16)
    outside = np.broadcast_to((np.hypot(i, j) > 1.0)[:, :, None], data.shape)
    return Volume(data, ct.affine, meta={"units": "HU"}), lab, outside


@pytest.mark.parametrize("pad", [-3024, -2048, -32768])
def test_padding_outside_the_field_of_view_is_air(block_with_air, pad, tmp_path):
    """−3024 corners were read as air by the density calibration (vBMD 87 → 30 mg/cm³ on the
    TotalSegmentator CT) and −32768 corners were refused as 'not HU'."""
    from kyphosim.assess import assess_spine
    from kyphosim.imaging.io import load_ct

    ct, lab, outside = block_with_air
    filled = ct.data.copy()
    filled[outside] = -1024
    padded = ct.data.copy()
    padded[outside] = pad
    nib.Nifti1Image(filled, ct.affine).to_filename(str(tmp_path / "filled.nii.gz"))
    nib.Nifti1Image(padded, ct.affine).to_filename(str(tmp_path / "padded.nii.gz"))
    a = load_ct(tmp_path / "filled.nii.gz")
    b = load_ct(tmp_path / "padded.nii.gz")
    assert b.meta["padding_hu"] == pad and b.meta["padding_voxels"] == int(outside.sum())
    assert np.array_equal(a.data, b.data)
    from kyphosim.assess.density import _reference_tissues

    centre = np.array([[s / 2 for s in ct.shape]])
    air = _reference_tissues(b, np.asarray(lab.data) > 0, centre, np.array([0.0, 1.0, 0.0]))["air"]
    assert -1030 < air < -970
    ra, rb = assess_spine(a, lab), assess_spine(b, lab)
    assert ra.to_json_dict()["spine"] == rb.to_json_dict()["spine"]


def test_noise_below_minus_1024_is_not_padding():
    """Real CTs hold air noise down to about −1300 HU (shared VerSe/TotalSegmentator CTs): kept as is;
    only one constant far below air is padding."""
    from kyphosim.imaging.io import ct_padding_value

    rng = np.random.default_rng(0)
    d = np.round(rng.normal(-1000, 80, (20, 20, 20))).astype(np.int16)
    assert ct_padding_value(d) is None
    d[:3] = -3024
    assert ct_padding_value(d) == -3024
    d[0, 0, 0] = -2000  # two different values below −1500: not a padding constant
    assert ct_padding_value(d) is None


def test_spacing_too_coarse_for_vertebrae(tmp_path, cli, capsys):
    from kyphosim.errors import InputError
    from kyphosim.imaging.io import load_ct, load_labels

    rng = np.random.default_rng(1)
    data = np.round(rng.normal(0, 300, (20, 20, 6))).astype(np.int16)
    data[0] = -1000
    aff = np.diag([1.0, 1.0, 12.0, 1.0])
    nib.Nifti1Image(data, aff).to_filename(str(tmp_path / "ct.nii.gz"))
    lab = np.zeros((20, 20, 6), np.uint8)
    lab[5:15, 5:15, 2:4] = 20
    nib.Nifti1Image(lab, aff).to_filename(str(tmp_path / "lab.nii.gz"))
    with pytest.raises(InputError, match="too coarse"):
        load_ct(tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="too coarse"):
        load_labels(tmp_path / "lab.nii.gz")
    code, _, err = cli(["assess", "--labels", tmp_path / "lab.nii.gz", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "too coarse" in err and len(err.strip().splitlines()) == 1
