"""Simulated fluoroscopy: projector correctness on analytic phantoms, geometry, instruments, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from kyphosim.errors import InputError
from kyphosim.imaging.volume import Volume
from kyphosim.planning.fluoro import carm_geometry, hu_to_mu, render_drr
from kyphosim.planning.instruments import (MU_WATER_60KEV_PER_MM, Balloon, Cannula, Cylinder, Ellipsoid,
                                           MaskObject, cannula_outer_diameter_mm)

R_MM = 40.0          # cylinder radius
HU_CYL = 1000.0      # μ = 2 μ_water inside


def _cylinder_volume(affine: np.ndarray, shape, axis_point, axis_dir, radius, hu_in, hu_out=-1000.0, ss=4):
    """Partial-volume (supersampled ×ss³) voxelisation of an infinite cylinder, in HU."""
    axis_dir = np.asarray(axis_dir, float) / np.linalg.norm(axis_dir)
    frac = np.zeros(shape, np.float32)
    off = (np.arange(ss) + 0.5) / ss - 0.5
    ii, jj, kk = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    for a in off:
        for b in off:
            for c in off:
                ijk = np.stack([ii + a, jj + b, kk + c], -1)
                w = ijk @ affine[:3, :3].T + affine[:3, 3] - axis_point
                wp = w - (w @ axis_dir)[..., None] * axis_dir
                frac += (np.einsum("...i,...i->...", wp, wp) <= radius ** 2)
    frac /= ss ** 3
    return Volume(hu_out + frac * (hu_in - hu_out), affine)


def _analytic_chords(geom, axis_point, axis_dir, radius):
    """Exact chord lengths (mm) of every detector ray through the infinite cylinder."""
    a = np.asarray(axis_dir, float) / np.linalg.norm(axis_dir)
    pts = geom.pixel_centers_mm().reshape(-1, 3)
    d = pts - geom.source_mm
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    w = geom.source_mm - axis_point
    dp = d - (d @ a)[:, None] * a
    wp = w - (w @ a) * a
    A = (dp * dp).sum(1)
    B = 2 * (dp @ wp)
    C = wp @ wp - radius ** 2
    disc = np.maximum(B * B - 4 * A * C, 0)
    t1 = (-B - np.sqrt(disc)) / (2 * A)
    t2 = (-B + np.sqrt(disc)) / (2 * A)
    return (t2 - t1).reshape(geom.rows, geom.cols), t1.reshape(geom.rows, geom.cols), \
        t2.reshape(geom.rows, geom.cols), pts.reshape(geom.rows, geom.cols, 3), d.reshape(geom.rows, geom.cols, 3)


@pytest.fixture(scope="module")
def oblique_affine():
    """A 1.0 × 1.2 × 1.5 mm LPS-ordered grid, rotated 10° about z (exercises the affine handling)."""
    rot = np.deg2rad(10)
    r = np.array([[np.cos(rot), -np.sin(rot), 0], [np.sin(rot), np.cos(rot), 0], [0, 0, 1]])
    lin = r @ np.diag([-1.0, -1.2, 1.5])  # L, P, S voxel order
    aff = np.eye(4)
    aff[:3, :3] = lin
    shape = (110, 96, 60)
    centre_vox = (np.array(shape) - 1) / 2
    aff[:3, 3] = np.array([5.0, -20.0, 30.0]) - lin @ centre_vox
    return aff, shape


@pytest.mark.parametrize("view,kw", [("ap", {}), ("lateral", {}), ("oblique-left", {"oblique_deg": 30.0})])
def test_cylinder_line_integrals_within_one_percent(oblique_affine, view, kw):
    aff, shape = oblique_affine
    centre = np.array([5.0, -20.0, 30.0])
    axis = np.array([0.0, 0.0, 1.0])
    vol = _cylinder_volume(aff, shape, centre, axis, R_MM, HU_CYL)
    geom = carm_geometry(view, centre, rows=96, pixel_mm=1.2, **kw)
    drr = render_drr(vol, geom)
    chord, t1, t2, pts, d = _analytic_chords(geom, centre, axis, R_MM)
    mu_in = MU_WATER_60KEV_PER_MM * (1 + HU_CYL / 1000)
    expected = mu_in * chord
    # rays crossing the cylinder well inside its radius and within the volume's z extent
    z_in = geom.source_mm[2] + t1 * d[..., 2]
    z_out = geom.source_mm[2] + t2 * d[..., 2]
    zlim = 0.5 * (shape[2] - 1) * 1.5 - 3.0
    sel = (chord > 2 * R_MM * 0.6) & (np.abs(z_in - centre[2]) < zlim) & (np.abs(z_out - centre[2]) < zlim)
    assert sel.sum() > 500
    rel = np.abs(drr.line_integral[sel] - expected[sel]) / expected[sel]
    assert rel.max() < 0.01, f"max relative error {rel.max():.4f}"
    # the air outside contributes nothing
    assert np.all(drr.line_integral[chord == 0] < 1e-4)


def test_hu_to_mu_water_and_air():
    mu = hu_to_mu(np.array([-1000.0, 0.0, 1000.0, -2000.0]))
    assert np.allclose(mu, [0.0, MU_WATER_60KEV_PER_MM, 2 * MU_WATER_60KEV_PER_MM, 0.0], atol=1e-7)


def test_point_bead_lands_on_projected_pixel():
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-40, -40, -40]
    data = np.full((81, 81, 81), -1000.0, np.float32)
    bead = np.array([12.0, 7.0, -9.0])
    ijk = np.round(bead - aff[:3, 3]).astype(int)
    data[ijk[0] - 1:ijk[0] + 2, ijk[1] - 1:ijk[1] + 2, ijk[2] - 1:ijk[2] + 2] = 3000.0
    vol = Volume(data, aff)
    for view in ("ap", "lateral", "oblique-right"):
        geom = carm_geometry(view, (0, 0, 0), rows=128, pixel_mm=1.0)
        drr = render_drr(vol, geom)
        w = drr.line_integral
        rr, cc = np.indices(w.shape)
        peak = ((w * rr).sum() / w.sum(), (w * cc).sum() / w.sum())   # centroid of the bead's shadow
        rc = geom.project(bead)
        assert np.hypot(peak[0] - rc[0], peak[1] - rc[1]) <= 0.25, view


def test_view_orientation_conventions():
    ap = carm_geometry("ap", (0, 0, 0))
    lat = carm_geometry("lateral", (0, 0, 0))
    # AP: seen from behind, patient's right on the image right, superior up
    assert ap.project([30, 0, 0])[1] > ap.project([0, 0, 0])[1]
    assert ap.project([0, 0, 30])[0] < ap.project([0, 0, 0])[0]
    # lateral: anterior on the image left
    assert lat.project([0, 30, 0])[1] < lat.project([0, 0, 0])[1]
    assert ap.source_to_detector_mm == pytest.approx(1000.0)
    assert ap.magnification == pytest.approx(1000 / 700)
    # left oblique: the beam runs posterior-laterally on the left (−x, −y)
    ol = carm_geometry("oblique-left", (0, 0, 0), oblique_deg=20)
    assert ol.direction[0] < 0 and ol.direction[1] < 0


def test_instruments_are_radiopaque_and_exact():
    aff = np.eye(4)
    aff[:3, 3] = [-30, -30, -30]
    vol = Volume(np.full((61, 61, 61), -1000.0, np.float32), aff)
    geom = carm_geometry("ap", (0, 0, 0), rows=65, pixel_mm=1.0)
    cyl = Cylinder((-20, 0, 0), (20, 0, 0), 2.0, mu_per_mm=1.0, displaced_mu_per_mm=0.0)
    drr = render_drr(vol, geom, instruments=[cyl])
    # central ray crosses the rod perpendicular: chord = 2r
    rc = np.round(geom.project([0, 0, 0])).astype(int)
    assert drr.instruments_line_integral[rc[0], rc[1]] == pytest.approx(4.0, rel=2e-3)
    # a tube (hollow cannula) attenuates less than the solid one on its axis
    solid = Cannula((0, -20, 0), (0, 20, 0), 10)
    hollow = Cannula((0, -20, 0), (0, 20, 0), 10, stylet=False)
    c0 = render_drr(vol, carm_geometry("lateral", (0, 0, 0), rows=65, pixel_mm=1.0), instruments=[solid])
    c1 = render_drr(vol, carm_geometry("lateral", (0, 0, 0), rows=65, pixel_mm=1.0), instruments=[hollow])
    assert c0.instruments_line_integral.max() > c1.instruments_line_integral.max() > 0
    assert cannula_outer_diameter_mm(8) == pytest.approx(4.19)
    with pytest.raises(InputError):
        cannula_outer_diameter_mm(9)
    # a sphere as an ellipsoid and a zero-length balloon (sphere) agree
    e = Ellipsoid((0, 0, 0), (5, 5, 5), mu_per_mm=1.0, displaced_mu_per_mm=0.0)
    b = Balloon((0, 0, 0), (0, 0, 0), 10.0, material=1.0)
    de = render_drr(vol, geom, instruments=[e]).instruments_line_integral
    db = render_drr(vol, geom, instruments=[b]).instruments_line_integral
    assert de[rc[0], rc[1]] == pytest.approx(10.0, rel=1e-3)
    assert np.allclose(de, db + 0 * db, atol=0.25)  # balloon displaces water, the ellipsoid nothing


def test_mask_object_replaces_attenuation_and_overlay():
    aff = np.eye(4)
    aff[:3, 3] = [-30, -30, -30]
    data = np.full((61, 61, 61), 0.0, np.float32)  # water
    vol = Volume(data, aff)
    mask = np.zeros(data.shape, bool)
    mask[25:36, 25:36, 25:36] = True   # 11 mm cube around the centre
    mvol = Volume(mask, aff, is_label=True)
    geom = carm_geometry("ap", (0, 0, 0), rows=65, pixel_mm=1.0)
    base = render_drr(vol, geom)
    with_cement = render_drr(vol, geom, instruments=[MaskObject(mvol, mu_per_mm=0.263)],
                             overlays={"cube": mvol})
    rc = np.round(geom.project([0, 0, 0])).astype(int)
    delta = with_cement.line_integral[rc[0], rc[1]] - base.line_integral[rc[0], rc[1]]
    assert delta == pytest.approx((0.263 - MU_WATER_60KEV_PER_MM) * 11.0, rel=0.1)
    sil = with_cement.overlays["cube"]
    assert sil[rc[0], rc[1]] > 5 and sil[0, 0] == 0
    img = with_cement.display()
    assert img.shape == (65, 65) and 0 <= img.min() and img.max() <= 1


def test_bad_inputs():
    vol = Volume(np.zeros((8, 8, 8), np.float32), np.eye(4))
    with pytest.raises(InputError):
        render_drr(vol, "sideways")
    with pytest.raises(InputError):
        render_drr(vol, "ap", step_mm=5.0)
    with pytest.raises(InputError):
        carm_geometry("ap", (0, 0, 0), sid_mm=1200)


@pytest.fixture(scope="module")
def aligned_cylinder():
    """The cylinder on an axis-aligned PIR grid (1.0 × 1.5 × 1.2 mm): voxel planes parallel to the
    AP and lateral detectors (the factorised Joseph path)."""
    lin = np.array([[0.0, 0.0, 1.2], [-1.0, 0.0, 0.0], [0.0, -1.5, 0.0]])    # i: −y (P), j: −z (I), k: +x (R)
    aff = np.eye(4)
    aff[:3, :3] = lin
    shape = (100, 40, 90)
    centre = np.array([5.0, -20.0, 30.0])
    aff[:3, 3] = centre - lin @ ((np.array(shape) - 1) / 2)
    axis = np.array([0.0, 0.0, 1.0])
    return _cylinder_volume(aff, shape, centre, axis, R_MM, HU_CYL, ss=3), centre, axis


@pytest.mark.parametrize("view,sampling", [("ap", "auto"), ("lateral", "auto"), ("ap", "trilinear")])
def test_cylinder_on_aligned_grid_factorised_and_trilinear(aligned_cylinder, view, sampling):
    from kyphosim.planning.fluoro.kernel import planes_layout
    vol, centre, axis = aligned_cylinder
    geom = carm_geometry(view, centre, rows=96, pixel_mm=1.2)
    assert planes_layout(vol.affine, geom) is not None          # the factorised path is exercised
    drr = render_drr(vol, geom, sampling=sampling)
    chord, t1, t2, pts, d = _analytic_chords(geom, centre, axis, R_MM)
    expected = MU_WATER_60KEV_PER_MM * (1 + HU_CYL / 1000) * chord
    z_in = geom.source_mm[2] + t1 * d[..., 2]
    z_out = geom.source_mm[2] + t2 * d[..., 2]
    zlim = 0.5 * 39 * 1.5 - 3.0
    sel = (chord > 2 * R_MM * 0.6) & (np.abs(z_in - centre[2]) < zlim) & (np.abs(z_out - centre[2]) < zlim)
    assert sel.sum() > 300
    rel = np.abs(drr.line_integral[sel] - expected[sel]) / expected[sel]
    assert rel.max() < 0.01, f"max relative error {rel.max():.4f}"
    assert np.all(drr.line_integral[chord == 0] < 1e-4)


def test_quadratures_agree_on_a_smooth_volume():
    """Factorised Joseph == ray-driven Joseph (same quadrature) and both ≈ fine trilinear sampling."""
    from scipy import ndimage

    from kyphosim.planning.fluoro.kernel import (planes_layout, project_volume, project_volume_joseph,
                                                 project_volume_planes)
    rng = np.random.default_rng(3)
    data = ndimage.gaussian_filter(rng.random((40, 48, 36)), 3.0).astype(np.float32)
    aff = np.diag([1.0, 1.2, 1.5, 1.0])
    aff[:3, 3] = -0.5 * np.array([39 * 1.0, 47 * 1.2, 35 * 1.5])
    for view in ("ap", "lateral"):
        geom = carm_geometry(view, (0, 0, 0), rows=72, pixel_mm=1.0)
        lay = planes_layout(aff, geom)
        assert lay is not None
        fac = project_volume_planes(data, aff, geom, lay)
        ray = project_volume_joseph(data, aff, geom)
        ref = project_volume(data, aff, geom, step_mm=0.25)
        inner = ndimage.binary_erosion(ref > 0, iterations=4)    # rays away from the side faces
        assert inner.sum() > 1000
        assert np.max(np.abs(fac - ray)[inner] / ray[inner]) < 1e-4
        assert np.max(np.abs(ray - ref)[inner] / ref[inner]) < 0.01


def test_mu_cache_follows_the_ct():
    from kyphosim.planning.fluoro import clear_cache
    aff = np.eye(4)
    aff[:3, 3] = [-20, -20, -20]
    data = np.zeros((41, 41, 41), np.float32)
    vol = Volume(data, aff)
    geom = carm_geometry("ap", (0, 0, 0), rows=32, pixel_mm=1.5)
    a = render_drr(vol, geom).line_integral
    assert np.array_equal(render_drr(vol, geom).line_integral, a)          # cached μ, same image
    vol.data[...] = 1000.0                                                  # in-place edit is detected
    b = render_drr(vol, geom).line_integral
    assert b.max() == pytest.approx(2 * a.max(), rel=1e-4)
    clear_cache()
    assert np.array_equal(render_drr(vol, geom).line_integral, b)
    assert np.allclose(render_drr(Volume(data.copy(), aff), geom).line_integral, b)
    with pytest.raises(InputError):
        render_drr(vol, geom, sampling="siddon")
