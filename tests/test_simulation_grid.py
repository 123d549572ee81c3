"""Grid independence of the vertebra model: sub-voxel endplate surfaces, the depressed-side test and
the fracture line / band placed by physical distance (issue 5: 0.5 → 0.35 mm refinement)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from kyphosim.simulation import BALLOONS, DEFAULT_PARAMS
from kyphosim.simulation.access import make_access

from kyphosim.simulation.geometry import column_surfaces, subvoxel_surfaces
from kyphosim.simulation.model import Tissue, _depressed_side, build_model


def _slab(h: float, top_mm, bot_mm, nk_mm: float = 40.0):
    """Partial-volume occupancy of columns filled between bot_mm(i, j) and top_mm(i, j) (k = 0 at
    z = 0 mm, voxel k spans [k − ½, k + ½]·h), its nearest-neighbour mask, surfaces in index units."""
    nk = int(round(nk_mm / h))
    z = np.arange(nk) * h
    lo = z[None, None, :] - 0.5 * h
    hi = z[None, None, :] + 0.5 * h
    frac = np.clip((np.minimum(hi, top_mm[:, :, None]) - np.maximum(lo, bot_mm[:, :, None])) / h, 0.0, 1.0)
    mask = frac >= 0.5
    return frac, mask


def _surfaces_mm(h: float, kind: str):
    """A 30 × 30 mm body, 25 mm tall, with a wedge (planar tilt of the top) or a 3 mm bowl in the
    bottom endplate, sampled at spacing h: (top, bot, has, zt, zb) in index units."""
    n = int(round(30.0 / h))
    x = (np.arange(n) + 0.5) * h
    X, Y = np.meshgrid(x, x, indexing="ij")
    top = 30.0 - 0.2 * Y + 0.05 * X + 0.013          # odd offsets: rows cut the surface at any phase
    bot = 5.0 + 0.021 * Y + 0.0 * X + 0.007
    if kind == "bowl":
        r2 = ((X - 15.0) ** 2 + (Y - 15.0) ** 2) / 10.0 ** 2
        bot = bot + 3.0 * np.clip(1.0 - r2, 0.0, None)
    frac, mask = _slab(h, top, bot)
    t, b, has = column_surfaces(mask)
    zt, zb = subvoxel_surfaces(frac, t, b, has)
    return t, b, has, zt, zb, top / h, bot / h


@pytest.mark.parametrize("h", [0.5, 0.35])
def test_subvoxel_surfaces_recover_the_true_boundary(h):
    t, b, has, zt, zb, true_t, true_b = _surfaces_mm(h, "bowl")
    assert np.nanmax(np.abs(zt - true_t)[has]) * h < 0.02
    assert np.nanmax(np.abs(zb - true_b)[has]) * h < 0.02
    # the voxel face (staircase) is off by up to h/2, which is what the side test used to read
    assert np.max(np.abs(t + 0.5 - true_t)[has]) * h > 0.2 * h


def test_side_test_is_grid_independent():
    ev = {}
    for h in (0.5, 0.35):
        for kind in ("wedge", "bowl"):
            t, b, has, zt, zb, _, _ = _surfaces_mm(h, kind)
            body = np.zeros(has.shape + (2,), bool)
            side, flip, e = _depressed_side(t, b, has, body, h, zt, zb, label_step_mm=1.0)
            ev[(h, kind)] = (side, flip, e)
    # a planar wedge: superior on both grids (tie rule); a 3 mm bowl in the bottom: inferior on both
    assert ev[(0.5, "wedge")][0] == ev[(0.35, "wedge")][0] == "superior"
    assert ev[(0.5, "bowl")][:2] == ev[(0.35, "bowl")][:2] == ("inferior", True)
    for kind in ("wedge", "bowl"):
        a, c = ev[(0.5, kind)][2], ev[(0.35, kind)][2]
        for key in ("residual_superior_mm", "residual_inferior_mm"):
            assert abs(a[key] - c[key]) < 0.03, (kind, key, a[key], c[key])
    # a residual gap below the label quantisation is not evidence: superior
    t, b, has, zt, zb, _, _ = _surfaces_mm(0.5, "bowl")
    body = np.zeros(has.shape + (2,), bool)
    gap = ev[(0.5, "bowl")][2]["residual_inferior_mm"] - ev[(0.5, "bowl")][2]["residual_superior_mm"]
    assert _depressed_side(t, b, has, body, 0.5, zt, zb, label_step_mm=4.0 * gap + 0.1)[0] == "superior"


@pytest.fixture(scope="module")
def models(wedge_block):
    ct, lab, sub, truth = wedge_block
    return {h: build_model(ct, lab, 20, resolution_mm=h, subregions=sub) for h in (0.5, 0.35)}


def test_target_on_the_endplate_moves_back_by_the_same_physical_amount_on_both_grids(wedge_block, models):
    ct, lab, sub, truth = wedge_block
    ped = truth["levels"][20]["pedicles"]["right"]
    # a target on the depressed superior surface of the block's wedge (y = 10.25 mm: z = 8.3 mm)
    tr = [{"side": "right", "entry_mm": ped["entry_mm"], "target_mm": [5.0, 10.25, 8.3]}]
    got = {}
    for h, m0 in models.items():
        m = copy.deepcopy(m0)
        acc = make_access(m, tr, "kyphoplasty", balloon_length_mm=15, params=DEFAULT_PARAMS)[0]
        got[h] = np.asarray(acc.target_mm, float)
        need = 0.5 * BALLOONS[15].deflated_diameter_mm + DEFAULT_PARAMS.cortical_shell_mm
        assert m.clearance_mm(got[h])[0] >= need - 1e-6
        assert np.linalg.norm(got[h] - np.array([5.0, 10.25, 8.3])) > 1.0      # it did move back
    assert np.linalg.norm(got[0.5] - got[0.35]) < 0.1


def test_fracture_line_and_band_at_the_same_physical_depth_on_both_grids(wedge_block, models):
    ct, lab, sub, truth = wedge_block
    depth = {}
    for h in (0.5, 0.35):
        m = models[h]
        assert m.fracture.side == "superior"
        f = m.fracture
        # the sub-voxel top surface of the body on this grid, from the label's partial volume
        from kyphosim.imaging.volume import Volume
        occ = Volume((lab.data == 20).astype(np.float32), lab.affine).resample(like=m.template(), order=1,
                                                                               cval=0.0).data
        top, bot, has = column_surfaces(m.body)
        zt, _ = subvoxel_surfaces(occ, top, bot, has)
        cols = f.footprint & has
        line = (zt[cols] - (f.kf[cols] + 0.5)) * h                  # fracture line below the surface, mm
        band = (m.tissue == Tissue.FRACTURE)
        ii, jj, kk = np.nonzero(band)
        bd = (zt[ii, jj] - kk) * h                                   # band voxel centres below it, mm
        depth[h] = (float(np.mean(line)), float(np.mean(bd)), float(bd.max() - bd.min()))
    for h in (0.5, 0.35):
        assert depth[h][0] == pytest.approx(3.0, abs=0.1)            # fragment_thickness_mm
    assert abs(depth[0.5][0] - depth[0.35][0]) < 0.1
    assert abs(depth[0.5][1] - depth[0.35][1]) < 0.1                 # band centre (≈ 3 + 1 mm)
    assert depth[0.5][1] == pytest.approx(4.0, abs=0.15)


def test_balloon_holds_at_the_pressure_limit_and_keeps_growing_where_bone_yields(wedge_block):
    """A low device limit (150 psi): with ``hold_at_pressure_limit`` the balloon keeps taking wall
    voxels that yield below the limit, never reports more than the limit, and ends at least as big
    as when it stops at the first step over the limit."""
    import dataclasses

    from kyphosim.simulation.balloon import inflate
    from kyphosim.simulation.lift import make_lift

    ct, lab, sub, truth = wedge_block
    dev = dataclasses.replace(BALLOONS[15], max_pressure_kpa=150 * 6.894757)
    trs = [{"side": s, **truth["levels"][20]["pedicles"][s]} for s in ("left", "right")]
    vols = {}
    for hold in (False, True):
        p = DEFAULT_PARAMS.with_(hold_at_pressure_limit=hold)
        m = build_model(ct, lab, 20, resolution_mm=1.0)
        acc = make_access(m, trs, "kyphoplasty", balloon_length_mm=15, params=p)
        res = inflate(m, acc, [dev] * 2, make_lift(m, p), p)
        assert res.mass_error_pct < 1.0
        for b in res.balloons:
            assert max(q for _, q in b.pv_curve) <= dev.max_pressure_kpa + 1e-6
        vols[hold] = sum(b.volume_ml for b in res.balloons)
        if hold:
            assert all(b.stop_reason in ("device pressure limit", "height restored", "device volume limit",
                                         "balloon touches the cortical wall", "no bone can yield (enclosed)")
                       for b in res.balloons)
    assert vols[True] > vols[False]          # it kept growing at the limit (0.35 → 0.38 mL here)
