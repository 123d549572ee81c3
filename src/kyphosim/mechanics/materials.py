"""Density → modulus laws and fixed materials (PMMA) for voxel finite elements.

Units: density ρ in g/cm³ (the calibrated image is mg/cm³ K2HPO4-equivalent: divide by 1000),
Young's modulus E in MPa. Sources: ``/work/shared/docs/clinical-reference.md`` §5 (tags [S] =
secondary transcription in public FE code, see ``docs/mechanics.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kyphosim.errors import InputError

__all__ = ["DensityLaw", "LAWS", "get_law", "MATERIAL_CODES", "PMMA_MODULUS_MPA", "POISSON_RATIO",
           "NEGLIGIBLE_MODULUS_MPA"]

#: material codes stored per element
MATERIAL_CODES: dict[str, int] = {"bone": 1, "cap_inferior": 2, "cap_superior": 3, "cement": 4}

#: PMMA end caps and cement, MPa (the CT-FE compression set-up of the issue / Ogo ``pmma_E``)
PMMA_MODULUS_MPA = 2500.0
#: Poisson's ratio of every material (commonly 0.3, clinical-reference §5 [S])
POISSON_RATIO = 0.3
#: modulus given to bone voxels of non-positive density (or negative law values), MPa: they stay in
#: the mesh (no silent holes) but carry no load (same value as Ogo's material_laws for ρ < 0)
NEGLIGIBLE_MODULUS_MPA = 1e-4


@dataclass(frozen=True)
class DensityLaw:
    """E = a + b·ρ (``kind='linear'``) or E = a·ρ^b (``kind='power'``), ρ in g/cm³, E in MPa."""

    name: str
    kind: str
    a: float
    b: float
    density: str
    source: str

    def modulus_mpa(self, density_g_cm3: np.ndarray) -> np.ndarray:
        """Young's modulus (MPa); non-positive density or modulus → :data:`NEGLIGIBLE_MODULUS_MPA`."""
        rho = np.asarray(density_g_cm3, dtype=np.float64)
        pos = rho > 0
        safe = np.where(pos, rho, 0.0)
        if self.kind == "power":
            E = self.a * safe ** self.b
        else:
            E = self.a + self.b * safe
        E = np.where(pos & np.isfinite(E), E, NEGLIGIBLE_MODULUS_MPA)
        return np.maximum(E, NEGLIGIBLE_MODULUS_MPA)

    def formula(self) -> str:
        if self.kind == "power":
            return f"E = {self.a:g}·ρ^{self.b:g} MPa (ρ g/cm³, {self.density})"
        return f"E = {self.a:g} + {self.b:g}·ρ MPa (ρ g/cm³, {self.density})"


LAWS: dict[str, DensityLaw] = {
    "kopperdahl": DensityLaw("kopperdahl", "power", 2980.0, 1.05, "QCT-equivalent density",
                             "Kopperdahl, Morgan & Keaveny 2002 power-law form as coded in Ogo material_laws "
                             "(clinical-reference §5 [S]); the spineFE-benchmark linear models"),
    "kopperdahl-linear": DensityLaw("kopperdahl-linear", "linear", -34.7, 3230.0, "QCT-equivalent density",
                                    "Kopperdahl et al. 2002 / Crawford et al. 2003 linear voxel law "
                                    "(clinical-reference §5 [S])"),
    "morgan": DensityLaw("morgan", "power", 4730.0, 1.56, "apparent density",
                         "Morgan, Bayraktar & Keaveny 2003, vertebral trabecular bone (clinical-reference §5 [S])"),
    "cortical": DensityLaw("cortical", "power", 10500.0, 2.29, "QCT-equivalent density",
                           "Ogo default law for its cortical material bins (E = 10500·ρ^2.29) [S]"),
}


def get_law(name: str) -> DensityLaw:
    """A law by name (``kopperdahl``, ``kopperdahl-linear``, ``morgan``, ``cortical``)."""
    try:
        return LAWS[name.lower()]
    except KeyError:
        raise InputError(f"unknown material law {name!r} (choose from {', '.join(LAWS)})") from None
