"""Cement injection: two-phase Darcy flow of a power-law PMMA displacing marrow.

Domain Ω: the porous voxels of the body (trabecular bone, fracture band, cleft, gap, cavity,
basivertebral vein) plus the extravertebral spaces reached through the exits (basivertebral
foramen → epidural veins/canal, segmental-vein foramina → paravertebral veins, cortical defects →
paraspinal tissue, endplate breaks → disc), ``leak_space_mm`` deep. Intact cortex, endplates, the
cannula and the posterior elements are no-flow.

Each step (``injection_step_ml``):

1. Pressure: ∇·(λ∇p) = −Q (sources at the cannula tips, Q = injection rate per side), with
   mobility λ = k/μ, μ = μ_cement,eff in cement voxels and μ_marrow elsewhere; the outer layer of
   the extravertebral spaces and (weakly) every marrow voxel drain to venous pressure 0. Solved
   with conjugate gradients preconditioned by a smoothed-aggregation AMG hierarchy (pyamg).
2. Flux from cement into each front voxel q_j = Σ T_ij (p_i − p_back,j − θ_ij)⁺ (sub-voxel front):
   the plug from the centre of i into j as far as j is filled (s_j) must yield,
   θ_ij = τ_y·(G_i·h/2 + G_j·s_j·h), G = √(φ/(2k)) (capillary-bundle Bingham threshold), and the
   face resistance is that of the same column with the power-law viscosity. The cement leaves each
   cannula over its bore (an isobaric ball of the inner radius), not at a one-voxel point.
3. The step volume is shared among the front voxels in proportion to q_j (the front advances
   where the flux is highest), up to each voxel's pore volume φ·v (cavity: v).
4. Power law: μ_eff = K(t)·γ̇^(n−1), γ̇ = (3n+1)/(4n)·4|u|/√(8k/φ) (Christopher–Middleman) from the
   previous step's Darcy velocity; K(t) and τ_y(t) rise exponentially with time since mixing
   (the injection clock starts at ``params.injection_start_min``, default the grade's start).

Permeability: Kozeny–Carman scaling of Baroud's 4.45e-8 m² (SI) at the reference BV/TV, AP/LR
78 % of SI; BV/TV = ρ_QCT/ρ_tissue. Compacted bone around a KP cavity is denser, hence tighter.
Injection stops like a surgeon would: target volume, cement in the posterior quarter of the body,
or a visible leak (≥ ``leak_visible_ml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg  # noqa: F401
from scipy import ndimage as ndi
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import cg

from kyphosim.simulation.lift import LiftState, gap_fills, shift_columns
from kyphosim.simulation.model import Tissue, VertebraModel
from kyphosim.simulation.params import CementGrade, SimParams

__all__ = ["InjectionResult", "inject", "permeability_m2"]

_POROUS = np.zeros(256, bool)
for _t in (Tissue.TRABECULAR, Tissue.FRACTURE, Tissue.CLEFT, Tissue.GAP, Tissue.BASIVERTEBRAL,
           Tissue.SEGMENTAL_EXIT, Tissue.CORTICAL_DEFECT, Tissue.ENDPLATE_BREAK, Tissue.SEALED):
    _POROUS[int(_t)] = True
_EXITS = {int(Tissue.BASIVERTEBRAL): "B", int(Tissue.SEGMENTAL_EXIT): "S",
          int(Tissue.CORTICAL_DEFECT): "C", int(Tissue.ENDPLATE_BREAK): "D"}
# leak-class codes on the leak map
_LEAK_CODES = {"B": 1, "S": 2, "C": 3, "D": 4, "canal": 5}
_CODE_NAMES = {v: k for k, v in _LEAK_CODES.items()}
# numerical floor of the filled fraction of a front voxel in its face resistance (sub-voxel front)
_FRONT_MIN_FRACTION = 0.05


def permeability_m2(rho_mg_cm3: np.ndarray, params: SimParams) -> np.ndarray:
    """SI permeability of trabecular bone (m²) from QCT density: Kozeny–Carman scaled to Baroud 2004."""
    bvtv = np.clip(np.asarray(rho_mg_cm3, float) / params.tissue_bmd_mg_cm3, 0.005, 0.95)
    phi = 1.0 - bvtv
    kc = phi ** 3 / bvtv ** 2
    b0 = params.reference_bvtv
    kc0 = (1 - b0) ** 3 / b0 ** 2
    return params.permeability_si_m2 * kc / kc0


@dataclass
class InjectionResult:
    fill: np.ndarray                 # float32 saturation 0..1 of each voxel's pore space
    porosity: np.ndarray             # float32 pore fraction (1 in cavity/gap)
    injected_ml: float
    grid_cement_ml: float
    stop_reason: str
    steps: int
    time_s: float
    max_pressure_kpa: float          # in the bone at the tip
    cannula_pressure_kpa: float      # pressure drop in the cannula at the end (Hagen–Poiseuille power law)
    leaks: list[dict]
    leak_map: np.ndarray             # uint8 leak class per voxel (0 inside the body)
    history: list[dict] = field(default_factory=list)
    lift_alpha: float = 0.0
    viscosity_pa_s_end: float = 0.0
    yield_stress_pa_end: float = 0.0
    start_min: float = 0.0           # injection start, minutes after mixing

    @property
    def cement_mask(self) -> np.ndarray:
        return self.fill >= 0.5


def _leak_spaces(model: VertebraModel, params: SimParams, cavity: np.ndarray | None = None) -> np.ndarray:
    """uint8 map: extravertebral voxels reachable from an exit within ``leak_space_mm``, by class.

    Besides the anatomical exits, a KP cavity that touches the disc, the soft tissue or the canal
    directly (the balloon crushed through the endplate or the wall) is a breach: the extravertebral
    voxels next to it seed a leak space of class D (disc), C (soft tissue) or canal."""
    h = model.spacing_mm
    t = model.tissue
    out = np.zeros(model.shape, np.uint8)
    free = ~model.vert & ((t == Tissue.SOFT) | (t == Tissue.CANAL) | (t == Tissue.DISC))
    n = max(1, int(round(params.leak_space_mm / h)))
    if cavity is not None and cavity.any():
        touch = ndi.binary_dilation(cavity, ndi.generate_binary_structure(3, 1)) & ~cavity & free
        for tis, name in ((Tissue.DISC, "D"), (Tissue.SOFT, "C"), (Tissue.CANAL, "canal")):
            seed = touch & (t == tis)
            if seed.any():
                reach = (ndi.binary_dilation(seed, iterations=n) | seed) & free & (out == 0)
                out[reach] = _LEAK_CODES[name]
    for code, name in ((int(Tissue.BASIVERTEBRAL), "B"), (int(Tissue.SEGMENTAL_EXIT), "S"),
                       (int(Tissue.CORTICAL_DEFECT), "C"), (int(Tissue.ENDPLATE_BREAK), "D")):
        ex = t == code
        if not ex.any():
            continue
        reach = ndi.binary_dilation(ex, iterations=n) & free & (out == 0)
        lab = np.full(model.shape, _LEAK_CODES[name], np.uint8)
        if name == "B":
            lab[t == Tissue.CANAL] = _LEAK_CODES["canal"]
        out[reach] = lab[reach]
    out[(out > 0) & (t == Tissue.CANAL)] = _LEAK_CODES["canal"]
    return out


class _Faces:
    """Face graph of Ω (pairs of face-adjacent voxels) with the SI/AP anisotropy of each face."""

    def __init__(self, omega: np.ndarray, params: SimParams, h_m: float):
        self.shape = omega.shape
        self.h = h_m
        self.flat = np.flatnonzero(omega)
        self.n = self.flat.size
        self.index = np.full(omega.size, -1, np.int64)
        self.index[self.flat] = np.arange(self.n)
        fa, fb, an = [], [], []
        strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1])
        for ax in range(3):
            sl_a = [slice(None)] * 3
            sl_b = [slice(None)] * 3
            sl_a[ax] = slice(0, -1)
            sl_b[ax] = slice(1, None)
            both = omega[tuple(sl_a)] & omega[tuple(sl_b)]
            ia = np.argwhere(both)
            f = np.ravel_multi_index(ia.T, self.shape)
            fa.append(self.index[f])
            fb.append(self.index[f + strides[ax]])
            an.append(np.full(f.size, 1.0 if ax == 2 else params.permeability_ap_over_si))
        self.fa = np.concatenate(fa)
        self.fb = np.concatenate(fb)
        self.aniso = np.concatenate(an)

    def conductance(self, k: np.ndarray) -> np.ndarray:
        """Face k·A/L (m³) from cell permeabilities (harmonic mean); divide by μ for T."""
        ka, kb = k[self.fa], k[self.fb]
        return self.aniso * 2.0 * ka * kb / np.maximum(ka + kb, 1e-300) * self.h


def _pcg(A: sp.csr_matrix, b: np.ndarray, x0: np.ndarray | None, rtol: float = 1e-7, maxiter: int = 3000) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients written with element-wise NumPy reductions (no
    BLAS calls, which thrash when many processes share two cores)."""
    d = A.diagonal()
    inv = 1.0 / np.where(d > 0, d, 1.0)
    x = np.zeros_like(b) if x0 is None else x0.astype(float).copy()
    r = b - A @ x
    z = inv * r
    p = z.copy()
    rz = float((r * z).sum())
    bn = float(np.sqrt((b * b).sum())) or 1.0
    for _ in range(maxiter):
        if np.sqrt(float((r * r).sum())) <= rtol * bn:
            break
        Ap = A @ p
        pAp = float((p * Ap).sum())
        if pAp <= 0:
            break
        alpha = rz / pAp
        x += alpha * p
        r -= alpha * Ap
        z = inv * r
        rz_new = float((r * z).sum())
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def _amg_solve(A: sp.csr_matrix, b: np.ndarray, x0: np.ndarray | None = None, *, amg: bool = True) -> np.ndarray:
    """Solve the SPD pressure system: direct when small, else preconditioned CG warm-started from
    ``x0`` (Jacobi; ``amg`` is kept for API compatibility and also uses Jacobi-PCG)."""
    if A.shape[0] <= 3000:
        from scipy.sparse.linalg import spsolve

        return np.atleast_1d(spsolve(A.tocsc(), b))
    scale = 1.0 / A.diagonal().mean()
    return _pcg((A * scale).tocsr(), b * scale, x0)


def _marrow_backpressure(model: VertebraModel, omega: np.ndarray, k_si: np.ndarray, outlet: np.ndarray,
                         sources: list[np.ndarray], params: SimParams, q_side: float) -> np.ndarray:
    """Marrow pressure (Pa) ahead of the cement: marrow displaced at the injection rate from the
    injection points drains through Ω to the outlets (venous pressure 0) and, weakly, through the
    intraosseous sinusoids everywhere. Solved once on a 2× coarser grid and upsampled."""
    f = 2
    shp = tuple(int(np.ceil(s / f)) for s in omega.shape)
    pad = [(0, shp[i] * f - omega.shape[i]) for i in range(3)]

    def red(a, how):
        ap = np.pad(a, pad)
        r = ap.reshape(shp[0], f, shp[1], f, shp[2], f)
        return r.max(axis=(1, 3, 5)) if how == "max" else r.mean(axis=(1, 3, 5))

    om_c = red(omega.astype(np.float32), "max") > 0
    kc = red(np.where(omega, k_si, 0.0), "mean") / np.maximum(red(omega.astype(float), "mean"), 1e-9)
    out_c = red(outlet.astype(np.float32), "max") > 0
    faces = _Faces(om_c, params, model.spacing_mm * f / 1000.0)
    n = faces.n
    mu = params.marrow_viscosity_pa_s
    kk = kc.ravel()[faces.flat]
    T = faces.conductance(kk) / mu
    g_out = np.where(out_c.ravel()[faces.flat], 2.0 * kk * faces.h / mu, 1e-3 * kk * faces.h / mu)
    diag = np.bincount(faces.fa, T, n) + np.bincount(faces.fb, T, n) + g_out
    A = sp.csr_matrix((np.concatenate([-T, -T, diag]),
                       (np.concatenate([faces.fa, faces.fb, np.arange(n)]),
                        np.concatenate([faces.fb, faces.fa, np.arange(n)]))), shape=(n, n))
    b = np.zeros(n)
    idx = np.argwhere(om_c)
    for s in sources:
        d = np.sum((idx - np.asarray(s)[None, :] / f) ** 2, axis=1)
        b[faces.index[np.ravel_multi_index(idx[int(np.argmin(d))], om_c.shape)]] += q_side
    pc = np.zeros(om_c.size)
    pc[faces.flat] = _amg_solve(A, b)
    pc = pc.reshape(om_c.shape)
    up = pc.repeat(f, 0).repeat(f, 1).repeat(f, 2)[: omega.shape[0], : omega.shape[1], : omega.shape[2]]
    return np.where(omega, up, 0.0)


def _cannula_dp_kpa(q_m3_s: float, od_mm: float, length_mm: float, grade: CementGrade, K: float) -> float:
    """Pressure drop of a power-law fluid through the cannula (inner radius ≈ 0.8·OD/2)."""
    R = 0.8 * od_mm / 2000.0
    L = length_mm / 1000.0
    n = grade.n
    if q_m3_s <= 0:
        return 0.0
    # power-law Hagen–Poiseuille: Q = (π n R³/(3n+1)) (R ΔP / (2 K L))^(1/n)
    dp = (q_m3_s * (3 * n + 1) / (np.pi * n * R ** 3)) ** n * 2 * K * L / R
    return float(dp / 1000.0)


def inject(model: VertebraModel, sources: list[np.ndarray], cavity: np.ndarray | None, grade: CementGrade,
           target_ml: float, params: SimParams, lift: LiftState | None = None, cannula: list[dict] | None = None,
           progress=None) -> InjectionResult:
    """Inject ``target_ml`` of cement from ``sources`` (index coords, one per side)."""
    h = model.spacing_mm
    v_m3 = (h / 1000.0) ** 3
    t = model.tissue
    cav = cavity if cavity is not None else np.zeros(model.shape, bool)
    leak_map = _leak_spaces(model, params, cav)
    omega = (_POROUS[t] & model.body) | cav | (leak_map > 0)
    omega &= t != Tissue.CHANNEL
    # permeability (SI) and porosity
    k_si = permeability_m2(model.rho, params)
    open_void = cav | (t == Tissue.GAP) | (t == Tissue.CLEFT)
    k_si = np.where(open_void, params.cavity_permeability_m2, k_si)
    vein = (t == Tissue.BASIVERTEBRAL) | (t == Tissue.SEGMENTAL_EXIT) | np.isin(leak_map, [1, 2, 5])
    k_si = np.where(vein, params.vein_permeability_m2, k_si)
    k_si = np.where((leak_map == _LEAK_CODES["C"]), params.vein_permeability_m2 * 0.1, k_si)
    k_si = np.where((t == Tissue.ENDPLATE_BREAK) | (leak_map == _LEAK_CODES["D"]), params.disc_permeability_m2, k_si)
    k_si = np.where((t == Tissue.CORTICAL_DEFECT), params.vein_permeability_m2 * 0.1, k_si)
    bvtv = np.clip(model.rho / params.tissue_bmd_mg_cm3, 0.0, 0.95)
    sealed = t == Tissue.SEALED
    if sealed.any():
        # a collapsed exit plugged with compacted bone: the compacted shell's density sets k and φ
        rho_seal = np.maximum(model.rho, model.geometry.get("seal_rho_mg_cm3", 0.0))
        k_si = np.where(sealed, permeability_m2(rho_seal, params), k_si)
        bvtv = np.where(sealed, np.clip(rho_seal / params.tissue_bmd_mg_cm3, 0.0, 0.95), bvtv)
    por = np.where(open_void | (leak_map > 0) | vein, 1.0, 1.0 - bvtv).astype(np.float32)
    # outlets: outer shell of the leak spaces
    ls = leak_map > 0
    outlet = ls & ~ndi.binary_erosion(ls | model.body, iterations=1)
    if not outlet.any():
        outlet = np.zeros_like(ls)
    faces = _Faces(omega, params, h / 1000.0)
    n = faces.n
    fill = np.zeros(n, np.float64)
    cap = por.ravel()[faces.flat].astype(np.float64) * v_m3 * 1e6     # pore volume, mL
    src_ids = []
    om_idx = np.argwhere(omega)
    # the cement leaves the cannula over its bore, not at a point: the pore space within the inner
    # radius of the cannula around each source starts filled and acts as one isobaric node (a
    # point source of one voxel would make the tip pressure ∝ 1/h, i.e. grid-dependent)
    r_src_mm = 0.5 * h
    if cannula:
        r_src_mm = max(r_src_mm, 0.8 * float(cannula[0]["od_mm"]) / 2.0)
    body_o = (model.body.ravel()[faces.flat]) & (leak_map.ravel()[faces.flat] == 0)
    src_ball = np.zeros(n, bool)
    # the cement enters the connected pore space: a source whose nearest flow voxel is an isolated
    # pocket (< 1 % of the domain, e.g. a voxel walled in by the needle and the endplate on a
    # coarse grid) is taken at the nearest voxel of a larger connected part instead
    comp, ncomp_om = ndi.label(omega)
    comp_of_om = comp[tuple(om_idx.T)]
    big = np.bincount(comp_of_om, minlength=ncomp_om + 1) >= max(1, 0.01 * om_idx.shape[0])
    for s in sources:
        d = np.sum((om_idx - np.asarray(s)[None, :]) ** 2, axis=1)
        if not big[comp_of_om[int(np.argmin(d))]] and big[comp_of_om].any():
            d = np.where(big[comp_of_om], d, np.inf)
        sid = int(faces.index[np.ravel_multi_index(om_idx[int(np.argmin(d))], model.shape)])
        src_ids.append(sid)
        near = np.flatnonzero(d <= (r_src_mm / h) ** 2)
        if near.size:
            ids = faces.index[np.ravel_multi_index(om_idx[near].T, model.shape)]
            src_ball[ids[body_o[ids]]] = True
        src_ball[sid] = True
    q_total = params.injection_rate_ml_min / 60.0 * 1e-6              # m³/s, all sides together
    q_side = q_total / max(len(src_ids), 1)
    pb_full = _marrow_backpressure(model, omega, k_si, outlet, sources, params, q_side)
    # absolute pressures: marrow and veins sit on the venous (= intraosseous, Arnoldi 1981) pressure
    p_back = pb_full.ravel()[faces.flat] + params.venous_pressure_kpa * 1000.0
    cement = np.zeros(n, bool)
    fill[src_ball] = 1.0
    cement[src_ball] = True
    injected = float(cap[src_ball].sum())
    j_post, depth = model.geometry["j_post"], model.geometry["depth_mm"] / h
    ii, jj, kk = np.unravel_index(faces.flat, model.shape)
    # cement in (or within 2 mm of) the KP cavity is expected there; the posterior-quarter rule
    # watches cement spreading beyond it
    near_cav = ndi.binary_dilation(cav, iterations=max(1, int(round(2.0 / h)))) if cav.any() else cav
    in_cav = near_cav.ravel()[faces.flat]
    post_q = (jj <= j_post + params.posterior_stop_fraction * depth) & model.body.ravel()[faces.flat]
    leak_cls = leak_map.ravel()[faces.flat]
    tis_o = t.ravel()[faces.flat]
    exit_cls = np.zeros(n, np.uint8)
    for code, name in _EXITS.items():
        exit_cls[tis_o == code] = _LEAK_CODES[name]
    leak_any = np.maximum(leak_cls, exit_cls)
    k_o = k_si.ravel()[faces.flat]
    phi_o = por.ravel()[faces.flat].astype(float)
    G = faces.conductance(k_o)                       # m³; T = G/μ
    void_o = open_void.ravel()[faces.flat]
    iso_o = void_o | src_ball                          # voxels that join an isobaric node once filled
    leak_idx = np.flatnonzero(leak_any > 0)
    post_idx = np.flatnonzero(post_q & ~in_cav & (leak_any == 0))
    thr_fac = np.sqrt(np.maximum(phi_o, 1e-3) / (2.0 * np.maximum(k_o, 1e-16)))   # 1/m
    gam = np.ones(n)
    gam_n = gam * (4 * grade.n) / (3 * grade.n + 1)
    hist: list[dict] = []
    stop = "target volume reached"
    steps = 0
    pmax = 0.0
    t0_min = grade.t_start_min if params.injection_start_min is None else float(params.injection_start_min)
    K = grade.k_at(t0_min)
    tau_y = grade.yield_stress_at(t0_min)
    t_min = t0_min
    p_c = None
    hm = h / 1000.0
    while injected < target_ml - 1e-9:
        steps += 1
        # injection clock: minutes since mixing; K(t) and τ_y(t) both rise with polymerisation, the
        # yield stress faster (τ_Y < τ_K), so the Bingham number grows with cure (params.CementGrade)
        t_min = t0_min + injected / params.injection_rate_ml_min
        K = grade.k_at(t_min)
        tau_y = grade.yield_stress_at(t_min)
        gc = np.clip(gam, 1e-2, 1e3)
        mu_c = K * gc ** (grade.n - 1.0)
        if params.herschel_bulkley:
            # Herschel–Bulkley apparent viscosity: the yield stress resists flow along every cement
            # path (in a tube of diameter d this adds exactly the Bingham plug drop 4·τ_y·L/d)
            mu_c = mu_c + tau_y / np.clip(gam_n, 1e-2, 1e3)
        # --- pressure in the cement region; marrow back-pressure on the front faces
        cid = np.flatnonzero(cement)
        # open voids filled with cement are isobaric: each connected one is a single node
        cv = cement & iso_o
        loc = np.full(n, -1, np.int64)
        nc = 0
        if cv.any():
            ijk = np.stack(np.unravel_index(faces.flat[cv], model.shape), axis=1)
            lo = ijk.min(axis=0)
            shp = tuple(ijk.max(axis=0) - lo + 1)
            box = np.zeros(shp, bool)
            box[tuple((ijk - lo).T)] = True
            comp, nc = ndi.label(box)
            loc[cv] = comp[tuple((ijk - lo).T)] - 1
        rest = cement & ~void_o
        loc[rest] = nc + np.arange(int(rest.sum()))
        m = nc + int(rest.sum())
        a_c, b_c = cement[faces.fa], cement[faces.fb]
        sel = np.flatnonzero(a_c | b_c)
        fa, fb = faces.fa[sel], faces.fb[sel]
        a_c, b_c = a_c[sel], b_c[sel]
        mu_face = np.where(a_c & b_c, 0.5 * (mu_c[fa] + mu_c[fb]), np.where(a_c, mu_c[fa], mu_c[fb]))
        T = G[sel] / mu_face
        la, lb = loc[fa], loc[fb]
        cc = a_c & b_c & (la != lb)
        fr_a = a_c & ~b_c      # cement at a, front at b
        fr_b = b_c & ~a_c
        # front faces: cement enters voxel j only where p_i − p_back,j exceeds the yield threshold
        # θ_ij of the plug reaching into j (below). Volume-controlled syringe: the open set is found by an active-set iteration
        # (faces below threshold carry no flow; the pressure rises until enough faces open).
        fr = np.flatnonzero(fr_a | fr_b)
        fr_c = np.where(fr_a[fr], la[fr], lb[fr])          # cement node
        fr_j = np.where(fr_a[fr], fb[fr], fa[fr])          # front voxel
        fr_i = np.where(fr_a[fr], fa[fr], fb[fr])          # cement voxel
        # sub-voxel front, viscous part: the cement column from the centre of i reaches s_j·h into j,
        # so the face's resistance is (h/2)/k_i + s_j·h/k_j (floored at 5 % of a voxel), not the
        # centre-to-centre (h/2)(1/k_i + 1/k_j): a just-opened front voxel is not charged a half
        # voxel of bone it has not entered (the pressure would otherwise scale with the grid)
        # An isobaric node (a filled void, the cannula's bore) has its pressure up to its boundary
        # face: no half voxel on its side.
        half_i = np.where(iso_o[fr_i], 0.0, 0.5)
        s_j = np.maximum(fill[fr_j], _FRONT_MIN_FRACTION)
        G_fr = faces.aniso[sel][fr] * hm * hm / (half_i * hm / k_o[fr_i] + s_j * hm / k_o[fr_j])
        # the yield stress of the plug entering j is the threshold θ_ij below (integrated over the
        # column); the face's viscous resistance is the power-law part only (adding τ_y/γ̇ here
        # counted the yield stress twice, with a lagged γ̇ that made the pressure spike when the
        # flow moved to a face that had been idle)
        mu_fr = K * np.clip(gam[fr_i], 1e-2, 1e3) ** (grade.n - 1.0)
        T_fr = G_fr / mu_fr
        # sub-voxel front: the plug reaching into j spans h/2 of the cement voxel i (centre to face)
        # and the filled fraction s_j·h of j, so θ = τ_y·(G_i·h/2 + G_j·s_j·h) (G = √(φ/2k)) — the
        # continuum Bingham gradient threshold integrated over the real column, not one extra voxel
        thr = p_back[fr_j] + tau_y * hm * (half_i * thr_fac[fr_i] + fill[fr_j] * thr_fac[fr_j])   # Pa, absolute
        Tcc = T[cc]
        rows_cc = np.concatenate([la[cc], lb[cc]])
        cols_cc = np.concatenate([lb[cc], la[cc]])
        d_cc = np.bincount(la[cc], Tcc, m) + np.bincount(lb[cc], Tcc, m)
        q_src = np.zeros(m)
        for sid in src_ids:
            q_src[loc[sid]] += q_side
        x0 = None
        if p_c is not None:
            x0 = np.zeros(m)
            x0[loc[cid]] = p_c[cid]
        # connected groups of cement nodes: each must keep at least one open face (else its
        # pressure rises until its cheapest face yields)
        ncomp, comp_of = connected_components(sp.csr_matrix((np.ones(rows_cc.size), (rows_cc, cols_cc)),
                                                            shape=(m, m)), directed=False)
        fr_g = comp_of[fr_c]

        def ensure_open(act: np.ndarray, score: np.ndarray) -> np.ndarray:
            has = np.bincount(fr_g[act], None, ncomp) > 0
            if has.all() or fr_g.size == 0:      # no front face at all: nothing to open
                return act
            order = np.lexsort((-score, fr_g))           # best score first within each group
            first = order[np.r_[True, fr_g[order][1:] != fr_g[order][:-1]]]
            act = act.copy()
            act[first[~has[fr_g[first]]]] = True
            return act

        if x0 is not None:
            active = x0[fr_c] > thr
        else:
            active = np.ones(fr.size, bool)
        for _it in range(12):
            active = ensure_open(active, (x0[fr_c] if x0 is not None else 0.0) - thr)
            diag = d_cc + np.bincount(fr_c[active], T_fr[active], m)
            rhs = q_src + np.bincount(fr_c[active], T_fr[active] * thr[active], m)
            A = sp.csr_matrix((np.concatenate([-Tcc, -Tcc, diag + 1e-30 * (diag.max() + 1.0)]),
                               (np.concatenate([rows_cc, np.arange(m)]),
                                np.concatenate([cols_cc, np.arange(m)]))), shape=(m, m))
            pc = _amg_solve(A, rhs, x0, amg=False)
            x0 = pc
            excess = pc[fr_c] - thr
            new_active = ensure_open(excess > 0, excess)
            if np.array_equal(new_active, active):
                break
            active = new_active
        p = p_back.copy()
        p[cid] = pc[loc[cid]]
        p_c = p
        pmax = max(pmax, float(max(p[s] for s in src_ids)) / 1000.0)
        qf = T * (p[fa] - p[fb])
        qf_front = np.zeros(sel.size)
        qf_front[fr[active]] = T_fr[active] * np.maximum(excess[active], 0.0)
        qf = np.where(fr_a | fr_b, np.where(fr_a, qf_front, -qf_front), qf)
        umag = np.zeros(n)
        np.maximum.at(umag, fa, np.abs(qf))
        np.maximum.at(umag, fb, np.abs(qf))
        umag /= hm ** 2
        gam_n = 4 * umag / np.sqrt(8 * k_o / np.maximum(phi_o, 1e-3))
        gam_new = (3 * grade.n + 1) / (4 * grade.n) * gam_n
        # damped update (lagged non-linearity; the geometric mean avoids step-to-step oscillation)
        gam = np.sqrt(np.clip(gam, 1e-2, 1e3) * np.clip(gam_new, 1e-2, 1e3))
        gam_n = gam * (4 * grade.n) / (3 * grade.n + 1)
        boost = 1.0
        q_in = np.zeros(n)
        np.add.at(q_in, fr_j[active], T_fr[active] * np.maximum(excess[active], 0.0))
        dv = min(params.injection_step_ml, target_ml - injected)
        if q_in.sum() <= 0:
            stop = "cement stopped (yield stress)"
            break
        remaining = dv
        idx = np.flatnonzero(q_in > 0)
        for _ in range(30):
            qi, fi, ci = q_in[idx], fill[idx], cap[idx]
            w = np.where(fi < 1.0 - 1e-9, qi, 0.0)
            tot = w.sum()
            if tot <= 0 or remaining <= 1e-12:
                if remaining > 1e-12 and tot <= 0:
                    # the whole front filled within the step: advance to the next layer (same flux rule)
                    nxt = np.concatenate([faces.fb[cement[faces.fa] & ~cement[faces.fb]],
                                          faces.fa[cement[faces.fb] & ~cement[faces.fa]]])
                    q_in = np.bincount(nxt, None, n).astype(float)
                    idx = np.flatnonzero(q_in > 0)
                    if idx.size == 0:
                        break
                    continue
                break
            take = np.minimum(remaining * w / tot, (1.0 - fi) * ci)
            fi = fi + np.where(ci > 0, take / np.maximum(ci, 1e-300), 0.0)
            remaining -= take.sum()
            full = fi >= 1.0 - 1e-9
            fi[full] = 1.0
            fill[idx] = fi
            cement[idx[full]] = True
        injected += dv - remaining
        total_leak = float((fill[leak_idx] * cap[leak_idx]).sum())
        hist.append({"step": steps, "volume_ml": injected,
                     "pressure_kpa": boost * float(max(p[s] for s in src_ids)) / 1000.0,
                     "time_min": float(t_min), "k_pa_sn": float(K), "yield_stress_pa": float(tau_y),
                     "leak_ml": total_leak})
        if progress is not None:
            progress(injected)
        if remaining > 1e-9:
            stop = "no path for more cement"
            break
        if total_leak >= params.leak_visible_ml:
            stop = "leak seen on fluoroscopy"
            break
        if float((fill[post_idx] * cap[post_idx]).sum()) >= params.posterior_visible_ml:
            stop = "cement reached the posterior quarter"
            break
    full = np.zeros(model.shape, np.float32)
    full.ravel()[faces.flat] = fill.astype(np.float32)
    filled_ml = fill * cap
    leaks = []
    for c, name in _CODE_NAMES.items():
        sel = (leak_any == c) & (fill > 0)
        vol = float(filled_ml[sel].sum())
        if vol <= 1e-6:
            continue
        ijk = np.c_[ii[sel], jj[sel], kk[sel]].astype(float)
        loc = np.average(ijk, axis=0, weights=filled_ml[sel])
        leaks.append({"type": name, "volume_ml": vol, "location_mm": model.index_to_world(loc).tolist(),
                      # the part beyond the exit, in the extravertebral leak space (not in the foramen /
                      # crack / endplate-break voxels of the body wall, whose volume scales with h)
                      "extravertebral_ml": float(filled_ml[sel & (leak_cls > 0)].sum())})
    grid_ml = float(filled_ml.sum())
    L_can = 120.0
    dp_can = 0.0
    if cannula:
        c0 = cannula[0]
        dp_can = _cannula_dp_kpa(q_side, c0["od_mm"], L_can, grade, K)
    return InjectionResult(fill=full, porosity=por, injected_ml=injected, grid_cement_ml=grid_ml, stop_reason=stop,
                           steps=steps, time_s=injected / params.injection_rate_ml_min * 60.0, max_pressure_kpa=pmax,
                           cannula_pressure_kpa=dp_can, leaks=leaks, leak_map=leak_map, history=hist,
                           lift_alpha=lift.alpha if lift is not None else 0.0, viscosity_pa_s_end=float(K),
                           yield_stress_pa_end=float(tau_y), start_min=float(t0_min))
