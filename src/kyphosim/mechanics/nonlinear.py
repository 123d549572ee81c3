"""Nonlinear failure load: displacement-controlled pushover with a secant-damage (elastic–perfectly-plastic
under monotonic loading) material per element.

Material (per element e, centre-point strain ε, isotropic, Poisson's ratio ν):

    trial stress     σ̂ = E0_e · D(ν) · ε                         (undamaged, MPa)
    yield index      f_e = max( −σ̂_3 / σ_yc,e ,  σ̂_1 / σ_yt,e )   (principal stresses σ̂_1 ≥ σ̂_2 ≥ σ̂_3)
    secant fraction  s_e = min( s_e(previous increments), max(1/f_e, s_min) )  when f_e > 1, else unchanged
    element stiffness s_e · E0_e · K0

so an element that reaches its compressive (or tensile) yield stress carries that stress and no more
(stress = s·σ̂ has f = 1): elastic–perfectly-plastic for monotonic proportional loading, with secant
unloading (a damage model; no healing: s never increases). ``s_min`` (1e-3) keeps the operator
positive definite.

Pushover: the top face of the superior cap moves by δ_n = n/N · δ_max (n = 1 … N), the bottom face is
fixed axially (same boundary conditions as the linear analysis). Per increment a secant (fixed-point)
iteration: solve K(s) u = 0 with the prescribed displacements (preconditioned CG, warm-started from the
previous increment's field scaled by δ_n/δ_{n−1}), update s from the new strains, until the out-of-balance
force ‖R_free‖ ≤ tol_eq · ‖F_constrained‖ and the reaction changes by less than tol_F. The failure load is
the peak reaction force over the curve; the 0.2 % offset yield load is reported beside it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numba as nb
import numpy as np

from kyphosim.mechanics import solver as fe
from kyphosim.mechanics.element import elasticity_matrix, hex8_centroid_strain_matrix
from kyphosim.mechanics.mesh import VoxelMesh

__all__ = ["PushoverSettings", "PushoverResult", "pushover", "yield_index"]


@dataclass(frozen=True)
class PushoverSettings:
    """Parameters of the pushover (displacements in mm, strains in mm/mm).

    ``max_apparent_strain`` × the distance between the two loading faces gives δ_max unless
    ``max_displacement_mm`` is set (spineFE-style 2 mm).
    """

    max_apparent_strain: float = 0.02
    max_displacement_mm: float | None = None
    increments: int = 10
    max_iterations: int = 40
    equilibrium_tol: float = 1e-2
    reaction_tol: float = 1e-3
    linear_tol: float = 0.1
    min_secant_fraction: float = 1e-3
    anderson: int = 4
    inner_max_cg: int = 3
    offset_strain: float = 0.002
    stop_after_peak_drop: float = 0.05
    plateau_stop: bool = True
    plateau_slope: float = 0.002

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PushoverResult:
    """Force–displacement curve and the failure load of a pushover (forces in N, displacements in mm)."""

    failure_load_n: float
    displacement_at_peak_mm: float
    yield_load_offset_n: float
    initial_stiffness_n_per_mm: float
    loading_height_mm: float
    max_displacement_mm: float
    curve: list[dict[str, Any]]
    increments: int
    iterations_total: int
    cg_iterations_total: int
    preconditioner_builds: int
    all_converged: bool
    stopped: str
    seconds: float
    cpu_seconds: float
    settings: dict[str, Any]
    secant_fraction: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "secant_fraction"}
        return d


@nb.njit(parallel=True, cache=True)
def _yield_index_kernel(strain, E0, D, syc, syt, out):
    """Per element: trial stress E0·D·ε, its extreme principal values (closed form, trigonometric), index."""
    for e in nb.prange(strain.shape[0]):
        s = np.empty(6)
        for i in range(6):
            acc = 0.0
            for j in range(6):
                acc += D[i, j] * strain[e, j]
            s[i] = E0[e] * acc
        a, b, c, d, f, g = s[0], s[1], s[2], s[3], s[4], s[5]  # xx yy zz yz xz xy
        p1 = d * d + f * f + g * g
        q = (a + b + c) / 3.0
        if p1 <= 1e-30 * (a * a + b * b + c * c + 1e-300):
            hi = max(a, max(b, c))
            lo = min(a, min(b, c))
        else:
            p2 = (a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2.0 * p1
            p = np.sqrt(p2 / 6.0)
            b11, b22, b33 = (a - q) / p, (b - q) / p, (c - q) / p
            b12, b13, b23 = g / p, f / p, d / p
            detb = (b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13)
                    + b13 * (b12 * b23 - b22 * b13))
            r = min(1.0, max(-1.0, detb / 2.0))
            phi = np.arccos(r) / 3.0
            hi = q + 2.0 * p * np.cos(phi)
            lo = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
        fc = max(-lo, 0.0) / syc[e] if np.isfinite(syc[e]) else 0.0
        ft = max(hi, 0.0) / syt[e] if np.isfinite(syt[e]) else 0.0
        out[e] = max(fc, ft)


def yield_index(strain: np.ndarray, E0: np.ndarray, nu: float, sigma_yc: np.ndarray,
                sigma_yt: np.ndarray) -> np.ndarray:
    """f = max(−σ̂_3/σ_yc, σ̂_1/σ_yt) of the undamaged trial stress σ̂ = E0·D(ν)·ε (Voigt strains, engineering
    shears; principal stresses in closed form); f ≥ 1 means yielded. Infinite yield stress: never yields."""
    out = np.empty(strain.shape[0])
    _yield_index_kernel(np.ascontiguousarray(strain, dtype=np.float64), np.ascontiguousarray(E0, dtype=np.float64),
                        elasticity_matrix(1.0, nu), np.ascontiguousarray(sigma_yc, dtype=np.float64),
                        np.ascontiguousarray(sigma_yt, dtype=np.float64), out)
    return out


def _offset_yield(d: np.ndarray, F: np.ndarray, k0: float, offset_mm: float) -> float:
    """Load where the curve crosses the line F = k0·(δ − offset) (linear interpolation); nan if never."""
    g = F - k0 * (d - offset_mm)
    idx = np.nonzero((g[:-1] > 0) & (g[1:] <= 0))[0]
    if idx.size == 0:
        return float("nan")
    i = int(idx[0])
    t = g[i] / (g[i] - g[i + 1])
    return float(F[i] + t * (F[i + 1] - F[i]))


def pushover(mesh: VoxelMesh, K0: np.ndarray, top: np.ndarray, bottom: np.ndarray, rbm: np.ndarray,
             sigma_yc: np.ndarray, sigma_yt: np.ndarray, *, nu: float = 0.3,
             settings: PushoverSettings = PushoverSettings(), bone: np.ndarray | None = None,
             threads: int | None = None, progress: Callable[[str], None] | None = None) -> PushoverResult:
    """Displacement-controlled pushover of a voxel model (see module docstring).

    Parameters
    ----------
    mesh, K0
        Voxel mesh (undamaged moduli ``mesh.modulus_mpa``, MPa) and unit-modulus element matrix.
    top, bottom : ndarray of int
        Nodes of the loading faces (top moves by −δ along k, bottom fixed along k).
    rbm : ndarray of int
        Rigid-body constraint dofs (held at zero).
    sigma_yc, sigma_yt : ndarray (ne,)
        Compressive and tensile yield stress per element, MPa (positive; ``inf`` = never yields).
    bone : ndarray of bool (ne,), optional
        Elements counted for the reported yielded-bone fraction.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    say = progress or (lambda msg: None)
    st = settings
    n = mesh.n_dofs
    fixed = np.concatenate([3 * top + 2, 3 * bottom + 2, rbm]).astype(np.int64)
    free = np.ones(n)
    free[fixed] = 0.0
    kz = mesh.spacing[2]
    H = float((mesh.node_ijk[top, 2].max() - mesh.node_ijk[bottom, 2].min()) * kz)
    dmax = float(st.max_displacement_mm) if st.max_displacement_mm else st.max_apparent_strain * H
    E0 = np.ascontiguousarray(mesh.modulus_mpa, dtype=np.float64).copy()
    Eeff = E0.copy()
    m2 = replace(mesh, modulus_mpa=Eeff)  # Eeff is updated in place: operator follows, preconditioner is rebuilt
    B0 = hex8_centroid_strain_matrix(mesh.spacing)
    bone_mask = np.ones(mesh.n_elements, bool) if bone is None else np.asarray(bone, bool)
    s_comm = np.ones(mesh.n_elements)
    ycs = np.asarray(sigma_yc, float)
    yts = np.asarray(sigma_yt, float)
    nthreads = fe.auto_threads() if threads is None else int(threads)

    def strains(u):
        U = u.reshape(-1, 3)[mesh.conn].reshape(mesh.n_elements, 24)
        return U @ B0.T

    curve: list[dict[str, Any]] = [{"displacement_mm": 0.0, "reaction_force_n": 0.0, "iterations": 0,
                                    "cg_iterations": 0, "equilibrium_residual": 0.0, "converged": True,
                                    "yielded_bone_fraction": 0.0}]
    u = np.zeros(n)
    u_last = None
    d_prev = d_last = 0.0
    it_total = cg_total = builds = 0
    all_conv = True
    stopped = "reached maximum displacement"
    k0 = float("nan")
    peak = 0.0
    with fe._ThreadLimit(nthreads):
        work = fe.Workspace(m2, K0)
        pre = None
        cg_ref = None
        for inc in range(1, st.increments + 1):
            d = dmax * inc / st.increments
            # (re)build the preconditioner on the committed secant moduli when CG has slowed down;
            # within an increment s ≤ s_committed, so the Chebyshev bound of the build stays valid
            Eeff[:] = E0 * s_comm
            if pre is None or (cg_ref is not None and last_cg > 1.5 * cg_ref + 2):
                pre = fe._GeometricTwoLevel(m2, K0, free)
                builds += 1
                cg_ref = None
            # predictor: extrapolate the last increment's displacement field (the shape of the plastic
            # increment changes slowly), or scale the elastic field on the first increments
            if u_last is not None and d_prev > 0:
                u_new = u + (u - u_last) * ((d - d_prev) / (d_prev - d_last))
            else:
                u_new = u * (d / d_prev) if d_prev > 0 else u
            u_last, d_last = u.copy(), d_prev
            u = u_new
            u[3 * top + 2] = -d
            reaction_old = np.nan
            conv = False
            s = s_comm.copy()
            inc_cg = 0
            hx: list[np.ndarray] = []
            hg: list[np.ndarray] = []
            res_old = np.inf
            for it in range(1, st.max_iterations + 1):
                F = work.matvec(u)
                b = -F * free
                ref = float(np.linalg.norm(F[fixed]))
                x_old = u.copy()
                dx, cgi, _ = fe.pcg_until(pre.A, b, pre, st.linear_tol * st.equilibrium_tol * max(ref, 1e-300),
                                          200 if (inc == 1 and it == 1) else st.inner_max_cg)
                u += dx * free
                inc_cg += cgi
                if inc == 1 and it == 1:  # elastic solution (s = 1 everywhere): the initial stiffness
                    k0 = abs(float(work.matvec(u)[3 * top + 2].sum())) / d
                if st.anderson > 0:
                    # Anderson acceleration of the fixed point u ← G(u) (Walker & Ni 2011), β = 1
                    g = u - x_old
                    hx.append(x_old)
                    hg.append(g)
                    if len(hx) > st.anderson + 1:
                        hx.pop(0)
                        hg.pop(0)
                    if len(hx) >= 2:
                        dG = np.stack([hg[i + 1] - hg[i] for i in range(len(hg) - 1)], axis=1)
                        dX = np.stack([hx[i + 1] - hx[i] for i in range(len(hx) - 1)], axis=1)
                        gamma = np.linalg.lstsq(dG, g, rcond=None)[0]
                        u = x_old + g - (dX + dG) @ gamma
                # material update (no healing)
                f = yield_index(strains(u), E0, nu, ycs, yts)
                with np.errstate(divide="ignore"):
                    target = np.where(f > 1.0, np.maximum(1.0 / f, st.min_secant_fraction), 1.0)
                s = np.minimum(s_comm, target)
                Eeff[:] = E0 * s
                F = work.matvec(u)
                ref = float(np.linalg.norm(F[fixed]))
                res = float(np.linalg.norm(F * free)) / max(ref, 1e-300)
                reaction = abs(float(F[3 * top + 2].sum()))
                dF = abs(reaction - reaction_old) / max(reaction, 1e-300)
                reaction_old = reaction
                if res <= st.equilibrium_tol and dF <= st.reaction_tol:
                    conv = True
                    break
                if res > 2.0 * res_old:  # the mixed step went astray: restart the Anderson history
                    hx.clear()
                    hg.clear()
                res_old = res
            it_total += it
            cg_total += inc_cg
            last_cg = inc_cg / it
            if cg_ref is None:
                cg_ref = last_cg
            all_conv &= conv
            s_comm = s
            yielded = float(np.count_nonzero(s[bone_mask] < 1.0)) / max(int(bone_mask.sum()), 1)
            curve.append({"displacement_mm": d, "reaction_force_n": reaction, "iterations": it,
                          "cg_iterations": inc_cg, "equilibrium_residual": res, "converged": conv,
                          "yielded_bone_fraction": yielded})
            say(f"pushover δ = {d:.3f} mm: F = {reaction:,.0f} N ({it} iterations, {yielded:.1%} of bone yielded)")
            peak = max(peak, reaction)
            d_prev = d
            if reaction < (1.0 - st.stop_after_peak_drop) * peak:
                stopped = f"reaction fell {st.stop_after_peak_drop:.0%} below the peak"
                break
            if st.plateau_stop and inc >= 3:
                # plateau: over the last two increments the curve's slope fell below plateau_slope × k0
                # (independent of the increment size; a perfectly plastic mechanism has slope 0)
                c1 = curve[-3]
                slope = (reaction - c1["reaction_force_n"]) / max(d - c1["displacement_mm"], 1e-300)
                if slope <= st.plateau_slope * k0:
                    stopped = (f"plateau: slope over the last two increments below {st.plateau_slope:.1%} of the "
                               f"elastic stiffness")
                    break
    dd = np.array([c["displacement_mm"] for c in curve])
    FF = np.array([c["reaction_force_n"] for c in curve])
    ip = int(np.argmax(FF))
    offset_mm = st.offset_strain * H
    return PushoverResult(
        failure_load_n=float(FF[ip]), displacement_at_peak_mm=float(dd[ip]),
        yield_load_offset_n=_offset_yield(dd, FF, k0, offset_mm), initial_stiffness_n_per_mm=k0,
        loading_height_mm=H, max_displacement_mm=dmax, curve=curve, increments=len(curve) - 1,
        iterations_total=it_total, cg_iterations_total=cg_total, preconditioner_builds=builds,
        all_converged=bool(all_conv), stopped=stopped, seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0, settings=st.to_dict(), secant_fraction=s_comm)
