"""Voxel finite elements: element, analytical block, patch test, refinement, solvers, calibration, API, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kyphosim.errors import InputError, LabelError
from kyphosim.imaging.volume import Volume
from kyphosim.mechanics import (GENERIC, FailureCriterion, compare_augmentation, compute_strength, get_law,
                                load_calibration)
from kyphosim.mechanics.element import hex8_centroid_strain_matrix, hex8_stiffness
from kyphosim.mechanics.materials import MATERIAL_CODES, NEGLIGIBLE_MODULUS_MPA
from kyphosim.mechanics.mesh import auto_caps, build_mesh, largest_component
from kyphosim.mechanics.strength import ModelInput, analyse_model

BONE, CINF, CSUP, CEM = (MATERIAL_CODES[k] for k in ("bone", "cap_inferior", "cap_superior", "cement"))


pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _block_model(E: np.ndarray, spacing=(1.0, 1.0, 1.0), caps_E: float | None = None) -> ModelInput:
    """A box whose bottom/top voxel layers are the caps (same modulus unless caps_E)."""
    codes = np.full(E.shape, BONE, dtype=np.uint8)
    codes[:, :, 0] = CINF
    codes[:, :, -1] = CSUP
    E = E.astype(float).copy()
    if caps_E is not None:
        E[:, :, 0] = E[:, :, -1] = caps_E
    aff = np.diag([*spacing, 1.0])
    grid = Volume(codes, aff, is_label=True)
    info = {"bone": "block", "caps": "layers", "density": {"input": "test"}, "law": None,
            "mean_bone_density_mg_cm3": 0.0, "bone_voxels_nonpositive_density": 0}
    return ModelInput(grid, np.zeros(E.shape), codes, E, info, [])


# ----------------------------------------------------------------------------------- element
def test_element_matrix_symmetric_with_six_rigid_modes():
    K = hex8_stiffness((1.0, 1.3, 0.7), 0.3)
    assert np.allclose(K, K.T)
    w = np.linalg.eigvalsh(K)
    assert np.sum(np.abs(w) < 1e-10 * w.max()) == 6
    assert w[6] > 1e-3 * w.max()


def test_element_uniaxial_energy_matches_continuum():
    # u_z = eps·z with free lateral contraction: energy = ½ E eps² V
    sp = np.array([1.0, 2.0, 0.5])
    nu, eps = 0.3, 1e-3
    K = hex8_stiffness(sp, nu)
    corners = np.array([[a & 1, (a >> 1) & 1, (a >> 2) & 1] for a in range(8)]) * sp
    u = np.zeros((8, 3))
    u[:, 0] = -nu * eps * corners[:, 0]
    u[:, 1] = -nu * eps * corners[:, 1]
    u[:, 2] = eps * corners[:, 2]
    energy = 0.5 * u.ravel() @ K @ u.ravel()
    assert energy == pytest.approx(0.5 * eps ** 2 * np.prod(sp), rel=1e-10)
    strain = hex8_centroid_strain_matrix(sp) @ u.ravel()
    assert np.allclose(strain, [-nu * eps, -nu * eps, eps, 0, 0, 0])


# ----------------------------------------------------------------------------------- analytical block
@pytest.mark.parametrize("solver,shape", [("gmg", (7, 6, 9)), ("amg", (7, 6, 9)), ("jacobi", (3, 4, 5))])
def test_homogeneous_block_stiffness_is_EA_over_L(solver, shape):
    sp, E0 = (1.0, 1.5, 0.8), 850.0
    model = _block_model(np.full(shape, E0), sp)
    r = analyse_model(model, displacement_mm=0.05, solver=solver, tol=1e-10)
    A = shape[0] * sp[0] * shape[1] * sp[1]
    L = shape[2] * sp[2]
    assert r.solver["relative_residual"] <= 1e-10
    assert r.stiffness_n_per_mm == pytest.approx(E0 * A / L, rel=1e-3)  # target within 1 %
    assert r.loading["equilibrium_error"] < 1e-6


def test_patch_test_uniform_strain_field():
    shape, sp, E0, d = (5, 4, 6), (1.0, 1.0, 1.0), 500.0, 0.06
    r = analyse_model(_block_model(np.full(shape, E0), sp), displacement_mm=d, tol=1e-12)
    s = r.fields.strain
    L = shape[2] * sp[2]
    assert np.allclose(s[:, 2], -d / L, rtol=1e-6)
    assert np.allclose(s[:, 0], 0.3 * d / L, rtol=1e-5)
    assert np.allclose(s[:, 1], 0.3 * d / L, rtol=1e-5)
    assert np.abs(s[:, 3:]).max() < 1e-8
    # nodal displacements are exactly linear
    u = r.fields.displacement_mm
    z = r.fields.mesh.node_ijk[:, 2] * sp[2]
    assert np.allclose(u[:, 2], -d * z / L, atol=1e-9)


def _inclusion_stiffness(n: int) -> float:
    """Block 4n×4n×6n with a stiff central cube (2n)³ and caps of n layers; element size 1/n mm."""
    E = np.full((4 * n, 4 * n, 6 * n), 100.0)
    E[n:3 * n, n:3 * n, 2 * n:4 * n] = 1000.0
    codes = np.full(E.shape, BONE, dtype=np.uint8)
    codes[:, :, :n] = CINF
    codes[:, :, -n:] = CSUP
    sp = 1.0 / n
    info = {"bone": "inclusion", "caps": "layers", "density": {"input": "test"}, "law": None,
            "mean_bone_density_mg_cm3": 0.0, "bone_voxels_nonpositive_density": 0}
    model = ModelInput(Volume(codes, np.diag([sp, sp, sp, 1.0]), is_label=True), np.zeros(E.shape), codes, E, info, [])
    return analyse_model(model, displacement_mm=0.01, tol=1e-10, keep_fields=False).stiffness_n_per_mm


def test_convergence_under_refinement():
    k = [_inclusion_stiffness(n) for n in (1, 2, 4)]
    d1, d2 = abs(k[0] - k[1]), abs(k[1] - k[2])
    assert d2 < 0.6 * d1          # the differences shrink
    assert k[0] > k[1] > k[2]     # displacement FE converges from above (stiff)
    # bounds: between the Reuss (series) and Voigt (parallel) estimates of the layered block
    A, L = 16.0, 6.0
    voigt_mid = (100 * 12 + 1000 * 4) / 16
    k_upper = 1 / (2 / (100 * A) + 2 / (voigt_mid * A) + 2 / (100 * A))
    assert k[2] < k_upper
    assert k[2] > 100 * A / L


def test_tighter_tolerance_changes_result_less_than_half_percent():
    rng = np.random.default_rng(3)
    E = np.exp(rng.normal(np.log(300), 0.8, size=(10, 9, 12)))
    E[rng.random(E.shape) < 0.05] = NEGLIGIBLE_MODULUS_MPA
    m = _block_model(E, caps_E=2500.0)
    r1 = analyse_model(m, tol=1e-6, keep_fields=False)
    r2 = analyse_model(m, tol=1e-10, keep_fields=False)
    assert r1.solver["relative_residual"] <= 1e-6
    assert abs(r1.stiffness_n_per_mm - r2.stiffness_n_per_mm) / r2.stiffness_n_per_mm < 0.005
    r3 = analyse_model(m, tol=1e-10, solver="amg", keep_fields=False)
    assert r3.stiffness_n_per_mm == pytest.approx(r2.stiffness_n_per_mm, rel=1e-6)


# ----------------------------------------------------------------------------------- mesh
def test_largest_component_and_hinges_are_dropped():
    m = np.zeros((6, 6, 6), bool)
    m[0:3, 0:3, 0:3] = True
    m[3, 3, 3] = True          # corner contact only → separate component
    m[5, 5, 5] = True
    keep = largest_component(m)
    assert keep.sum() == 27
    E = np.where(m, 10.0, 0.0)
    mesh = build_mesh(E, m.astype(np.uint8), (1, 1, 1))
    assert mesh.n_elements == 27 and mesh.n_nodes == 64


def test_build_mesh_rejects_empty_and_non_positive():
    with pytest.raises(InputError):
        build_mesh(np.zeros((3, 3, 3)), np.zeros((3, 3, 3), np.uint8), (1, 1, 1))
    with pytest.raises(InputError):
        build_mesh(np.zeros((3, 3, 3)), np.ones((3, 3, 3), np.uint8), (1, 1, 1))


def _toy_vertebra(spacing=1.5):
    """Body cylinder (r 9 mm, 15 mm tall) + posterior arch; two vertebrae (L1 above L2), CT in HU."""
    n = (30, 30, 44)
    x, y, z = np.meshgrid(*[np.arange(s) * spacing for s in n], indexing="ij")
    ct = np.full(n, -900.0, dtype=np.float32)
    lab = np.zeros(n, dtype=np.uint8)
    cx, cy = 22.0, 26.0
    for vid, z0 in ((21, 6.0), (20, 33.0)):
        body = ((x - cx) ** 2 + (y - cy) ** 2 <= 9.0 ** 2) & (z >= z0) & (z < z0 + 15)
        ring = (np.abs(np.hypot(x - cx, y - cy - 16.0) - 5.0) < 2.0) & (y > cy + 8) & (z >= z0 + 3) & (z < z0 + 11)
        lab[body | ring] = vid
        ct[body] = 180.0
        ct[ring] = 400.0
    aff = np.diag([spacing, spacing, spacing, 1.0])
    return Volume(ct, aff, meta={"units": "HU"}), Volume(lab, aff, is_label=True)


def test_auto_caps_are_flat_and_cover_only_the_body():
    ct, lab = _toy_vertebra()
    bone = np.pad(lab.data == 20, ((0, 0), (0, 0), (0, 6)))
    inf, sup, (kb, kt) = auto_caps(bone, thickness_vox=2, spacing=(1.5, 1.5, 1.5))
    assert sup.any() and inf.any()
    assert not (sup & bone).any() and not (inf & bone).any()
    assert sup[:, :, kt].sum() == sup.any(axis=2).sum()  # flat top plane over the whole cap
    # the arch (posterior ring, large y) carries no cap
    foot = sup.any(axis=2)
    j = np.nonzero(foot.any(axis=0))[0]
    assert j.max() * 1.5 < 26.0 + 9.0 + 1.5


def test_body_axis_recovers_a_tilted_vertebra():
    from kyphosim.mechanics.strength import body_axis

    sp = 1.0
    n = (50, 60, 60)
    x, y, z = np.meshgrid(*[np.arange(s) * sp for s in n], indexing="ij")
    tilt = np.radians(15.0)
    c = np.array([25.0, 28.0, 30.0])
    # body axis tilted by 15° towards +y (anterior) in the y–z plane
    ax = np.array([0.0, np.sin(tilt), np.cos(tilt)])
    d = np.stack([x - c[0], y - c[1], z - c[2]], axis=-1)
    h = d @ ax
    radial = np.linalg.norm(d - h[..., None] * ax, axis=-1)
    bone = (np.abs(h) <= 12.0) & (radial <= 16.0)
    arch = (np.abs(h) <= 5.0) & (np.abs(d[..., 0]) <= 4.0) & (d[..., 1] < -16.0) & (d[..., 1] > -26.0)
    got = body_axis(bone | arch, np.diag([sp, sp, sp, 1.0]))
    assert np.degrees(np.arccos(np.clip(got @ ax, -1, 1))) < 3.0


# ----------------------------------------------------------------------------------- materials/calibration
def test_laws_and_negligible_modulus():
    k = get_law("kopperdahl")
    assert k.modulus_mpa(np.array([0.15]))[0] == pytest.approx(2980 * 0.15 ** 1.05)
    assert get_law("morgan").modulus_mpa(np.array([0.2]))[0] == pytest.approx(4730 * 0.2 ** 1.56)
    assert get_law("kopperdahl-linear").modulus_mpa(np.array([0.1]))[0] == pytest.approx(-34.7 + 323.0)
    E = k.modulus_mpa(np.array([0.0, -0.05]))
    assert np.all(E == NEGLIGIBLE_MODULUS_MPA)
    assert get_law("kopperdahl-linear").modulus_mpa(np.array([0.005]))[0] == NEGLIGIBLE_MODULUS_MPA
    with pytest.raises(InputError):
        get_law("nope")


def test_calibration_files(tmp_path):
    (tmp_path / "lin.json").write_text(json.dumps({"slope": 0.8, "intercept": -5}))
    c = load_calibration(tmp_path / "lin.json")
    assert c.density_mg_cm3(100.0) == pytest.approx(75.0)
    (tmp_path / "q.txt").write_text("1.0 0.7 0.0001\n")
    assert load_calibration(tmp_path / "q.txt").density_mg_cm3(100.0) == pytest.approx(1 + 70 + 1)
    (tmp_path / "bad.txt").write_text("hello")
    with pytest.raises(InputError):
        load_calibration(tmp_path / "bad.txt")
    with pytest.raises(InputError):
        load_calibration(tmp_path / "missing.txt")
    # generic default is monotone and reasonable for trabecular bone
    d = GENERIC.density_mg_cm3(np.array([0.0, 150.0, 300.0]))
    assert np.all(np.diff(d) > 0) and 50 < d[1] < 200


def test_spinefe_calibration_file(shared_data):
    c = load_calibration(shared_data / "spinefe_verse004_L2" / "sub-verse004_0000_calibration.txt")
    assert c.kind == "two-component"
    assert c.coefficients["mu_k2hpo4"] == pytest.approx(0.205)
    assert c.density_mg_cm3(0.0) == pytest.approx(1000 * 0.968731 * (0.17124 - 0.170) / 0.035, rel=1e-6)


# ----------------------------------------------------------------------------------- API on HU
def test_hu_level_with_auto_caps_and_cement_augmentation():
    ct, lab = _toy_vertebra()
    # cement column from endplate to endplate (bonded): carries load in parallel with the bone
    x, y, z = np.meshgrid(*[np.arange(s) * 1.5 for s in ct.shape], indexing="ij")
    core = ((x - 22) ** 2 + (y - 26) ** 2 <= 25) & (z >= 33) & (z < 48)
    cem = Volume(core.astype(np.uint8), ct.affine, is_label=True)
    from kyphosim.mechanics.nonlinear import PushoverSettings

    comp = compare_augmentation(ct, lab, cem, level="L1", density="hu", intact_level="L2", keep_fields=False,
                                pushover_settings=PushoverSettings(increments=5))
    assert set(comp.states) == {"intact", "fractured", "augmented"}
    r = comp.states["fractured"]
    assert r.schema == "kyphosim.strength/1"
    assert r.stiffness_n_per_mm > 0 and np.isfinite(r.failure_load_n) and r.failure_load_n > 0
    assert r.model["caps"].startswith("auto")
    assert any("generic" in w for w in r.warnings)
    assert comp.states["intact"].model["bone"] == "L2"
    assert comp.states["augmented"].model["cement_volume_ml"] > 0
    assert comp.changes["augmented_vs_fractured"]["stiffness_percent"] > 5.0
    assert comp.changes["augmented_vs_fractured"]["failure_load_percent"] > 0.0
    # the failure load comes from the nonlinear pushover; the linear estimate is kept beside it
    for st in comp.states.values():
        assert st.failure_load_method == "nonlinear-pushover"
        assert st.failure_load_linear_estimate_n > 0 and st.nonlinear["increments"] >= 1
    # a cement column that bridges the endplates carries load in parallel: the pushover load rises clearly
    assert comp.states["augmented"].failure_load_n > 1.05 * comp.states["fractured"].failure_load_n


def test_api_errors():
    ct, lab = _toy_vertebra()
    with pytest.raises(LabelError):
        compute_strength(ct, lab, density="hu")          # two levels, none chosen
    with pytest.raises(LabelError):
        compute_strength(ct, lab, level="T4", density="hu")
    with pytest.raises(InputError):
        compute_strength(ct, lab, level="L1", density="weird")


def test_failure_criterion_scales_with_critical_fraction():
    from kyphosim.mechanics.failure import failure_load

    rng = np.random.default_rng(5)
    E = np.exp(rng.normal(np.log(300), 0.5, size=(8, 8, 10)))
    r = analyse_model(_block_model(E, caps_E=2500.0), tol=1e-8)
    bone = r.fields.mesh.material == BONE
    strain = r.fields.strain[bone]
    vol = np.ones(int(bone.sum()))
    lo = failure_load(r.reaction_force_n, strain, vol, FailureCriterion(critical_volume_fraction=0.01))[0]
    hi = failure_load(r.reaction_force_n, strain, vol, FailureCriterion(critical_volume_fraction=0.10))[0]
    weak = failure_load(r.reaction_force_n, strain, vol, FailureCriterion(yield_strain_compression=0.004,
                                                                          yield_strain_tension=0.004))[0]
    assert lo < hi
    assert weak < r.failure_load_n
    # λ* is the load factor at which 2 % of the bone volume has yielded: check it directly
    lam = r.failure_load_factor
    p = np.linalg.eigvalsh(np.stack([[[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2],
                                      [e[4] / 2, e[3] / 2, e[2]]] for e in strain]))
    yielded = (lam * -p[:, 0] >= 0.0084 * (1 - 1e-9)) | (lam * p[:, 2] >= 0.0078 * (1 - 1e-9))
    assert yielded.mean() == pytest.approx(0.02, abs=1.5 / bone.sum())


# ----------------------------------------------------------------------------------- CLI
def test_cli_strength_writes_json_and_maps(tmp_path, cli, capsys):
    from kyphosim.imaging.io import save_volume

    ct, lab = _toy_vertebra()
    save_volume(ct, tmp_path / "ct.nii.gz")
    save_volume(lab, tmp_path / "lab.nii.gz")
    code, out, err = cli(["strength", tmp_path / "ct.nii.gz", "--labels", tmp_path / "lab.nii.gz", "--level", "L1",
                          "--density", "hu", "--increments", "4", "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "o" / "strength.json").read_text())
    for key in ("schema", "stiffness_n_per_mm", "reaction_force_n", "applied_displacement_mm", "failure_load_n",
                "material_law", "elements", "dofs", "solver", "seconds"):
        assert key in data
    assert data["schema"] == "kyphosim.strength/1"
    assert set(data["solver"]) >= {"name", "iterations", "relative_residual"}
    assert set(data["seconds"]) >= {"assembly", "solve"}
    assert (tmp_path / "o" / "sed_mpa.nii.gz").exists() and (tmp_path / "o" / "strength_maps.png").exists()
    assert data["failure_load_method"] == "nonlinear-pushover" and data["failure_load_linear_estimate_n"] > 0
    assert data["nonlinear"]["increments"] == 4 and len(data["nonlinear"]["curve"]) == 5
    assert (tmp_path / "o" / "damage.nii.gz").exists()
    assert "nonlinear pushover" in out
    code, out, err = cli(["strength", tmp_path / "ct.nii.gz", "--labels", tmp_path / "lab.nii.gz",
                          "--density", "hu", "--out", tmp_path / "o2"], capsys)
    assert code == 2 and "error" in err
    # augmented + intact reference, density detected from the air in the image
    x, y, z = np.meshgrid(*[np.arange(s) * 1.5 for s in ct.shape], indexing="ij")
    core = ((x - 22) ** 2 + (y - 26) ** 2 <= 25) & (z >= 33) & (z < 48)
    save_volume(Volume(core.astype(np.uint8), ct.affine, is_label=True), tmp_path / "cement.nii.gz")
    code, out, err = cli(["strength", tmp_path / "ct.nii.gz", "--labels", tmp_path / "lab.nii.gz", "--level", "L1",
                          "--cement", tmp_path / "cement.nii.gz", "--intact-level", "L2", "--no-maps",
                          "--linear-only", "--out", tmp_path / "o3"], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "o3" / "strength.json").read_text())
    assert data["density"]["input"] == "hu"
    comp = data["comparison"]
    assert set(comp["states"]) == {"intact", "fractured", "augmented"}
    assert comp["changes"]["augmented_vs_fractured"]["stiffness_percent"] > 0
    assert data["failure_load_method"] == "linear-critical-volume" and data["nonlinear"] is None
    assert "augmented vs fractured" in out
    code, out, err = cli(["strength", tmp_path / "ct.nii.gz", "--labels", tmp_path / "lab.nii.gz", "--level", "L1",
                          "--nonlinear-resample-mm", "fine", "--out", tmp_path / "o4"], capsys)
    assert code == 2 and "nonlinear-resample-mm" in err
