"""Unit tests of the assessment geometry and measurements on small synthetic spines with known truth.

The synthetic vertebra is analytic: an elliptic-cylinder body whose height varies linearly from Hp
(posterior) to Ha (anterior), optionally with a central (biconcave) depression, and a posterior ring
(pedicles + lamina) around a canal. It is voxelised (voxel centre inside) on grids of any spacing and
orientation after a sagittal tilt, so the truth heights are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from kyphosim.assess.geometry import vertebral_body_geometry, voxel_extent_along
from kyphosim.errors import GridMismatchError, LabelError
from kyphosim.imaging.volume import Volume


def _rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def make_spine(levels, *, spacing=(1.0, 1.0, 1.0), axcodes=("R", "A", "S"), tilt_deg=0.0, D=30.0, W=40.0,
               disc=8.0, canal=True, seed=0):
    """levels: list of (label, Hp, Ha, central_depression_mm) cranial→caudal. Returns (Volume, truth)."""
    sp = np.asarray(spacing, float)
    tot = sum(l[1] for l in levels) + disc * (len(levels) + 1)
    ext = np.array([W + 20, D + 50, tot + 10])
    n = np.ceil(ext / sp).astype(int) + 1
    R = _rot_x(tilt_deg)
    # canonical grid then reorient
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    aff[:3, 3] = -0.5 * (n - 1) * sp + np.random.default_rng(seed).uniform(-0.5, 0.5, 3) * sp
    ijk = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), -1).reshape(-1, 3)
    world = ijk * sp + aff[:3, 3]
    loc = world @ R            # world → local (rows of R^T)
    x, y, z = loc.T
    lab = np.zeros(len(loc), np.uint8)
    ztop = tot / 2 - disc
    truth = {}
    for label, hp, ha, dep in levels:
        zc = ztop - max(hp, ha) / 2
        u = np.clip((y + D / 2) / D, 0, 1)           # 0 posterior … 1 anterior
        h = hp + (ha - hp) * u
        r2 = (x / (W / 2)) ** 2 + (y / (D / 2)) ** 2
        bowl = dep * np.clip(1 - r2, 0, 1) ** 2
        zs = zc + h / 2 - bowl
        zi = zc - h / 2 + bowl
        body = (r2 <= 1) & (z <= zs) & (z >= zi)
        ring = np.zeros_like(body)
        if canal:
            zr = np.abs(z - zc) <= 0.35 * hp
            ped = (np.abs(x) >= 10) & (np.abs(x) <= 15) & (y >= -D / 2 - 12) & (y <= -D / 2 + 3)
            lam = (np.abs(x) <= 15) & (y >= -D / 2 - 16) & (y <= -D / 2 - 12)
            ring = zr & (ped | lam)
        lab[body | ring] = label
        f = np.array([0.1, 0.5, 0.9])
        yy = D / 2 - f * D
        uu = (yy + D / 2) / D
        hh = hp + (ha - hp) * uu - 2 * dep * np.clip(1 - (yy / (D / 2)) ** 2, 0, 1) ** 2
        truth[label] = {"ha": hh[0], "hm": hh[1], "hp": hh[2], "si": R @ np.array([0, 0, 1.0]),
                        "wedge_deg": np.degrees(np.arctan((hp - ha) / D))}
        ztop = zc - max(hp, ha) / 2 - disc
    vol = Volume(lab.reshape(tuple(n)), aff, is_label=True).reorient(axcodes)
    return vol, truth


@pytest.mark.parametrize("spacing,axcodes,tilt", [
    ((1.0, 1.0, 1.0), ("R", "A", "S"), 0.0),
    ((0.8, 0.8, 2.0), ("L", "P", "S"), 12.0),
    ((1.0, 3.0, 1.0), ("P", "I", "R"), -15.0),
])
def test_heights_frame_and_orientation(spacing, axcodes, tilt):
    vol, truth = make_spine([(20, 26.0, 26.0, 0.0), (21, 27.0, 19.0, 0.0), (22, 27.0, 27.0, 2.0)],
                            spacing=spacing, axcodes=axcodes, tilt_deg=tilt)
    for lid in (20, 21, 22):
        g = vertebral_body_geometry(vol, lid)
        t = truth[lid]
        h = g.measure_heights()
        tol = max(0.5, 0.5 * voxel_extent_along(vol.affine, g.frame.si)) + 0.35
        assert abs(h.anterior_mm - t["ha"]) <= tol, (lid, h.as_tuple(), t)
        assert abs(h.middle_mm - t["hm"]) <= tol, (lid, h.as_tuple(), t)
        assert abs(h.posterior_mm - t["hp"]) <= tol, (lid, h.as_tuple(), t)
        # SI axis: the body axis (normal to the mean endplate plane) within 3°
        ang = np.degrees(np.arccos(abs(g.frame.si @ t["si"])))
        assert ang < 3.0
        assert g.frame.si[2] > 0 and np.isclose(np.linalg.det(g.frame.rotation), 1.0)
        assert abs(g.depth_mm - 30.0) < 1.5
        assert g.source == "geometric" and "no_canal_found" not in g.flags
    w = vertebral_body_geometry(vol, 21).wedge_angle_deg()
    assert abs(w - truth[21]["wedge_deg"]) < 2.5


def test_body_isolation_excludes_the_arch():
    vol, _ = make_spine([(20, 25.0, 25.0, 0.0)], spacing=(1.0, 1.0, 1.0))
    g = vertebral_body_geometry(vol, 20)
    body = g.body_mask_volume()
    full = vol.data == 20
    assert body.data.sum() < full.sum()
    # every body voxel is anterior of the posterior wall
    pts = body.voxel_to_world(np.argwhere(body.data))
    assert (g.frame.to_local(pts)[:, 1] >= g.posterior_ap_mm - 1.5).all()


def test_subregions_are_used_when_given():
    vol, _ = make_spine([(20, 25.0, 25.0, 0.0)], canal=True)
    g0 = vertebral_body_geometry(vol, 20)
    sub = g0.body_mask_volume().data.astype(np.uint8)  # 1 = vertebral body
    sub[(vol.data == 20) & (sub == 0)] = 4
    g = vertebral_body_geometry(vol, 20, subregions=vol.with_data(sub))
    assert g.source == "subregions"
    assert abs(g.measure_heights().posterior_mm - g0.measure_heights().posterior_mm) < 0.3
    with pytest.raises(GridMismatchError):
        vertebral_body_geometry(vol, 20, subregions=np.zeros((3, 3, 3), np.uint8))


def test_missing_label_and_fov_cut():
    vol, _ = make_spine([(20, 25.0, 25.0, 0.0)])
    with pytest.raises(LabelError):
        vertebral_body_geometry(vol, 21)
    # cut the body by the field of view: heights of the cut end are not reported
    k = np.argwhere(vol.data == 20)[:, 2]
    cut = vol.crop((0, 0, int(k.min()) + 6), vol.shape)
    g = vertebral_body_geometry(cut, 20)
    assert "cut_by_fov" in g.flags
    assert g.measure_heights().posterior_mm is None
