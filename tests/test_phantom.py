"""Phantom: determinism, orientation/spacing, truth consistent with what is drawn."""

from __future__ import annotations

import numpy as np
import pytest

from kyphosim.anatomy.phantom import FractureSpec, PhantomSpec, demo_case, make_phantom
from kyphosim.anatomy.phantom.chain import build_shapes
from kyphosim.anatomy.phantom.hu import hu_from_vbmd
from kyphosim.anatomy.phantom.spec import GENANT_BANDS_PCT
from kyphosim.errors import InputError
from kyphosim.imaging.labels import SUBREGION_IDS

from kyphosim.anatomy.phantom.measure import measure_heights_on_labels

LEVEL_KEYS = {"label", "name", "height_anterior_mm", "height_middle_mm", "height_posterior_mm",
              "expected_height_mm", "height_loss_pct", "genant_grade", "genant_type", "wedge_angle_deg",
              "trabecular_hu", "vbmd_mg_cm3", "posterior_wall_bulge_mm", "fracture", "centroid_mm",
              "si_axis", "ap_axis", "lr_axis", "body_depth_mm", "body_width_mm", "pedicles"}
PEDICLE_KEYS = {"entry_mm", "target_mm", "axis", "isthmus_mm", "min_width_mm", "convergence_deg",
                "sagittal_deg"}


@pytest.fixture(scope="module")
def small():
    """T12–L2 with an L1 wedge grade 2, 1.5 mm voxels, soft tissue, LPS."""
    spec = PhantomSpec(levels="T12-L2", fractures=["L1:wedge:2:acute:retropulsion=3"], bmd_mg_cm3=80,
                       spacing_mm=(1.5, 1.5, 1.5), orientation="LPS", seed=7)
    return make_phantom(spec)


def test_truth_has_contract_fields(small):
    t = small.truth
    assert t["schema"] == "kyphosim.phantom-truth/1"
    assert [lv["name"] for lv in t["levels"]] == ["T12", "L1", "L2"]
    for lv in t["levels"]:
        assert LEVEL_KEYS <= set(lv)
        for side in ("left", "right"):
            assert PEDICLE_KEYS <= set(lv["pedicles"][side])
        for ax in ("si_axis", "ap_axis", "lr_axis"):
            assert np.linalg.norm(lv[ax]) == pytest.approx(1.0, abs=1e-9)
        assert abs(np.dot(lv["si_axis"], lv["ap_axis"])) < 1e-9
    assert {"regional_kyphosis_deg", "levels_kyphosis"} <= set(t["spine"])
    l1 = small.level("L1")
    assert l1["fracture"]["type"] == "wedge" and l1["genant_grade"] == 2 and l1["genant_type"] == "wedge"
    assert 25.0 <= l1["height_loss_pct"] <= 40.0
    assert l1["height_anterior_mm"] < l1["height_middle_mm"] < l1["height_posterior_mm"]
    assert l1["wedge_angle_deg"] > 8.0
    assert l1["intact_heights_mm"]["posterior"] == pytest.approx(l1["expected_height_mm"])
    assert l1["intact_heights_mm"]["anterior"] > l1["height_anterior_mm"] + 5.0
    assert l1["posterior_wall_bulge_mm"] == pytest.approx(3.0, abs=0.4)
    for name in ("T12", "L2"):
        lv = small.level(name)
        assert lv["genant_grade"] == 0 and lv["fracture"] is None and lv["genant_type"] is None
        assert lv["posterior_wall_bulge_mm"] < 0.3


def test_world_axes_and_order(small):
    """SI points up (world +z), AP anterior (+y), LR right (+x); levels cranial → caudal."""
    lv = small.truth["levels"]
    z = [v["centroid_mm"][2] for v in lv]
    assert z[0] > z[1] > z[2]
    for v in lv:
        assert v["si_axis"][2] > 0.9 and v["ap_axis"][1] > 0.9 and v["lr_axis"][0] > 0.99
        # left pedicle on the patient's left (−x), axes point anterior and converge medially
        left, right = v["pedicles"]["left"], v["pedicles"]["right"]
        assert left["isthmus_mm"][0] < v["centroid_mm"][0] < right["isthmus_mm"][0]
        assert np.dot(left["axis"], v["ap_axis"]) > 0.9


def test_subregions_consistent_with_labels(small):
    lab, sub = small.labels.data, small.subregions.data
    assert small.labels.same_grid(small.subregions) and small.labels.same_grid(small.ct)
    bone_ids = [SUBREGION_IDS[k] for k in ("vertebral_body", "pedicle_left", "pedicle_right",
                                           "posterior_elements", "basivertebral_foramen")]
    assert np.all(lab[np.isin(sub, bone_ids)] > 0)
    assert np.all(sub[lab > 0] > 0)
    assert np.all(lab[np.isin(sub, [SUBREGION_IDS["spinal_canal"], SUBREGION_IDS["intervertebral_disc"]])] == 0)
    for sid in SUBREGION_IDS.values():
        assert np.count_nonzero(sub == sid) > 0, sid
    # left pedicle voxels lie on the patient's left of the mid-sagittal plane
    ct = small.ct
    for sid, sign in ((SUBREGION_IDS["pedicle_left"], -1), (SUBREGION_IDS["pedicle_right"], 1)):
        xyz = ct.voxel_to_world(np.argwhere(sub == sid))
        assert np.all(sign * xyz[:, 0] > 0)


def test_pedicle_axis_inside_pedicle(small):
    sub = small.subregions
    for lv in small.truth["levels"]:
        for side, sid in (("left", 2), ("right", 3)):
            p = lv["pedicles"][side]
            iso, ax = np.asarray(p["isthmus_mm"]), np.asarray(p["axis"])
            pts = iso[None] + np.linspace(-2.5, 2.5, 11)[:, None] * ax[None]
            vals = sub.sample(pts, order=0)
            assert np.all(vals == sid), (lv["name"], side, vals)
            # entry behind the isthmus, target in the anterior body
            assert np.dot(np.asarray(p["entry_mm"]) - iso, ax) < -5
            tgt = np.asarray(p["target_mm"])
            assert small.subregions.sample(tgt[None], order=0)[0] == SUBREGION_IDS["vertebral_body"]
            assert 0.0 < p["convergence_deg"] < 35.0 and p["min_width_mm"] > 4.0


def test_ct_tissues_and_density(small):
    ct, lab, sub = small.ct.data, small.labels.data, small.subregions.data
    assert ct.min() <= -990  # air behind the back
    assert np.mean((ct > -140) & (ct < -60)) > 0.03      # fat
    assert np.mean((ct > 20) & (ct < 70)) > 0.05          # muscle / blood / organs
    for lv in small.truth["levels"]:
        assert lv["trabecular_hu"] == pytest.approx(hu_from_vbmd(lv["vbmd_mg_cm3"]))
        body = (lab == lv["label"]) & (sub == 1)
        core = np.zeros_like(body)
        from scipy import ndimage
        core = ndimage.binary_erosion(body, iterations=3)
        med = float(np.median(ct[core]))
        assert med == pytest.approx(lv["trabecular_hu"], abs=25), lv["name"]
    intact = [lv["vbmd_mg_cm3"] for lv in small.truth["levels"] if lv["fracture"] is None]
    assert all(70 < v < 90 for v in intact)


def test_thoracic_ribs_are_bone_without_vertebra_label(small):
    """T12 carries (short, floating) ribs: bright bone lateral to the spine, labelled 0 and kept
    off the vertebra (no rib voxel touches a labelled voxel)."""
    from scipy import ndimage
    ct, lab = small.ct.as_canonical(), small.labels.as_canonical()
    xyz_x = ct.voxel_to_world(np.stack([np.arange(ct.shape[0]), np.zeros(ct.shape[0]), np.zeros(ct.shape[0])], 1))[:, 0]
    lateral = np.abs(xyz_x)[:, None, None] > 45.0
    rib = (ct.data > 350) & (lab.data == 0) & lateral
    assert rib.sum() > 50
    grown = ndimage.binary_dilation(lab.data > 0)
    assert not np.any(grown & rib)


def _ball_mean(ct, roi):
    c, r = np.asarray(roi["center_mm"]), roi["radius_mm"]
    g = np.mgrid[-r:r:0.75, -r:r:0.75, -r:r:0.75].reshape(3, -1).T
    return float(ct.sample(c + g[np.linalg.norm(g, axis=1) <= r], order=0).mean())


def test_calibration_tissues_present(small):
    """Air, fat, muscle and blood regions read their nominal HU (phantomless calibration inputs)."""
    rois = small.truth["calibration_rois"]
    assert set(rois) == {"air", "fat", "muscle", "blood"}
    for name, roi in rois.items():
        assert roi["radius_mm"] >= 2.0
        assert _ball_mean(small.ct, roi) == pytest.approx(roi["hu"], abs=6.0), name


def test_scanner_gain_offset_maps_every_tissue():
    spec = dict(levels="L1", spacing_mm=2.0, seed=2, noise_hu=0.0)
    a = make_phantom(PhantomSpec(**spec))
    b = make_phantom(PhantomSpec(**spec, hu_gain=1.1, hu_offset=-20.0))
    for name, roi in b.truth["calibration_rois"].items():
        assert roi["hu"] == pytest.approx(-20.0 + 1.1 * a.truth["calibration_rois"][name]["hu"])
    la, lb = a.truth["levels"][0], b.truth["levels"][0]
    assert la["vbmd_mg_cm3"] == pytest.approx(lb["vbmd_mg_cm3"])
    assert lb["trabecular_hu"] == pytest.approx(-20.0 + 1.1 * la["trabecular_hu"])
    inside = (a.ct.data > -900) & (a.ct.data < 2000)
    assert np.allclose(b.ct.data[inside], -20.0 + 1.1 * a.ct.data[inside], atol=0.05)


def test_deterministic_and_seeded():
    spec = dict(levels="L1-L2", fractures=["L1:biconcave:1"], spacing_mm=2.0, seed=3, margin_mm=3,
                soft_tissue=False)
    a, b = make_phantom(PhantomSpec(**spec)), make_phantom(PhantomSpec(**spec))
    assert np.array_equal(a.ct.data, b.ct.data) and np.array_equal(a.labels.data, b.labels.data)
    assert a.truth["levels"][0]["height_loss_pct"] == b.truth["levels"][0]["height_loss_pct"]
    c = make_phantom(PhantomSpec(**{**spec, "seed": 4}))
    assert c.truth["levels"][0]["height_loss_pct"] != a.truth["levels"][0]["height_loss_pct"]
    assert not np.array_equal(a.ct.data, c.ct.data)


def test_orientation_and_anisotropic_spacing():
    base = dict(levels="L2", spacing_mm=(1.0, 2.0, 1.5), seed=1, margin_mm=2, soft_tissue=False, noise_hu=5)
    ras = make_phantom(PhantomSpec(**base, orientation="RAS"))
    # PIR: array axes P, I, R → spacings (y, z, x) = (2.0, 1.5, 1.0) for the same world grid
    pir = make_phantom(PhantomSpec(**{**base, "spacing_mm": (2.0, 1.5, 1.0)}, orientation="PIR"))
    assert "".join(pir.ct.axcodes) == "PIR" and "".join(ras.ct.axcodes) == "RAS"
    assert np.allclose(pir.ct.spacing, (2.0, 1.5, 1.0)) and np.allclose(ras.ct.spacing, (1.0, 2.0, 1.5))
    a, b = ras.ct.as_canonical(), pir.ct.as_canonical()
    assert a.same_grid(b)
    assert np.array_equal(a.data, b.data)
    assert np.array_equal(ras.labels.as_canonical().data, pir.labels.as_canonical().data)
    assert ras.truth["levels"][0]["centroid_mm"] == pir.truth["levels"][0]["centroid_mm"]


def test_saved_files_roundtrip(tmp_path, small):
    from kyphosim.imaging.io import load_ct, load_labels
    import json
    small.save(tmp_path)
    ct = load_ct(tmp_path / "ct.nii.gz")
    assert ct.source_axcodes == ("L", "P", "S") and ct.same_grid(small.ct)
    assert np.abs(ct.data - small.ct.data).max() <= 0.5
    lab = load_labels(tmp_path / "labels.nii.gz", reference=ct)
    assert np.array_equal(lab.data, small.labels.data)
    t = json.loads((tmp_path / "truth.json").read_text())
    assert t["levels"][1]["name"] == "L1" and t["schema"] == "kyphosim.phantom-truth/1"


@pytest.mark.parametrize("ftype", ["wedge", "biconcave", "crush"])
@pytest.mark.parametrize("grade", [1, 2, 3])
def test_fracture_heights_in_genant_band(ftype, grade):
    """Shape-level check (no voxels): the drawn height loss lies in the grade's band and the most
    reduced height matches the type (Ha wedge, Hm biconcave, all heights for crush)."""
    from kyphosim.anatomy.phantom.truth import level_truth
    retro = 2.5 if grade == 3 else 0.0
    spec = PhantomSpec(levels="T12-L2", fractures=[FractureSpec("L1", ftype, grade, retropulsion_mm=retro)],
                       seed=11)
    shapes, draws = build_shapes(spec)
    s = shapes[1]
    lv = level_truth(s, {"vbmd_mg_cm3": 80.0, "vbmd_baseline_mg_cm3": 80.0}, spec, draws["L1"])
    lo, hi = GENANT_BANDS_PCT[grade]
    assert lo - 0.3 <= lv["height_loss_pct"] <= hi + 0.3
    assert lv["genant_grade"] == grade and lv["genant_type"] == ftype
    assert lv["posterior_wall_bulge_mm"] == pytest.approx(retro, abs=0.25)
    ha, hm, hp = lv["height_anterior_mm"], lv["height_middle_mm"], lv["height_posterior_mm"]
    intact = lv["expected_height_mm"]
    if ftype == "wedge":
        assert ha < hm < hp and lv["wedge_angle_deg"] > 3
    elif ftype == "biconcave":
        assert hm < ha and hm < hp
    else:
        assert max(ha, hm, hp) < 0.9 * intact      # every height reduced, Hp included


def test_fine_voxelisation_matches_truth_heights():
    """Heights measured on a 0.6 mm label map (the convention, with the truth's frame) agree with
    the analytic truth within one voxel."""
    spec = PhantomSpec(levels="L1", fractures=["L1:wedge:2:retropulsion=2"], spacing_mm=0.6, seed=5,
                       soft_tissue=False, margin_mm=1, orientation="PIR", noise_hu=0)
    ph = make_phantom(spec)
    lv = ph.truth["levels"][0]
    m = measure_heights_on_labels(ph.labels, lv, ph.subregions)
    pairs = [(m["ha"], lv["height_anterior_mm"]), (m["hm"], lv["height_middle_mm"]),
             (m["hp"], lv["height_posterior_mm"]), (m["depth"], lv["body_depth_mm"]),
             (m["width"], lv["body_width_mm"])]
    errs = np.array([a - b for a, b in pairs])
    # a voxelised surface is only known to ±half a voxel: each measure within one voxel, no bias
    assert np.all(np.abs(errs) <= 0.6), errs
    assert abs(errs.mean()) < 0.3, errs
    # body volume from voxels vs the analytic centroid frame: centroid of the body voxels
    sub = ph.subregions.as_canonical()
    lab = ph.labels.as_canonical()
    body = (lab.data == lv["label"]) & np.isin(sub.data, (1, 6))
    c = lab.voxel_to_world(np.argwhere(body)).mean(axis=0)
    assert np.linalg.norm(c - np.asarray(lv["centroid_mm"])) < 0.3


@pytest.mark.parametrize("age", ["acute", "chronic"])
def test_cleft_and_fracture_density(age):
    """A gas cleft is drawn inside the body (label kept), fracture bands raise the mean vBMD,
    acute fractures interrupt the cortex and chronic ones do not."""
    spec = PhantomSpec(levels="L1", fractures=[f"L1:crush:2:{age}:cleft"], spacing_mm=1.0, seed=4,
                       soft_tissue=False, margin_mm=2, noise_hu=0)
    ph = make_phantom(spec)
    lv = ph.truth["levels"][0]
    gas = (ph.ct.data < -300) & (ph.labels.data == lv["label"])
    assert gas.sum() > 30
    assert np.all(np.isin(ph.subregions.data[gas], (SUBREGION_IDS["vertebral_body"], SUBREGION_IDS["basivertebral_foramen"])))
    assert lv["vbmd_mg_cm3"] > lv["vbmd_baseline_mg_cm3"] + 3
    s = ph.shapes[0]
    g = np.stack(np.meshgrid(np.linspace(-15, 15, 31), np.linspace(-15, 15, 31), np.linspace(-12, 12, 49),
                             indexing="ij"), -1).reshape(-1, 3)
    assert (s.cortical_breaks(g).sum() > 0) == (age == "acute")


def test_size_variability_is_seeded_and_off_by_default():
    from kyphosim.anatomy.phantom.measure import measure_body
    hp = {}
    for key, kw in {"mean": {}, "a": dict(size_sd=0.05, seed=1), "b": dict(size_sd=0.05, seed=2),
                    "a2": dict(size_sd=0.05, seed=1), "plain": dict(seed=2)}.items():
        shapes, _ = build_shapes(PhantomSpec(levels="L1", **kw))
        hp[key] = measure_body(shapes[0], fine=False).hp_mm
    assert hp["plain"] == hp["mean"] and hp["a"] == hp["a2"] and hp["a"] != hp["b"]
    assert all(0.85 < hp[k] / hp["mean"] < 1.15 for k in hp)


def test_demo_case_is_osteoporotic_acute_l1_wedge_grade2():
    spec = demo_case()
    f = spec.fracture_at("L1")
    assert f is not None and (f.type, f.grade, f.age) == ("wedge", 2, "acute")
    assert spec.bmd_mg_cm3 < 80 and "L1" in spec.levels


def test_too_large_phantom_is_refused_before_drawing():
    with pytest.raises(InputError, match="M voxels"):
        make_phantom(PhantomSpec(levels="T1-L5", spacing_mm=0.3))


@pytest.mark.parametrize("kw, msg", [
    (dict(levels="T12-L9"), "unknown vertebra"),
    (dict(levels="C5-C7"), "T1–L5"),
    (dict(levels="T12,L2"), "contiguous"),
    (dict(fractures=["L1:wedge:4"]), "grade"),
    (dict(fractures=["L1:squash:2"]), "type"),
    (dict(fractures=["L1:wedge:2:old"]), "unknown option"),
    (dict(levels="L2-L3", fractures=["L1:wedge:2"]), "not among"),
    (dict(spacing_mm="0,1,1"), "positive"),
    (dict(spacing_mm="1,1"), "1 or 3"),
    (dict(orientation="LPA"), "orientation"),
    (dict(bmd_mg_cm3=-5), "bmd"),
])
def test_bad_specs(kw, msg):
    with pytest.raises(InputError, match=msg):
        PhantomSpec(**kw)
