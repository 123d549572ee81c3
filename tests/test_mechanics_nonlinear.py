"""Nonlinear pushover (secant damage, elastic–perfectly plastic): analytical block, strong inserts, yield index,
augmentation, JSON fields."""

from __future__ import annotations

import numpy as np
import pytest

from kyphosim.imaging.volume import Volume
from kyphosim.mechanics.materials import (MATERIAL_CODES, PMMA_YIELD_COMPRESSION_MPA, get_law, get_yield_law)
from kyphosim.mechanics.nonlinear import PushoverSettings, yield_index
from kyphosim.mechanics.strength import ModelInput, analyse_model, run_pushover

BONE, CINF, CSUP, CEM = (MATERIAL_CODES[k] for k in ("bone", "cap_inferior", "cap_superior", "cement"))
SY = 4.0          # bone compressive yield stress of the test blocks, MPa
EB = 500.0        # bone modulus, MPa


pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _block(shape=(6, 5, 10), insert=None) -> ModelInput:
    """Bone block between one-voxel PMMA cap layers; ``insert`` = slice tuple of PMMA cement (E 2500, 70 MPa)."""
    E = np.full(shape, EB)
    codes = np.full(shape, BONE, dtype=np.uint8)
    codes[:, :, 0], codes[:, :, -1] = CINF, CSUP
    E[:, :, [0, -1]] = 2500.0
    syc = np.full(shape, SY)
    syt = syc * 0.78 / 0.84
    syc[:, :, [0, -1]], syt[:, :, [0, -1]] = 70.0, 50.0
    if insert is not None:
        codes[insert], E[insert], syc[insert], syt[insert] = CEM, 2500.0, 70.0, 50.0
    info = {"bone": "block", "caps": "layers", "density": {"input": "test"}, "law": None,
            "mean_bone_density_mg_cm3": 0.0, "bone_voxels_nonpositive_density": 0}
    return ModelInput(Volume(codes, np.eye(4), is_label=True), np.zeros(shape), codes, E, info, [], syc, syt)


def test_yield_index_uniaxial_and_asymmetric():
    nu, E0 = 0.3, np.array([1000.0, 1000.0, 1000.0])
    eps = 1e-3
    uni_c = [nu * eps, nu * eps, -eps, 0, 0, 0]     # uniaxial compression, σ_zz = −1 MPa
    uni_t = [-nu * eps, -nu * eps, eps, 0, 0, 0]    # uniaxial tension, σ_zz = +1 MPa
    shear = [0, 0, 0, 0, 0, 2e-3]                   # pure shear γ_xy: principal ±G·γ = ±0.769 MPa
    f = yield_index(np.array([uni_c, uni_t, shear]), E0, nu, np.full(3, 2.0), np.full(3, 0.5))
    assert f[0] == pytest.approx(0.5)              # 1 MPa / σ_yc 2 MPa
    assert f[1] == pytest.approx(2.0)              # 1 MPa / σ_yt 0.5 MPa
    assert f[2] == pytest.approx(max(1000 / 2.6 * 2e-3 / 2.0, 1000 / 2.6 * 2e-3 / 0.5))
    assert yield_index(np.array([uni_c]), E0[:1], nu, np.array([np.inf]), np.array([np.inf]))[0] == 0.0


def test_yield_laws_paired_with_density_laws():
    rho = np.array([0.1, 0.2])
    k = get_yield_law("kopperdahl")
    E = get_law("kopperdahl").modulus_mpa(rho)
    assert np.allclose(k.compression_mpa(rho, E), 37.4 * rho ** 1.39)
    assert k.tension_ratio == pytest.approx(0.78 / 0.84)
    assert np.allclose(get_yield_law("kopperdahl-linear").compression_mpa(rho, E), -0.75 + 24.9 * rho)
    m = get_yield_law("morgan")
    assert np.allclose(m.compression_mpa(rho, E), 0.0077 * E)
    # negligible-modulus voxels never yield
    assert np.isinf(k.compression_mpa(np.array([0.0]), np.array([1e-4])))[0]


def test_homogeneous_block_fails_at_sigma_y_times_area():
    model = _block()
    r, mesh = run_pushover(model, PushoverSettings(increments=10, plateau_stop=False), threads=1)
    area = 6 * 5
    curve = np.array([[c["displacement_mm"], c["reaction_force_n"]] for c in r.curve])
    assert r.failure_load_n == pytest.approx(SY * area, rel=0.01)             # analytic σ_y·A
    assert r.failure_load_n <= SY * area * 1.002                             # never above the limit load
    # elastic before yield: the first increments follow the initial stiffness
    first = curve[1]
    assert first[1] == pytest.approx(r.initial_stiffness_n_per_mm * first[0], rel=1e-3)
    # the 0.2 % offset load of a perfectly plastic block is its limit load too
    assert r.yield_load_offset_n == pytest.approx(SY * area, rel=0.02)
    assert r.curve[-1]["yielded_bone_fraction"] > 0.9
    assert r.iterations_total >= r.increments and r.cg_iterations_total > 0


def test_strong_insert_spanning_the_block_raises_the_failure_load():
    plain = run_pushover(_block(), PushoverSettings(increments=8, plateau_stop=False), threads=1)[0]
    sl = (slice(2, 4), slice(2, 4), slice(1, 9))            # 2×2 column from cap to cap
    col, mesh = run_pushover(_block(insert=sl), PushoverSettings(increments=8, plateau_stop=False), threads=1)
    assert col.failure_load_n > 1.5 * plain.failure_load_n
    # parallel limit: bone at σ_y on its area + the elastic column (it does not reach its 70 MPa yield)
    h = col.loading_height_mm
    eps_col = col.max_displacement_mm / h
    expect = SY * (30 - 4) + min(PMMA_YIELD_COMPRESSION_MPA, 2500.0 * eps_col) * 4
    assert col.failure_load_n == pytest.approx(expect, rel=0.1)
    # an insert that does not reach the failing layers cannot lower the limit load (lower-bound theorem)
    mid = run_pushover(_block(insert=(slice(2, 4), slice(2, 4), slice(4, 6))),
                       PushoverSettings(increments=8, plateau_stop=False), threads=1)[0]
    assert mid.failure_load_n >= 0.99 * plain.failure_load_n


def test_analyse_model_reports_both_failure_loads():
    model = _block()
    r = analyse_model(model, displacement_mm=0.05, nonlinear=PushoverSettings(increments=6), keep_fields=True)
    assert r.failure_load_method == "nonlinear-pushover"
    assert r.failure_load_n == pytest.approx(r.nonlinear["failure_load_n"])
    assert np.isfinite(r.failure_load_linear_estimate_n) and r.failure_load_linear_estimate_n > 0
    d = r.to_dict()
    for key in ("failure_load_n", "failure_load_method", "failure_load_linear_estimate_n", "nonlinear"):
        assert key in d
    nl = d["nonlinear"]
    assert nl["same_grid_as_linear"] and nl["curve"][0]["reaction_force_n"] == 0.0
    assert {"displacement_mm", "reaction_force_n", "iterations", "equilibrium_residual", "converged"} <= set(nl["curve"][1])
    assert r.fields.secant_fraction is not None and r.fields.secant_fraction.min() < 1.0
    lin = analyse_model(model, displacement_mm=0.05, keep_fields=False)
    assert lin.failure_load_method == "linear-critical-volume" and lin.nonlinear is None
    assert lin.failure_load_n == pytest.approx(lin.failure_load_linear_estimate_n)
