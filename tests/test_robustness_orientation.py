"""Orientation invariance and header-noise robustness of the assessment (docs/robustness.md).

The same world written in another voxel order (a pure permutation/flip of the array with the affine
updated) must give the same assessment, and float32 header round-off must not move any figure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_robustness import compare_assessments, reoriented, through_file  # noqa: E402

ORIENTS = ["LPS", "PIR", "SRP"]


@pytest.fixture(scope="module")
def block1mm():
    """The synthetic three-level block on a 1 mm grid (1 mm is the spacing where the ROI blocks tie)."""
    from kyphosim.simulation.synthetic import make_block_spine

    ct, lab, _sub, _truth = make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=1.0)
    return ct, lab


@pytest.fixture(scope="module")
def block1mm_ref(block1mm):
    from kyphosim.assess import assess_spine

    return assess_spine(*block1mm)


def test_voxel_count_is_stable_under_header_noise():
    from kyphosim.imaging.volume import voxel_count

    for length, sp, n in ((1.5, 1.0, 2), (3.0, 2.0, 2), (1.5, 0.6, 3), (3.0, 1.5, 2), (1.0, 3.0, 1)):
        for eps in (-2e-7, 0.0, 2e-7):
            assert voxel_count(length, sp * (1 + eps)) == n, (length, sp, eps)
    assert voxel_count(1.5, np.array([1.0, 2.0, 0.5])).tolist() == [2, 1, 3]
    assert voxel_count(0.1, 5.0) == 1 and voxel_count(0.1, 5.0, minimum=0) == 0


def test_trabecular_hu_ignores_float32_header_round_off(block1mm, block1mm_ref):
    """Voxels of 0.99999998 mm (a float32 qform) gave a different ROI than 1 mm voxels (HU −7 on VerSe)."""
    from kyphosim.assess import assess_spine
    from kyphosim.imaging.volume import Volume

    ct, lab = block1mm
    ref = block1mm_ref
    for scale in (1 - 2e-8, 1 + 2e-8):
        aff = ct.affine.copy()
        aff[:3, :3] *= scale
        res = assess_spine(Volume(ct.data, aff, meta=dict(ct.meta)), Volume(lab.data, aff, is_label=True))
        for a, b in zip(ref.levels, res.levels):
            assert a.trabecular_hu == b.trabecular_hu, (a.name, scale)
            assert a.genant_grade == b.genant_grade


@pytest.mark.parametrize("codes", ORIENTS)
def test_assessment_identical_in_every_voxel_order(block1mm, block1mm_ref, codes, tmp_path):
    from kyphosim.assess import assess_spine

    ct, lab = block1mm
    ref = block1mm_ref
    lab_o = through_file(reoriented(lab, codes), tmp_path / "lab.nii.gz", labels=True)
    ct_o = through_file(reoriented(ct, codes), tmp_path / "ct.nii.gz", labels=False)
    assert "".join(ct_o.axcodes) == codes
    c = compare_assessments(ref, assess_spine(ct_o, lab_o))
    assert c["categorical"] == [] and c["max_abs"] < 1e-6, c


@pytest.fixture(scope="module")
def verse008_crop(shared_data):
    """sub-verse008 (PIR, oblique float32 qform) cropped to T12–L2 with 15 mm margins (L3 cut, L4 a sliver)."""
    from kyphosim.imaging.io import load_ct, load_labels

    v = shared_data / "verse19"
    ct = load_ct(v / "sub-verse008_ct.nii.gz")
    lab = load_labels(v / "sub-verse008_seg-vert_msk.nii.gz", reference=ct)
    keep = np.isin(lab.data, [19, 20, 21])
    return ct.crop_to_mask(keep, margin_mm=15), lab.crop_to_mask(keep, margin_mm=15)


@pytest.fixture(scope="module")
def verse008_crop_ref(verse008_crop):
    from kyphosim.assess import assess_spine

    return assess_spine(*verse008_crop)


def test_verse_crop_identical_in_two_voxel_orders(verse008_crop, verse008_crop_ref):
    """A real oblique-header CT crop in RAS voxel order (exact affine): every figure identical."""
    from kyphosim.assess import assess_spine

    ct_c, lab_c = verse008_crop
    ref = verse008_crop_ref
    assert [lv.name for lv in ref.levels][:3] == ["T12", "L1", "L2"]
    for codes in ("RAS",):
        c = compare_assessments(ref, assess_spine(reoriented(ct_c, codes), reoriented(lab_c, codes)))
        assert c["categorical"] == [] and c["max_abs"] < 1e-6, (codes, c)


@pytest.mark.parametrize("via_file", [False, True])
def test_verse_crop_identical_after_affine_round_off(verse008_crop, verse008_crop_ref, via_file, tmp_path):
    """A sliver of L4 at the crop edge switched its neighbours' dense-endplate correction on 1e-14 mm."""
    from kyphosim.assess import assess_spine

    ct_c, lab_c = verse008_crop
    ref = verse008_crop_ref
    if via_file:  # float32 header: ~1e-6 mm
        ct_o = through_file(reoriented(ct_c, "RAS"), tmp_path / "ct.nii.gz", labels=False)
        lab_o = through_file(reoriented(lab_c, "RAS"), tmp_path / "lab.nii.gz", labels=True)
    else:  # ILA and back: ~1e-14 mm from the two orientation transforms
        ct_o, lab_o = reoriented(ct_c, "ILA"), reoriented(lab_c, "ILA")
    c = compare_assessments(ref, assess_spine(ct_o, lab_o))
    assert c["categorical"] == [] and c["max_abs"] < 1e-6, c


def test_cli_assess_same_json_for_reoriented_inputs(block1mm, cli, capsys, tmp_path):
    from kyphosim.imaging.io import save_volume

    ct, lab = block1mm
    outs = []
    for codes in ("RAS", "ILA"):
        ctp = save_volume(reoriented(ct, codes), tmp_path / f"ct_{codes}.nii.gz")
        labp = save_volume(reoriented(lab, codes), tmp_path / f"lab_{codes}.nii.gz")
        code, out, err = cli(["assess", ctp, "--labels", labp, "--out", tmp_path / codes, "--no-figures"], capsys)
        assert code == 0, err
        d = json.loads((tmp_path / codes / "assessment.json").read_text())
        d.pop("inputs")
        outs.append(d)
    assert outs[0] == outs[1]


def test_plan_identical_in_another_voxel_order(cli, capsys, tmp_path):
    """Planning walked voxel grids in the file's order (sub-verse006 L4 PIR → RAS: entry points 0.8 mm,
    convergence 1.2° apart); now every plan figure is the same in any voxel order."""
    from kyphosim.fileio import to_jsonable
    from kyphosim.planning.api import plan_procedure
    from kyphosim.simulation.synthetic import make_block_spine

    ct, lab, sub, _ = make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=2.0)
    ref = to_jsonable(plan_procedure(ct, lab, "L1", subregions=sub))
    for codes in ("ILA",):
        res = to_jsonable(plan_procedure(reoriented(ct, codes), reoriented(lab, codes), "L1",
                                         subregions=reoriented(sub, codes)))
        ref.pop("inputs"), res.pop("inputs")
        assert res == ref


def test_labels_in_another_voxel_order_than_the_ct(block1mm, block1mm_ref, cli, capsys, tmp_path):
    """A mask saved in another voxel order than its CT (same world grid) was a grid mismatch that asked
    for --resample-labels; it is now reordered losslessly (load_labels and assess_spine)."""
    import json

    from kyphosim.assess import assess_spine
    from kyphosim.imaging.io import load_ct, load_labels, save_volume

    ct, lab = block1mm
    lab_ila = reoriented(lab, "ILA")
    c = compare_assessments(block1mm_ref, assess_spine(ct, lab_ila))
    assert c["categorical"] == [] and c["max_abs"] == 0, c
    ctp = save_volume(ct, tmp_path / "ct.nii.gz")
    labp = save_volume(lab_ila, tmp_path / "lab_ila.nii.gz")
    loaded = load_labels(labp, reference=load_ct(ctp))
    assert "".join(loaded.axcodes) == "RAS" and np.array_equal(loaded.data, np.asarray(lab.data))
    code, _, err = cli(["assess", ctp, "--labels", labp, "--out", tmp_path / "o", "--no-figures"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "assessment.json").read_text())["levels"][1]["genant_grade"] is not None
