"""Failure-load estimate from a linear analysis: a critical-volume strain criterion (Pistoia type).

In a linear model every strain scales with the applied load. For each bone element the load factor
at which it reaches yield is

    λ_e = min( ε_yc / max(−ε_3, 0),  ε_yt / max(ε_1, 0) )

with ε_1 ≥ ε_2 ≥ ε_3 the principal strains at the element centre and ε_yc, ε_yt the compressive and
tensile yield strains of vertebral trabecular bone (Kopperdahl & Keaveny 1998: 0.84 % / 0.78 %,
clinical-reference §5, tagged [U]). The structure is taken to fail when a critical fraction
``f_c`` of the bone volume has yielded (Pistoia et al. 2002: 2 % of the tissue beyond the critical
strain), i.e. at the load factor λ* = the ``f_c`` quantile of λ_e, so

    F_fail = λ* · |F_reaction|.

Voxels of negligible modulus (non-positive density) and PMMA are excluded from the volume.
This is an estimate; it is not a nonlinear (plastic) analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FailureCriterion", "principal_strains", "equivalent_strain", "failure_load"]


@dataclass(frozen=True)
class FailureCriterion:
    """Parameters of the critical-volume criterion (strains in mm/mm, fraction in 0–1)."""

    yield_strain_compression: float = 0.0084
    yield_strain_tension: float = 0.0078
    critical_volume_fraction: float = 0.02
    name: str = "critical-volume principal strain (Pistoia-type; Kopperdahl & Keaveny yield strains)"


def _tensor(voigt: np.ndarray) -> np.ndarray:
    """(n, 6) engineering Voigt strains (xx, yy, zz, γyz, γxz, γxy) → (n, 3, 3) tensors."""
    e = np.asarray(voigt, float)
    T = np.empty((e.shape[0], 3, 3))
    T[:, 0, 0], T[:, 1, 1], T[:, 2, 2] = e[:, 0], e[:, 1], e[:, 2]
    T[:, 1, 2] = T[:, 2, 1] = 0.5 * e[:, 3]
    T[:, 0, 2] = T[:, 2, 0] = 0.5 * e[:, 4]
    T[:, 0, 1] = T[:, 1, 0] = 0.5 * e[:, 5]
    return T


def principal_strains(voigt: np.ndarray) -> np.ndarray:
    """Principal strains (n, 3), descending (ε1 ≥ ε2 ≥ ε3)."""
    if len(voigt) == 0:
        return np.zeros((0, 3))
    return np.linalg.eigvalsh(_tensor(voigt))[:, ::-1]


def equivalent_strain(voigt: np.ndarray) -> np.ndarray:
    """von Mises equivalent strain √(2/3 · e':e') (deviatoric tensor strain), mm/mm."""
    e = np.asarray(voigt, float)
    tr = (e[:, 0] + e[:, 1] + e[:, 2]) / 3.0
    d = e[:, :3] - tr[:, None]
    s = (d ** 2).sum(axis=1) + 0.5 * (e[:, 3] ** 2 + e[:, 4] ** 2 + e[:, 5] ** 2)
    return np.sqrt(2.0 / 3.0 * s)


def failure_load(reaction_force_n: float, voigt_strain: np.ndarray, volume_weight: np.ndarray,
                 criterion: FailureCriterion = FailureCriterion()) -> tuple[float, float, np.ndarray]:
    """Failure load (N) by the critical-volume criterion.

    Parameters
    ----------
    reaction_force_n : float
        Reaction force of the linear analysis, N (its magnitude is used).
    voigt_strain : ndarray (n, 6)
        Centre strains of the candidate (bone) elements for that load.
    volume_weight : ndarray (n,)
        Element volumes (mm³) of the candidates.

    Returns
    -------
    failure_load_n, load_factor, element_load_factors
    """
    if voigt_strain.shape[0] == 0:
        return float("nan"), float("nan"), np.zeros(0)
    p = principal_strains(voigt_strain)
    comp = np.maximum(-p[:, 2], 0.0)
    tens = np.maximum(p[:, 0], 0.0)
    with np.errstate(divide="ignore"):
        lam = np.minimum(np.where(comp > 0, criterion.yield_strain_compression / comp, np.inf),
                         np.where(tens > 0, criterion.yield_strain_tension / tens, np.inf))
    order = np.argsort(lam)
    w = np.asarray(volume_weight, float)[order]
    cum = np.cumsum(w) / w.sum()
    idx = int(np.searchsorted(cum, criterion.critical_volume_fraction))
    idx = min(idx, lam.size - 1)
    lam_star = float(lam[order][idx])
    return lam_star * abs(float(reaction_force_n)), lam_star, lam
