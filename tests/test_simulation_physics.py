"""Unit tests of the session-2 physics: cement grades by Bingham number, the balloon wall's continuum
patch, breach leak spaces, and the shared output writer (small arrays / 1 mm block, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kyphosim.simulation import CEMENTS, DEFAULT_PARAMS
from kyphosim.simulation.balloon import _patch_average
from kyphosim.simulation.cement import _LEAK_CODES, _leak_spaces
from kyphosim.simulation.model import Tissue, build_model
from kyphosim.simulation.synthetic import make_block_spine


def test_cement_grades_ordered_by_consistency_and_bingham_number():
    low, med, high = CEMENTS["low"], CEMENTS["medium"], CEMENTS["high"]
    assert low.k_start_pa_sn < med.k_start_pa_sn < high.k_start_pa_sn
    # doughy cements are yield-dominated, liquid ones nearly Newtonian (docs/simulation.md §6)
    assert low.bingham_number < med.bingham_number < high.bingham_number
    # handling bounds: liquid runs off a spatula (< ~60 Pa), a dough holds a 2 cm bolus (> ~120 Pa)
    assert low.yield_stress_pa < 60.0 < 120.0 < high.yield_stress_pa
    assert med.k_start_pa_sn == pytest.approx(100.0)          # Boger 2008 regular cement


def test_patch_average_is_a_local_mean_and_leaves_voids_shell_and_walls_alone():
    # a flat 12 x 12 wall of trabecular candidates, one hard voxel in the middle
    loc = np.array([(i, j, 5) for i in range(12) for j in range(12)])
    res = np.full(len(loc), 100.0)
    hard = 6 * 12 + 6
    res[hard] = 1000.0
    tis = np.full(len(loc), int(Tissue.TRABECULAR), np.uint8)
    tis[0] = Tissue.CORTEX
    res[0] = 5000.0
    res[1] = 0.0                       # an opened gap: no resistance
    res[2] = np.inf                    # a snowplough layer that cannot be pushed
    out = _patch_average(res, loc, tis, (12, 12, 11), sigma_vox=1.5)
    assert 100.0 < out[hard] < 400.0                  # one hard voxel no longer sets the wall's pressure
    assert out[hard + 3] > 100.0                      # ... it stiffens its patch instead
    assert out[0] == 5000.0 and out[1] == 0.0 and np.isinf(out[2])
    far = [k for k, (i, j, _) in enumerate(loc) if abs(i - 6) + abs(j - 6) > 8 and k > 2]
    assert np.allclose(out[far], 100.0)
    # a uniform wall stays uniform whatever the patch
    flat = np.full(len(loc), 250.0)
    assert np.allclose(_patch_average(flat, loc, np.full(len(loc), int(Tissue.TRABECULAR), np.uint8),
                                      (12, 12, 11), 2.0), 250.0)


def test_patch_is_a_fixed_physical_size():
    assert DEFAULT_PARAMS.crush_patch_mm == pytest.approx(3.0)
    assert 0 < DEFAULT_PARAMS.inflation_wall_fraction <= 0.1


def test_cavity_breaching_the_endplate_opens_a_disc_leak_space():
    ct, lab, sub, truth = make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=1.0)
    m = build_model(ct, lab, 20, resolution_mm=1.0)
    base = _leak_spaces(m, DEFAULT_PARAMS)
    # a cavity column through the inferior endplate of the body, touching the disc below it
    disc = (m.tissue == Tissue.DISC) & ~m.vert
    body_idx = np.argwhere(m.body)
    i, j = np.round(body_idx[:, :2].mean(axis=0)).astype(int)
    kb = int(body_idx[(body_idx[:, 0] == i) & (body_idx[:, 1] == j), 2].min())
    assert disc[i, j, kb - 1]
    cav = np.zeros(m.shape, bool)
    cav[i - 1:i + 2, j - 1:j + 2, kb:kb + 6] = True
    lm = _leak_spaces(m, DEFAULT_PARAMS, cav)
    assert lm[i, j, kb - 1] == _LEAK_CODES["D"]
    assert (lm == _LEAK_CODES["D"]).sum() > (base == _LEAK_CODES["D"]).sum()


def test_output_writer_shared_by_cli_and_pathway(tmp_path):
    from kyphosim.simulation import simulate
    from kyphosim.simulation.outputs import write_simulation_outputs

    ct, lab, sub, truth = make_block_spine(wedge_mm=6.0, bmd_mg_cm3=80.0, spacing_mm=1.0)
    peds = truth["levels"][20]["pedicles"]
    plan = {"levels": [{"level": "L1", "trajectories": [{"side": s, **peds[s]} for s in ("left", "right")]}]}
    r = simulate(ct, lab, "L1", plan=plan, technique="vertebroplasty", resolution_mm=1.0, cement_volume_ml=1.0)
    paths = write_simulation_outputs(r, ct, tmp_path / "x", figures=False, prefix="vp_")
    assert paths["simulation"].name == "vp_simulation.json" and paths["figures"] == []
    assert json.loads(paths["simulation"].read_text())["technique"] == "vertebroplasty"
    assert paths["cavity"].exists() and paths["cement"].exists()
    assert r.parameters["cement_grade"]["bingham_number"] == pytest.approx(CEMENTS["medium"].bingham_number)
