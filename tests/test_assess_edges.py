"""The CT edge model of the endplate surfaces (kyphosim.assess.edges) on synthetic profiles and a CT."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from kyphosim.assess.edges import CTCrop, fit_plate_edges, refine_surfaces
from kyphosim.imaging.volume import Volume


def _profile(x, b, s=0.8, sigma=0.5, i_in=150.0, i_p=1200.0, i_out=80.0):
    return (i_out * ndtr((x - b) / sigma) + i_p * (ndtr((b - x) / sigma) - ndtr((b - s - x) / sigma))
            + i_in * ndtr((b - s - x) / sigma))


@pytest.mark.parametrize("sigma", [0.4, 0.8, 1.3])
def test_fit_recovers_the_outer_surface_within_its_voxel(sigma):
    rng = np.random.default_rng(0)
    x = np.arange(-4.0, 4.0, 0.1)
    b_true = rng.uniform(-0.6, 0.6, 40)
    prof = np.stack([_profile(x, b, sigma=sigma) for b in b_true]) + rng.normal(0, 10.0, (40, x.size))
    fit = fit_plate_edges(prof, x, half_interval_mm=0.75, sigma_mm=sigma)
    assert fit.ok.all()
    assert np.median(np.abs(fit.offset_mm - b_true)) < 0.08
    assert np.max(np.abs(fit.offset_mm - b_true)) < 0.3
    # the plate mass (HU·mm) is recovered whatever the blur
    assert np.median(fit.plate_mass_hu_mm) == pytest.approx((1200 - 150) * 0.8, rel=0.1)


def test_no_plate_falls_back():
    x = np.arange(-4.0, 4.0, 0.1)
    step = 80.0 + 70.0 * ndtr(-x / 0.5)          # trabecular → disc, no cortical plate (fracture line)
    fit = fit_plate_edges(step[None, :], x, half_interval_mm=0.5, sigma_mm=0.5)
    assert not fit.ok[0]


def test_refine_on_a_sampled_ct_beats_the_voxel():
    """A slab phantom (plate + trabecular bone) on a 1 mm grid, blurred: surfaces to < 0.15 mm."""
    from scipy import ndimage

    z_top, z_bot = 10.37, -9.81                   # outer surfaces (mm), off the voxel grid
    fine = 0.05
    zf = np.arange(-20, 20, fine)
    col = np.where((zf <= z_top) & (zf >= z_bot), 150.0, 80.0)
    col = np.where(((zf <= z_top) & (zf > z_top - 0.8)) | ((zf >= z_bot) & (zf < z_bot + 0.8)), 1200.0, col)
    col = ndimage.gaussian_filter1d(col, 0.45 / fine)
    zc = np.arange(-19.5, 20, 1.0)               # 1 mm voxels: box average of the blurred profile
    vals = np.array([col[np.abs(zf - z) <= 0.5].mean() for z in zc])
    data = np.broadcast_to(vals, (12, 12, zc.size)).copy()
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-6.0, -6.0, zc[0]]
    ct = Volume(data.astype(np.float32), aff)
    crop = CTCrop(ct, np.array([-3, -3, -15.0]), np.array([3, 3, 15.0]))
    org = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])
    # mask surfaces: halfway between the last inside and first outside voxel centre
    t_sup = np.array([10.5, 10.5])
    t_inf = np.array([-9.5, -9.5])
    up, okp = refine_surfaces(crop, org, np.array([0, 0, 1.0]), t_sup, +1.0, 1.0)
    dn, okm = refine_surfaces(crop, org, np.array([0, 0, 1.0]), t_inf, -1.0, 1.0)
    assert okp.all() and okm.all()
    assert np.all(np.abs(up - z_top) < 0.15), up
    assert np.all(np.abs(dn - z_bot) < 0.15), dn
    # NaN input passes through
    t_nan, ok_nan = refine_surfaces(crop, org[:1], np.array([0, 0, 1.0]), np.array([np.nan]), 1.0, 1.0)
    assert np.isnan(t_nan[0]) and not ok_nan[0]


def test_subendplate_band_gates_the_thicker_plate_of_a_chronic_fracture(monkeypatch):
    """A chronic (sclerotic, thick-endplate) fracture: its band is found, the normal levels have none, and
    the thicker plate moves its heights towards the truth (the thin-plate model reads them low)."""
    from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
    from kyphosim.assess import api

    ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=["L1:biconcave:2:chronic"], spacing_mm=(1.0, 1.0, 1.0),
                                  orientation="RAS", seed=5))
    truth = {lv["name"]: lv for lv in ph.truth["levels"]}
    keys = ("height_anterior_mm", "height_middle_mm", "height_posterior_mm")

    def l1_error(res):
        lv = res.level("L1")
        return float(np.mean([getattr(lv, k) - truth["L1"][k] for k in keys]))

    res, geos, _ = api.assess_spine_detailed(ph.ct, ph.labels)
    bands = {g.name: g.subendplate_band for g in geos.values()}
    assert bands == {"T12": False, "L1": True, "L2": False}
    assert "dense_endplates" in res.level("L1").flags
    assert all("dense_endplates" not in res.level(n).flags for n in ("T12", "L2"))
    monkeypatch.setattr(api, "SUBENDPLATE_BAND_MIN_HU", 1e9)     # no band → typical plate everywhere
    res_thin, geos_thin, _ = api.assess_spine_detailed(ph.ct, ph.labels)
    assert not any(g.subendplate_band for g in geos_thin.values())
    assert abs(l1_error(res)) < abs(l1_error(res_thin))
    assert res.level("L1").genant_grade == truth["L1"]["genant_grade"]
