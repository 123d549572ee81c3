"""assess_spine and the CLI on small phantoms with known truth, bad input, and the shared real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kyphosim.assess import assess_spine
from kyphosim.assess.genant import genant_grade_from_loss, grade_spine
from kyphosim.errors import GridMismatchError, LabelError
from kyphosim.imaging.io import save_volume
from kyphosim.imaging.volume import Volume

phantom = pytest.importorskip("kyphosim.anatomy.phantom")


@pytest.fixture(scope="module")
def wedge_phantom():
    spec = phantom.PhantomSpec(levels="T12-L2", fractures=["L1:wedge:2"], spacing_mm=(1.0, 1.0, 1.25),
                               orientation="PIR", seed=3, soft_tissue=True)
    return phantom.make_phantom(spec)


@pytest.fixture(scope="module")
def wedge_result(wedge_phantom):
    return assess_spine(wedge_phantom.ct, wedge_phantom.labels)


def _truth(ph, name):
    return next(lv for lv in ph.truth["levels"] if lv["name"] == name)


def test_heights_grade_type_against_phantom_truth(wedge_phantom, wedge_result):
    res = wedge_result
    assert res.to_json_dict()["schema"] == "kyphosim.assessment/1"
    assert [lv.name for lv in res.levels] == ["T12", "L1", "L2"]
    for lv in res.levels:
        t = _truth(wedge_phantom, lv.name)
        tol = max(0.5, 0.5 * lv.voxel_size_si_mm) + 0.3
        for k in ("height_anterior_mm", "height_middle_mm", "height_posterior_mm"):
            assert abs(getattr(lv, k) - t[k]) <= tol, (lv.name, k, getattr(lv, k), t[k])
        assert lv.genant_grade == t["genant_grade"]
    l1 = res.level("L1")
    assert l1.genant_type == "wedge" and l1.genant_grade == 2
    assert l1.wedge_angle_deg > 5.0
    assert abs(l1.wedge_angle_deg - _truth(wedge_phantom, "L1")["wedge_angle_deg"]) < 3.0
    assert res.level("T12").genant_type == "normal"
    # the fractured level makes the segment kyphotic
    assert l1.local_kyphosis_deg is not None and l1.local_kyphosis_deg > res.level("L2").wedge_angle_deg


def test_density_against_phantom_truth(wedge_phantom, wedge_result):
    for lv in wedge_result.levels:
        t = _truth(wedge_phantom, lv.name)
        assert abs(lv.trabecular_hu - t["trabecular_hu"]) < 25.0
        assert lv.vbmd_mg_cm3 is not None
    sp = wedge_result.spine
    assert sp.l1_level in ("T12", "L2")           # L1 is fractured: nearest normal level
    assert sp.osteoporosis in ("normal", "osteopenia", "osteoporosis")
    assert sp.density_calibration is not None and set(sp.density_calibration.tissues_used) >= {"air", "adipose"}
    assert sp.fractured_levels == ["L1"]


def test_labels_only_and_sub_regions(wedge_phantom, wedge_result):
    res = assess_spine(None, wedge_phantom.labels, subregions=wedge_phantom.subregions)
    for a, b in zip(res.levels, wedge_result.levels):
        assert a.trabecular_hu is None and a.vbmd_mg_cm3 is None
        assert a.body_source == "subregions"
        assert abs(a.height_posterior_mm - b.height_posterior_mm) < 0.8
        assert a.genant_grade == b.genant_grade
    assert res.spine.osteoporosis is None and "no_ct_density_not_measured" in res.spine.flags


def test_bad_inputs_error_or_flag(wedge_phantom):
    ct, lab = wedge_phantom.ct, wedge_phantom.labels
    other = lab.crop((0, 0, 0), (lab.shape[0] - 3, lab.shape[1], lab.shape[2]))
    with pytest.raises(GridMismatchError):
        assess_spine(ct, other)
    with pytest.raises(LabelError):
        assess_spine(None, lab.with_data(np.zeros(lab.shape, np.uint8)))
    # a single-level crop: no neighbours, flagged, no crash
    one = lab.with_data(np.where(lab.data == 20, 20, 0).astype(np.uint8))
    r = assess_spine(None, one)
    assert len(r.levels) == 1 and r.levels[0].genant_grade is not None
    assert "no_normal_neighbour" in r.levels[0].flags and r.spine.regional_kyphosis_deg is None
    # a level missing in the sequence is reported
    gap = lab.with_data(np.where(lab.data == 20, 0, lab.data).astype(np.uint8))
    r = assess_spine(None, gap)
    assert r.spine.missing_levels == ["L1"]
    assert "level_missing_below" in r.level("T12").flags


def test_genant_rules():
    assert [genant_grade_from_loss(x) for x in (0, 19.9, 20, 24.9, 25, 40, 40.1)] == [0, 0, 1, 1, 2, 2, 3]
    # normal thoracic wedging (Ha/Hp 0.9) is grade 0; a crush is found from the neighbours
    g = grade_spine([(14, (18.0, 18.5, 20.0)), (15, (18.5, 19.0, 20.5)), (16, (14.0, 14.0, 15.0)),
                     (17, (19.5, 20.0, 21.5)), (18, (21.0, 21.0, 22.5))])
    assert g[14].grade == 0 and g[15].grade == 0
    assert g[16].type == "crush" and g[16].grade == 2
    # L5's anterior > posterior height is normal
    assert grade_spine([(23, (28.0, 25.0, 27.0)), (24, (29.0, 25.5, 24.0))])[24].grade == 0


def test_cli_writes_json_and_figures(tmp_path, cli, capsys, wedge_phantom):
    ct_p, lab_p = tmp_path / "ct.nii.gz", tmp_path / "lab.nii.gz"
    save_volume(wedge_phantom.ct, ct_p)
    save_volume(wedge_phantom.labels, lab_p)
    out = tmp_path / "out"
    code, stdout, err = cli(["assess", ct_p, "--labels", lab_p, "--out", out], capsys)
    assert code == 0, err
    js = json.loads((out / "assessment.json").read_text())
    assert js["schema"] == "kyphosim.assessment/1"
    need = {"label", "name", "height_anterior_mm", "height_middle_mm", "height_posterior_mm", "height_loss_pct",
            "genant_grade", "genant_type", "wedge_angle_deg", "trabecular_hu", "vbmd_mg_cm3",
            "posterior_wall_bulge_mm", "flags"}
    assert need <= set(js["levels"][0])
    assert {"sdi", "l1_trabecular_hu", "osteoporosis", "regional_kyphosis_deg"} <= set(js["spine"])
    assert (out / "spine.png").stat().st_size > 1000 and (out / "level_L1.png").exists()
    assert "L1" in stdout
    # morphometry only, and a grid mismatch gives exit code 2 with one line
    code, _, _ = cli(["assess", "--labels", lab_p, "--out", tmp_path / "o2", "--no-figures"], capsys)
    assert code == 0
    assert json.loads((tmp_path / "o2" / "assessment.json").read_text())["levels"][0]["trabecular_hu"] is None
    bad = Volume(wedge_phantom.labels.data[:-2], wedge_phantom.labels.affine, is_label=True)
    save_volume(bad, tmp_path / "bad.nii.gz")
    code, _, err = cli(["assess", ct_p, "--labels", tmp_path / "bad.nii.gz", "--out", tmp_path / "o3"], capsys)
    assert code == 2 and "resample" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_totalsegmentator_example_is_normal(shared_data):
    from kyphosim.imaging.io import load_ct, load_labels

    d = shared_data / "totalsegmentator_example"
    ct = load_ct(d / "example_ct.nii.gz")
    lab = load_labels(d / "example_seg_v1", reference=ct)
    res = assess_spine(ct, lab)
    assert [lv.name for lv in res.levels] == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    graded = {lv.name: lv.genant_grade for lv in res.levels}
    assert all(graded[n] == 0 for n in ("L1", "L2", "L3", "L4", "L5")), graded
    # T11 (3 slices) and T12 (superior endplate outside the scan) are cut by the field of view:
    # not gradable, flagged — never silently called normal or fractured
    for n in ("T11", "T12"):
        lv = res.level(n)
        assert lv.genant_grade in (0, None)
        assert "cut_by_fov" in lv.flags
    assert res.spine.l1_trabecular_hu is not None and res.spine.l1_level == "L1"


@pytest.mark.realdata
def test_verse_mask_only_grades(shared_data):
    from kyphosim.imaging.io import load_labels

    lab = load_labels(shared_data / "verse19" / "sub-verse010_seg-vert_msk.nii.gz")
    res = assess_spine(None, lab)
    grades = {lv.name: lv.genant_grade for lv in res.levels}
    assert grades["L1"] >= 2                       # the severe L1 fracture is found
    assert all(grades[n] == 0 for n in ("L2", "L3", "L4", "L5"))
    # lumbar lordosis: measured in each body's frame, L5 normal despite its wedge shape
    assert res.spine.regional_kyphosis_deg < -20


@pytest.mark.realdata
def test_tptbox_subregions_are_mapped(shared_data):
    from kyphosim.imaging.io import load_ct, load_image, load_labels

    d = shared_data / "tptbox_l3"
    ct = load_ct(d / "sub-ct_label-22_ct.nii.gz")
    lab = load_labels(d / "sub-ct_seg-vert_label-22_msk.nii.gz", reference=ct)
    sub = load_image(d / "sub-ct_seg-subreg_label-22_msk.nii.gz")       # TPTBox ids 41–50
    res = assess_spine(ct, lab, subregions=sub)
    l3 = res.level("L3")
    assert l3.body_source == "subregions" and l3.genant_grade == 0
    geo = assess_spine(ct, lab).level("L3")                             # geometric isolation agrees
    assert abs(geo.height_posterior_mm - l3.height_posterior_mm) < 1.0
    # L2 and L4 are cut by the crop: flagged, not graded from a partial body
    assert "cut_by_fov" in res.level("L2").flags and res.level("L2").genant_grade is None


def test_ct_edges_place_heights_within_the_target_tolerance(wedge_phantom, wedge_result):
    """CT edges (default) put all heights within max(0.5 mm, ½ voxel) and beat the mask-only surfaces."""
    from kyphosim.assess.api import assess_spine_detailed

    mask_only = assess_spine_detailed(wedge_phantom.ct, wedge_phantom.labels, use_ct_edges=False)[0]
    keys = ("height_anterior_mm", "height_middle_mm", "height_posterior_mm")
    err_ct, err_mask = [], []
    for lv, lm in zip(wedge_result.levels, mask_only.levels):
        t = _truth(wedge_phantom, lv.name)
        tol = max(0.5, 0.5 * lv.voxel_size_si_mm)
        for k in keys:
            assert abs(getattr(lv, k) - t[k]) <= tol, (lv.name, k, getattr(lv, k), t[k])
            err_ct.append(abs(getattr(lv, k) - t[k]))
            err_mask.append(abs(getattr(lm, k) - t[k]))
        assert "ct_edges_fallback" not in lv.flags
    assert np.mean(err_ct) < np.mean(err_mask)


def test_middle_reference_variants():
    """A lordotic lumbar body with a central depression: judged against its own Hp (default) it is
    normal; against the taller rim it is a mild deformity; unknown variants are refused."""
    lv = [(21, (29.0, 29.0, 28.0)), (22, (30.0, 23.5, 27.5)), (23, (30.0, 29.0, 28.5))]
    base = grade_spine(lv)[22]
    assert base.grade == 0 and base.height_loss_pct == pytest.approx(100 * (1 - 23.5 / 27.5), abs=0.1)
    rim_max = grade_spine(lv, middle_reference="rim_max")[22]
    assert rim_max.grade == 1 and rim_max.type == "biconcave"
    rim_mean = grade_spine(lv, middle_reference="rim_mean")[22]
    assert base.height_loss_pct < rim_mean.height_loss_pct < rim_max.height_loss_pct
    assert grade_spine(lv, middle_reference="rim_max")[21].grade == 0
    with pytest.raises(ValueError):
        grade_spine(lv, middle_reference="anterior")


def test_threaded_levels_equal_serial(wedge_phantom, wedge_result, monkeypatch):
    """The per-level thread pool gives exactly the serial result (levels are independent)."""
    from kyphosim.assess import api

    monkeypatch.setattr(api, "_level_workers", lambda n: 1)
    serial = assess_spine(wedge_phantom.ct, wedge_phantom.labels)
    assert serial.to_json_dict() == wedge_result.to_json_dict()
