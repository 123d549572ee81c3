"""Balloon inflation: volume-controlled, pressure is the result of the bone's crush resistance.

Each syringe increment the balloon gains the ⌈f·N⌉ cheapest of its N wall candidates
(f = ``SimParams.inflation_wall_fraction``). The candidates are the voxels face-adjacent to the
balloon, inside the device envelope (a capsule of the nominal length whose radius makes its volume
the device's maximum volume) and made of bone. The balloon takes the candidates with the lowest
crush resistance first — trabecular bone yields when the pressure exceeds σ_y(ρ) (Kopperdahl et
al. 2002 [S], ρ the local QCT density including bone already compacted into that voxel; × 0.89 in
the fracture band [C]), averaged over a wall patch of fixed physical size (``crush_patch_mm``, the
continuum scale) — so the balloon pressure needed for this increment is

    P = max σ̄_y over the voxels taken + P_wall(V),   P_wall = p_c·(V/V_max)³  [U]

Crushed bone is not destroyed: its mass moves radially outward (away from the balloon axis) into
the first bone voxel that is not balloon, which densifies the wall (a compacted shell) and raises
its strength through the same density law (hardening). Bone mass is conserved exactly (reported).

Where the balloon touches the depressed fragment it may lift it instead (``lift.py``): when the
combined force Σ P_b·A_b of the balloons at their current crush pressure exceeds the reduction
resistance, the fragment rises by one voxel and the opened gap (no resistance) is filled first.
Inflation of a balloon stops at its device volume or pressure limit, when it touches a side wall
of the cortex over ``stop_on_cortex_contact_mm2``, when nothing can yield, or when the height is
fully restored (α = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from kyphosim.simulation.access import Access, segment_distance
from kyphosim.simulation.lift import LiftState, gap_fills, shift_columns
from kyphosim.simulation.model import Tissue, VertebraModel
from kyphosim.simulation.params import BalloonDevice, SimParams, crush_strength_mpa

__all__ = ["BalloonRun", "InflationResult", "inflate"]

_ENTERABLE = np.zeros(256, bool)
for _t in (Tissue.TRABECULAR, Tissue.CORTEX, Tissue.ENDPLATE_SUP, Tissue.ENDPLATE_INF, Tissue.FRACTURE,
           Tissue.CLEFT, Tissue.BASIVERTEBRAL, Tissue.SEGMENTAL_EXIT, Tissue.CORTICAL_DEFECT,
           Tissue.ENDPLATE_BREAK, Tissue.GAP, Tissue.POSTERIOR):
    _ENTERABLE[int(_t)] = True
_RECEIVES = _ENTERABLE.copy()          # bone voxels that can take compacted mass
# exits (vein foramina, cortical cracks, endplate breaks) are not opened by the balloon: it presses
# crushed bone into them instead, which seals them (``seal_exits``)
for _t in (Tissue.BASIVERTEBRAL, Tissue.SEGMENTAL_EXIT, Tissue.CORTICAL_DEFECT, Tissue.ENDPLATE_BREAK):
    _ENTERABLE[int(_t)] = False
_SIDE_WALL = np.zeros(256, bool)
for _t in (Tissue.CORTEX, Tissue.SEGMENTAL_EXIT, Tissue.CORTICAL_DEFECT, Tissue.BASIVERTEBRAL):
    _SIDE_WALL[int(_t)] = True
_STRUCT6 = ndi.generate_binary_structure(3, 1)
_OFFS26 = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)])
_OFFS26 = _OFFS26[np.argsort(np.abs(_OFFS26).sum(axis=1), kind="stable")]


def envelope_radius_mm(device: BalloonDevice) -> float:
    """Radius of a capsule of length L (cylinder) + hemispherical ends whose volume is V_max."""
    L, V = device.length_mm, device.max_volume_ml * 1000.0
    r = (V / np.pi / max(L, 1e-6)) ** 0.5
    for _ in range(60):  # fixed point on π r² L + 4/3 π r³ = V
        f = np.pi * r * r * L + 4.0 / 3.0 * np.pi * r ** 3 - V
        df = 2 * np.pi * r * L + 4 * np.pi * r * r
        r -= f / df
    return float(r)


@dataclass
class BalloonRun:
    """One balloon's inflation record."""

    side: str
    device: BalloonDevice
    index: int
    p0: np.ndarray
    p1: np.ndarray
    radius_vox: float
    initial_voxels: int = 0
    pv_curve: list[tuple[float, float]] = field(default_factory=list)   # (syringe mL, kPa)
    stop_reason: str = ""
    active: bool = True
    max_pressure_kpa: float = 0.0
    contact_area_mm2: float = 0.0

    @property
    def volume_ml(self) -> float:
        return self.pv_curve[-1][0] if self.pv_curve else 0.0


@dataclass
class InflationResult:
    balloons: list[BalloonRun]
    occ: np.ndarray                     # int8: 0 none, b+1 balloon b (the cavity at deflation)
    mass_before_mg: float
    mass_after_mg: float
    unplaced_mass_mg: float
    alpha: float
    lift_force_n: float
    steps: int
    history: list[dict]                  # per step: syringe volumes, pressures, alpha

    @property
    def mass_error_pct(self) -> float:
        return 100.0 * abs(self.mass_after_mg - self.mass_before_mg) / max(self.mass_before_mg, 1e-12)


class _Compaction:
    """Compaction bookkeeping: original density ρ0 and the densification limit
    ρ_lim = max(ρ0, κ·ρ_trab) (κ = ``compaction_ratio`` [U])."""

    def __init__(self, model: VertebraModel, params: SimParams):
        self.rho0 = model.rho.copy()
        # continuum-scale density for strength: Gaussian over ``continuum_mm`` inside bone
        sig = params.continuum_mm / model.spacing_mm
        bone = (model.rho > 0).astype(float)
        num = ndi.gaussian_filter(model.rho, sig)
        den = ndi.gaussian_filter(bone, sig)
        self.smooth_delta = np.where(bone > 0, num / np.maximum(den, 1e-6) - model.rho, 0.0)
        self.kappa_rho = params.compaction_ratio * max(model.trabecular_bmd_mg_cm3, 1.0)
        self.smax = max(2, int(round(params.snowplough_max_mm / model.spacing_mm)))
        self.law = params.strength_law
        # Gaussian σ (voxels) of the wall's continuum patch: FWHM = crush_patch_mm
        self.patch_sigma_vox = params.crush_patch_mm / 2.3548 / model.spacing_mm
        self.resid = params.fracture_residual_strength

    def lim(self, flat: np.ndarray) -> np.ndarray:
        return np.maximum(self.rho0.ravel()[flat], self.kappa_rho)

    def sigma_kpa(self, rho_mg: np.ndarray, tissue: np.ndarray) -> np.ndarray:
        s = crush_strength_mpa(rho_mg / 1000.0, self.law) * 1000.0
        return np.where(tissue == Tissue.FRACTURE, s * self.resid, s)


def _radial(pos: np.ndarray, run: "BalloonRun") -> tuple[np.ndarray, np.ndarray]:
    d = run.p1 - run.p0
    L = float(np.linalg.norm(d))
    u = d / L
    t = np.clip((pos - run.p0) @ u, 0.0, L)
    radial = pos - (run.p0 + t[:, None] * u[None, :])
    nr = np.linalg.norm(radial, axis=1)
    radial = np.where(nr[:, None] > 1e-6, radial / np.maximum(nr, 1e-6)[:, None], u[None, :])
    return radial, nr


def _targets(pos: np.ndarray, step: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    tgt = np.round(pos + step).astype(int)
    inb = np.all((tgt >= 0) & (tgt < np.asarray(shape)), axis=1)
    tf = np.zeros(tgt.shape[0], np.int64)
    tf[inb] = np.ravel_multi_index(tgt[inb].T, shape)
    return tf, inb


def _resistance_kpa(model: VertebraModel, comp: _Compaction, occ: np.ndarray, flat: np.ndarray,
                    run: "BalloonRun") -> np.ndarray:
    """Pressure (kPa) needed for the balloon to take each candidate voxel.

    Uncompacted (or partly compacted) bone: σ_y(ρ). A voxel already compacted to ρ_lim is pushed
    ahead as a layer (snowplough): the front crushes the first unsaturated voxel further out,
    σ_y(ρ_front), and the compacted annulus adds the thick-walled-cylinder collapse pressure
    σ_y(ρ_lim)·ln(1 + t/r) (t layer thickness, r radius from the balloon axis).
    """
    rho = model.rho.ravel()
    tis = model.tissue.ravel()
    rc = rho[flat]
    tc = tis[flat]
    res = comp.sigma_kpa(np.maximum(rc + comp.smooth_delta.ravel()[flat], 0.0), tc)
    res = np.where((tc == Tissue.GAP) | (tc == Tissue.CLEFT), 0.0, res)
    lim = comp.lim(flat)
    sat = (rc >= 0.999 * lim) & (rc > 0) & (comp.rho0.ravel()[flat] < comp.kappa_rho)
    if sat.any():
        pos = np.stack(np.unravel_index(flat[sat], model.shape), axis=1).astype(float)
        radial, rdist = _radial(pos, run)
        n = pos.shape[0]
        found = np.zeros(n, bool)
        front = np.full(n, np.inf)
        thick = np.zeros(n)
        occ_f = occ.ravel()
        for s in range(1, comp.smax + 1):
            tf, inb = _targets(pos, s * radial, model.shape)
            todo = ~found & inb
            if not todo.any():
                break
            rt = rho[tf]
            tt = tis[tf]
            solid = todo & ~_RECEIVES[tt] & (occ_f[tf] == 0)
            unsat = todo & _RECEIVES[tt] & (occ_f[tf] == 0) & (rt < 0.999 * comp.lim(tf))
            hit = unsat | solid
            front[hit] = np.where(solid[hit], np.inf, comp.sigma_kpa(rt[hit], tt[hit]))
            thick[hit] = s
            found |= hit
        hoop = comp.sigma_kpa(lim[sat], tc[sat]) * np.log1p(thick / np.maximum(rdist, 1.0))
        res[sat] = front + hoop
    return res


def _compact(model: VertebraModel, comp: _Compaction, occ: np.ndarray, new_flat: np.ndarray,
             run: "BalloonRun") -> float:
    """Push the mass of newly crushed voxels radially outward into voxels with room below ρ_lim
    (cascading), then into any free bone neighbour; returns the mass (density units) not placed."""
    rho = model.rho.ravel()
    m = rho[new_flat].copy()
    rho[new_flat] = 0.0
    keep = m > 0
    if not keep.any():
        return 0.0
    flat = new_flat[keep]
    rem = m[keep]
    pos = np.stack(np.unravel_index(flat, model.shape), axis=1).astype(float)
    radial, _ = _radial(pos, run)
    occ_f = occ.ravel()
    tis = model.tissue.ravel()

    def give(tf, ok, limit: bool):
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return
        t = tf[idx]
        uniq, inv = np.unique(t, return_inverse=True)
        demand = np.bincount(inv, weights=rem[idx])
        if limit:
            room = np.maximum(comp.lim(uniq) - rho[uniq], 0.0)
            scale = np.minimum(1.0, room / np.maximum(demand, 1e-300))
        else:
            scale = np.ones(uniq.size)
        g = rem[idx] * scale[inv]
        np.add.at(rho, t, g)
        rem[idx] -= g

    for s in range(1, comp.smax + 1):
        todo = rem > 1e-12
        if not todo.any():
            break
        tf, inb = _targets(pos, s * radial, model.shape)
        ok = todo & inb & (occ_f[tf] == 0) & _RECEIVES[tis[tf]]
        give(tf, ok, True)
    for off in _OFFS26:   # leftovers: the nearest free bone voxel, over-compacted if need be
        todo = rem > 1e-12
        if not todo.any():
            break
        tf, inb = _targets(pos, off.astype(float), model.shape)
        ok = todo & inb & (occ_f[tf] == 0) & _RECEIVES[tis[tf]]
        give(tf, ok, False)
    return float(rem[rem > 1e-12].sum())


def inflate(model: VertebraModel, accesses: list[Access], devices: list[BalloonDevice], lift: LiftState,
            params: SimParams, progress=None) -> InflationResult:
    """Inflate one balloon per access channel simultaneously (equal syringe increments)."""
    h = model.spacing_mm
    v_ml = model.voxel_volume_ml
    occ = np.zeros(model.shape, np.int8)
    runs: list[BalloonRun] = []
    envs = []
    for b, (acc, dev) in enumerate(zip(accesses, devices)):
        p0, p1 = acc.channel_ijk
        R = envelope_radius_mm(dev) / h
        run = BalloonRun(side=acc.side, device=dev, index=b, p0=p0, p1=p1, radius_vox=R)
        box, dist, _ = segment_distance(model.shape, p0, p1, R)
        env = np.zeros(model.shape, bool)
        env[box] = dist <= R
        envs.append((box, env[box].copy()))
        # the drilled channel = deflated balloon
        box0, d0, _ = segment_distance(model.shape, p0, p1, 0.5 * dev.deflated_diameter_mm / h)
        ch = d0 <= 0.5 * dev.deflated_diameter_mm / h
        tis = model.tissue[box0]
        ch &= (tis != Tissue.CHANNEL) & _ENTERABLE[tis]
        model.rho[box0][ch] = 0.0
        occ[box0][ch] = b + 1
        run.initial_voxels = int(ch.sum())
        run.pv_curve.append((0.0, 0.0))
        runs.append(run)
    comp = _Compaction(model, params)
    reach = params.contact_reach_mm / h            # voxels (float; the test per column is physical)
    mass0 = float(model.rho.sum())
    unplaced = 0.0
    law, resid = params.strength_law, params.fracture_residual_strength
    # each syringe increment takes a fixed small fraction f of the balloon's wall candidates (the
    # k-th cheapest, k = ⌈f·N⌉): the step pressure is the f-quantile of the wall's continuum
    # strengths on every grid and at every balloon size (a fixed ΔV took ~50 % of the small early
    # balloon's wall per step, i.e. the median wall strength, and more of it on a finer grid)
    frac = params.inflation_wall_fraction

    def k_of(n_cand: int) -> int:
        return max(1, int(np.ceil(frac * n_cand)))
    history: list[dict] = []
    fills = gap_fills(model)
    fills["occ"] = 0
    fills["rho0"] = 0.0
    step = 0
    lift_force = 0.0
    while any(r.active for r in runs):
        step += 1
        # candidates and crush pressure of each active balloon
        cands: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for run in runs:
            if not run.active:
                continue
            cands[run.index] = _candidates(model, comp, occ, run, envs[run.index])
        lifted_now = False
        for _ in range(4):
            if not (lift.active and lift.alpha < 1.0):
                break
            owner = _contact_owner(model, occ, lift, reach)
            f_av = 0.0
            area_tot = 0.0
            for run in runs:
                a = float((owner == run.index + 1).sum() * h * h)
                run.contact_area_mm2 = a
                if a <= 0:
                    continue
                area_tot += a
                if run.active and run.index in cands and cands[run.index][0].size:
                    p_b = _kth(cands[run.index][1], k_of(cands[run.index][1].size))
                else:
                    p_b = run.max_pressure_kpa
                p_b = min(p_b, run.device.max_pressure_kpa)
                f_av += p_b * a * 1e-3
            a_next = min(1.0, lift.alpha + lift.alpha_step())
            f_need = lift.force_needed_n(a_next)
            if area_tot <= 0 or f_av < f_need:
                break
            arrays = {"rho": model.rho, "tissue": model.tissue, "body": model.body, "hu": model.hu,
                      "vert": model.vert, "occ": occ, "rho0": comp.rho0}
            shift_columns(arrays, fills, lift, lift.target_shift(a_next))
            lift.alpha = a_next
            lift_force = f_need
            lifted_now = True
            for run in runs:
                if run.active:
                    cands[run.index] = _candidates(model, comp, occ, run, envs[run.index])
        if lift.active and lift.alpha >= 1.0 - 1e-9:
            for run in runs:
                if run.active:
                    run.active, run.stop_reason = False, "height restored"
        # take the cheapest candidates
        rec = {"step": step, "alpha": lift.alpha}
        for run in runs:
            if not run.active:
                continue
            flat, res = cands[run.index]
            if flat.size == 0:
                run.active, run.stop_reason = False, "no bone can yield (enclosed)"
                continue
            k = min(k_of(flat.size), flat.size)
            part = np.argpartition(res, k - 1)[:k]
            p_need = float(res[part].max())
            if lift.alpha > 0 and run.contact_area_mm2 > 0:
                # holding the raised fragment: P ≥ F_res/ΣA, unless bone elsewhere yields first
                a_tot = sum(r.contact_area_mm2 for r in runs)
                p_hold = lift.force_needed_n() / max(a_tot, 1e-9) * 1e3
                hard = res[res > 0]
                p_alt = _kth(hard, k) if hard.size else p_hold
                p_need = max(p_need, min(p_hold, p_alt))
            vol = (np.count_nonzero(occ == run.index + 1) + k - run.initial_voxels) * v_ml
            p_wall = run.device.wall_compliance_kpa * (vol / run.device.max_volume_ml) ** 3
            p = p_need + p_wall
            p_max = run.device.max_pressure_kpa
            if p > p_max:
                # at the device limit the syringe holds P_max: the balloon still grows into the wall
                # voxels that yield below it (of this step's k cheapest); it stops when none is left
                # or when holding the raised fragment would need more than P_max
                below = part[res[part] + p_wall <= p_max]
                p_hold_ok = not (lift.alpha > 0 and run.contact_area_mm2 > 0 and p_need > float(res[part].max()))
                if below.size == 0 or not p_hold_ok or not params.hold_at_pressure_limit:
                    run.active, run.stop_reason = False, "device pressure limit"
                    run.max_pressure_kpa = max(run.max_pressure_kpa, p_max)
                    run.pv_curve.append((run.volume_ml, float(p_max)))
                    continue
                part, k = below, int(below.size)
                vol = (np.count_nonzero(occ == run.index + 1) + k - run.initial_voxels) * v_ml
                p = p_max
            new = flat[part]
            occ.ravel()[new] = run.index + 1
            new = np.concatenate([new, _enclosed(model, occ, run, envs[run.index])])
            unplaced += _compact(model, comp, occ, new, run)
            run.pv_curve.append((float(vol), float(p)))
            run.max_pressure_kpa = max(run.max_pressure_kpa, p)
            rec[f"v{run.index}"] = vol
            rec[f"p{run.index}"] = p
            if vol >= run.device.max_volume_ml - 1e-9:
                run.active, run.stop_reason = False, "device volume limit"
            elif _side_wall_contact_mm2(model, occ, run, envs[run.index]) >= params.stop_on_cortex_contact_mm2:
                run.active, run.stop_reason = False, "balloon touches the cortical wall"
        history.append(rec)
        if progress is not None:
            progress(sum(r.volume_ml for r in runs))
        if step > 100000:  # pragma: no cover - safety
            break
    sealed = seal_exits(model, comp.rho0, comp.kappa_rho, params, occ)
    mass1 = float(model.rho.sum())
    vv = model.voxel_volume_ml
    return InflationResult(balloons=runs, occ=occ, mass_before_mg=mass0 * vv, mass_after_mg=mass1 * vv,
                           unplaced_mass_mg=unplaced * vv, alpha=lift.alpha,
                           lift_force_n=lift_force, steps=step, history=history)


def _contact_owner(model: VertebraModel, occ: np.ndarray, lift: LiftState, reach_vox: float) -> np.ndarray:
    """Per footprint column: the balloon (1-based) bearing on the fragment — its top within
    ``reach_vox`` below the fragment bottom (the bone in between transmits the load); 0 where none.

    The gap is measured from the balloon voxel's top face to the fracture line itself (continuous,
    ``lift.kf_frac``), not to the row interface: a balloon voxel s rows below the fragment's bottom
    row is in reach when (s + kf_frac − ½)·h ≤ reach (at least the row right under the fragment)."""
    ii, jj, kk = lift.contact_rows()
    owner = np.zeros(ii.size, np.int8)
    if lift.kf_frac is not None:
        s_max = np.maximum(np.floor(reach_vox + 0.5 - lift.kf_frac[ii, jj] + 1e-9), 0).astype(int)
    else:
        s_max = np.full(ii.size, max(1, int(round(reach_vox))))
    for s in range(int(s_max.max(initial=0)) + 1):
        k = kk - s
        ok = (owner == 0) & (k >= 0) & (k < model.shape[2]) & (s <= s_max)
        if not ok.any():
            break
        idx = np.flatnonzero(ok)
        owner[idx] = occ[ii[idx], jj[idx], k[idx]]
    return owner


def _enclosed(model: VertebraModel, occ: np.ndarray, run: BalloonRun, envbox) -> np.ndarray:
    """Bone voxels fully enclosed by the balloon join it (their mass is pushed out)."""
    box, _ = _active_box(occ, run, envbox)
    ob = occ[box]
    B = ob == run.index + 1
    holes = ndi.binary_fill_holes(B) & ~B & (ob == 0) & _ENTERABLE[model.tissue[box]]
    if not holes.any():
        return np.zeros(0, np.int64)
    loc = np.argwhere(holes) + np.array([s.start for s in box])
    flat = np.ravel_multi_index(loc.T, model.shape)
    occ.ravel()[flat] = run.index + 1
    return flat


def seal_exits(model: VertebraModel, rho0: np.ndarray, kappa_rho: float, params: SimParams,
               occ: np.ndarray | None = None) -> int:
    """Exits the balloon closes. Veins (basivertebral/segmental foramina, B/S) within
    ``seal_reach_mm`` of the inflated balloon collapse: the balloon pressure (≥ 10² kPa) exceeds
    the venous pressure (~1 kPa) by two orders of magnitude, so the vessel is squeezed shut and the
    compacted layer is pressed against it. Any exit (B/S, cortical cracks C, endplate breaks D) into
    which compacted bone was actually pressed (density risen by at least ``seal_fraction`` of the
    compaction limit) is filled. A crack is not closed by pressure alone (the balloon pushes its
    lips apart rather than shut). Sealed voxels become ``Tissue.SEALED``: porous with the
    compacted-shell density ``kappa_rho`` (stored as ``model.geometry['seal_rho_mg_cm3']``), which
    sets their permeability in the cement model. Returns the number of sealed voxels."""
    t = model.tissue
    ex = np.isin(t, [int(Tissue.BASIVERTEBRAL), int(Tissue.SEGMENTAL_EXIT), int(Tissue.CORTICAL_DEFECT),
                     int(Tissue.ENDPLATE_BREAK)])
    s = ex & (model.rho - rho0 >= params.seal_fraction * kappa_rho)
    ex = np.isin(t, [int(Tissue.BASIVERTEBRAL), int(Tissue.SEGMENTAL_EXIT)])
    if occ is not None and ex.any() and np.any(occ > 0):
        n = max(1, int(round(params.seal_reach_mm / model.spacing_mm)))
        idx = np.argwhere(ex)
        lo = np.maximum(idx.min(axis=0) - n, 0)
        hi = np.minimum(idx.max(axis=0) + n + 1, np.asarray(t.shape))
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        ob = occ[box] > 0
        if ob.any():
            near = ndi.distance_transform_edt(~ob) * model.spacing_mm <= params.seal_reach_mm + 1e-6
            s[box] |= ex[box] & near
    t[s] = Tissue.SEALED
    model.geometry["seal_rho_mg_cm3"] = float(kappa_rho)
    return int(s.sum())


def _kth(res: np.ndarray, k: int) -> float:
    k = min(k, res.size)
    return float(np.partition(res, k - 1)[k - 1])


def _active_box(occ: np.ndarray, run: BalloonRun, envbox) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """The envelope box cut down to the balloon's bounding box ± 2 voxels (and the envelope in it)."""
    box, env = envbox
    B = occ[box] == run.index + 1
    if not B.any():
        return box, env
    idx = np.argwhere(B)
    lo = np.maximum(idx.min(axis=0) - 2, 0)
    hi = np.minimum(idx.max(axis=0) + 3, np.asarray(B.shape))
    sub = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    gbox = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
    return gbox, env[sub]


def _candidates(model: VertebraModel, comp: _Compaction, occ: np.ndarray, run: BalloonRun, envbox
                ) -> tuple[np.ndarray, np.ndarray]:
    box, env = _active_box(occ, run, envbox)
    ob = occ[box]
    B = ob == run.index + 1
    nbc = ndi.convolve(B.astype(np.uint8), _STRUCT6.astype(np.uint8), mode="constant")
    c = (nbc > 0) & ~B & env & (ob == 0) & _ENTERABLE[model.tissue[box]]
    loc = np.argwhere(c)
    if loc.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    nb = nbc[c]
    off = np.array([s.start for s in box])
    flat = np.ravel_multi_index((loc + off).T, model.shape)
    res = _resistance_kpa(model, comp, occ, flat, run)
    res = _patch_average(res, loc, model.tissue.ravel()[flat], B.shape, comp.patch_sigma_vox)
    # membrane/geometry factor: a voxel the balloon bears on from n faces needs 2/(1+n) of the
    # flat-front pressure (a flat front, n = 1, needs exactly σ_y)
    return flat, res * (2.0 / (1.0 + nb))


_PATCH_TISSUES = np.zeros(256, bool)
for _t in (Tissue.TRABECULAR, Tissue.FRACTURE):
    _PATCH_TISSUES[int(_t)] = True


def _patch_average(res: np.ndarray, loc: np.ndarray, tissue: np.ndarray, shape, sigma_vox: float) -> np.ndarray:
    """Crush resistance of the balloon wall at the continuum scale: each trabecular candidate's
    resistance is replaced by the Gaussian-weighted mean over the trabecular wall candidates of a
    fixed physical patch (FWHM ``SimParams.crush_patch_mm``), not by its own voxel. A continuum
    strength is defined only over several trabecular spacings (Harrigan 1988: within 3–5 trabeculae
    the continuum assumption is suspect), so a single voxel of dense bone — whose size depends on
    the grid — must not set the balloon pressure. Voids (0), cortex/endplates (their own shell) and
    layers that cannot be pushed (inf) keep their own value and are not averaged in."""
    if sigma_vox <= 0 or res.size == 0:
        return res
    ok = _PATCH_TISSUES[tissue] & np.isfinite(res) & (res > 0)
    if ok.sum() < 2:
        return res
    lo = loc[ok].min(axis=0)
    hi = loc[ok].max(axis=0) + 1
    pad = int(np.ceil(2.0 * sigma_vox))
    lo = np.maximum(lo - pad, 0)
    hi = np.minimum(hi + pad, np.asarray(shape))
    shp = tuple(int(x) for x in hi - lo)
    rel = tuple((loc[ok] - lo).T)
    num = np.zeros(shp, np.float32)
    den = np.zeros(shp, np.float32)
    num[rel] = res[ok]
    den[rel] = 1.0
    num = ndi.gaussian_filter(num, sigma_vox, truncate=2.0, mode="constant")
    den = ndi.gaussian_filter(den, sigma_vox, truncate=2.0, mode="constant")
    out = res.copy()
    out[ok] = num[rel].astype(float) / np.maximum(den[rel].astype(float), 1e-12)
    return out


def _side_wall_contact_mm2(model: VertebraModel, occ: np.ndarray, run: BalloonRun, envbox) -> float:
    box, _ = _active_box(occ, run, envbox)      # the balloon's bounding box ± 2 voxels holds its 1-voxel shell
    B = occ[box] == run.index + 1
    nb = ndi.binary_dilation(B, structure=_STRUCT6) & ~B
    wall = _SIDE_WALL[model.tissue[box]] & (model.rho[box] > 0)
    # the posterior wall next to the working cannula does not count (the balloon starts there)
    j0 = box[1].start
    jj = np.arange(j0, j0 + wall.shape[1])[None, :, None]
    wall &= jj > model.geometry["j_post"] + 0.25 * model.geometry["depth_mm"] / model.spacing_mm
    return float(np.count_nonzero(nb & wall) * model.spacing_mm ** 2)
