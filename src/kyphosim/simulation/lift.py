"""Endplate lift (reduction of the depressed fragment) and its partial loss at deflation.

The fragment is the body above the fracture line (``FractureInfo.kf``) over the depressed
footprint. Restoration is parameterised by α ∈ [0, 1]: every footprint column is raised by
α·deficit (a proportional reduction, i.e. a rigid rotation about the posterior hinge for a wedge).
The lift works against the reduction resistance

    F_res(α) = F_preload + h·σ_y(ρ_band)·A_footprint + k_seg·ū(α)        [N]

* F_preload — physiological preload, 110 N (cadaver studies, clinical-reference §3/§4a) [C];
* healed fraction h (0 acute: broken interface; 1 chronic: a sclerotic healed band must be broken
  again over the whole footprint), σ_y from the band density (Kopperdahl law) [S];
* k_seg — extension stiffness of the motion segment, M_θ (N·m/°) converted at a lever arm equal
  to the body depth D: k = M_θ·(180/π)/D² [U];
* ū(α) = α·mean deficit (mm).

The balloon (or the cement) lifts when Σ P·A_contact ≥ F_res. Columns move by whole voxels; the
opened rows become ``Tissue.GAP`` (empty, no bone). At deflation a fraction
f = 0.46·min(1, F_preload/110 N) of the gained lift is lost ([D] from the sleeve study: 56 % vs 30 %
restoration under 110 N, clinical-reference §4a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kyphosim.simulation.model import Tissue, VertebraModel
from kyphosim.simulation.params import SimParams, crush_strength_mpa

__all__ = ["LiftState", "make_lift", "shift_columns"]


@dataclass
class LiftState:
    footprint: np.ndarray
    deficit_vox: np.ndarray
    kf: np.ndarray
    shift: np.ndarray
    alpha: float
    preload_n: float
    k_n_per_mm: float
    heal_force_n: float
    spacing_mm: float
    max_deficit_vox: float
    mean_deficit_vox: float
    area_mm2: float
    kf_frac: np.ndarray | None = None   # zf − kf ∈ [0, 1): where the fracture line lies in row kf

    @property
    def active(self) -> bool:
        return bool(self.footprint.any()) and self.max_deficit_vox >= 1.0

    def mean_lift_mm(self, alpha: float | None = None) -> float:
        a = self.alpha if alpha is None else alpha
        return a * self.mean_deficit_vox * self.spacing_mm

    def force_needed_n(self, alpha: float | None = None) -> float:
        return self.preload_n + self.heal_force_n + self.k_n_per_mm * self.mean_lift_mm(alpha)

    def target_shift(self, alpha: float) -> np.ndarray:
        return np.where(self.footprint, np.floor(alpha * self.deficit_vox + 0.5), 0).astype(int)

    def alpha_step(self) -> float:
        return 1.0 / max(self.max_deficit_vox, 1.0)

    def contact_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, k) of the voxels just below the fragment bottom in every footprint column."""
        ii, jj = np.nonzero(self.footprint)
        kk = self.kf[ii, jj] + self.shift[ii, jj]
        return ii, jj, kk


def make_lift(model: VertebraModel, params: SimParams) -> LiftState:
    f = model.fracture
    h = model.spacing_mm
    depth_m = model.geometry["depth_mm"] / 1000.0
    k_n_per_m = params.segment_extension_stiffness_nm_deg * (180.0 / np.pi) / max(depth_m, 1e-3) ** 2
    area = float(f.footprint.sum() * h * h)
    sig_band = float(crush_strength_mpa(f.band_rho_mg_cm3 / 1000.0, params.strength_law))
    heal_force = f.heal_fraction * sig_band * area
    d = f.deficit_vox[f.footprint] if f.footprint.any() else np.zeros(1)
    return LiftState(footprint=f.footprint.copy(), deficit_vox=f.deficit_vox.copy(), kf=f.kf.copy(),
                     shift=np.zeros(f.footprint.shape, int), alpha=0.0, preload_n=params.preload_n,
                     k_n_per_mm=k_n_per_m / 1000.0, heal_force_n=heal_force, spacing_mm=h,
                     max_deficit_vox=float(d.max()), mean_deficit_vox=float(d.mean()), area_mm2=area,
                     kf_frac=None if f.zf is None else np.clip(f.zf - f.kf, 0.0, 1.0))


def shift_columns(arrays: dict[str, np.ndarray], fills: dict[str, object], lift: LiftState,
                  new_shift: np.ndarray, *, mass_key: str = "rho") -> None:
    """Move the fragment columns to ``new_shift`` (voxels), one voxel at a time, in place.

    Raising a column inserts a row ``fills`` at kf+1 (everything above moves up; the top row leaves
    the grid). Lowering removes row kf+1 (its bone mass, if any, is added to row kf so mass is
    conserved) and everything above moves down; the top row gets ``fills``.
    """
    nk = next(iter(arrays.values())).shape[2]
    K = np.arange(nk)[None, None, :]
    kf = lift.kf[:, :, None]
    while True:
        up = new_shift > lift.shift
        dn = new_shift < lift.shift
        if not up.any() and not dn.any():
            break
        if up.any():
            M = up[:, :, None] & (K >= kf + 2)
            ins = up[:, :, None] & (K == kf + 1)
            for name, a in arrays.items():
                rolled = np.roll(a, 1, axis=2)
                a[M] = rolled[M]
                a[ins] = fills[name]
            lift.shift[up] += 1
        if dn.any():
            rem = dn[:, :, None] & (K == kf + 1)
            below = dn[:, :, None] & (K == kf)
            if mass_key in arrays:
                arrays[mass_key][below] += arrays[mass_key][rem]
            M = dn[:, :, None] & (K >= kf + 1) & (K < nk - 1)
            topr = dn[:, :, None] & (K == nk - 1)
            for name, a in arrays.items():
                rolled = np.roll(a, -1, axis=2)
                a[M] = rolled[M]
                a[topr] = fills.get(name + "_top", fills[name]) if name != mass_key else 0
            lift.shift[dn] -= 1


def gap_fills(model: VertebraModel) -> dict[str, object]:
    """Values written into opened rows: an empty gap (blood, ~40 HU, no bone)."""
    return {"rho": 0.0, "tissue": int(Tissue.GAP), "body": True, "hu": 40.0, "vert": True,
            "tissue_top": int(Tissue.SOFT), "body_top": False, "vert_top": False, "hu_top": 0.0}
