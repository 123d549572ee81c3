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
           "NEGLIGIBLE_MODULUS_MPA", "YieldLaw", "YIELD_LAWS", "get_yield_law", "PMMA_YIELD_COMPRESSION_MPA",
           "PMMA_YIELD_TENSION_MPA", "TENSION_COMPRESSION_RATIO"]

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


# ----------------------------------------------------------------------------------- yield (nonlinear pushover)
#: PMMA (caps, cement) compressive yield stress, MPa: the spineFE/Ogo nonlinear pipeline's 70 MPa [S]
#: (= the ISO 5833 minimum compressive strength [U]); clinical-reference §5
PMMA_YIELD_COMPRESSION_MPA = 70.0
#: PMMA tensile yield stress, MPa: the ISO 5833 minimum bending strength, 50 MPa [U] (clinical-reference §5)
PMMA_YIELD_TENSION_MPA = 50.0
#: tensile / compressive yield ratio of vertebral trabecular bone: the ratio of the yield strains,
#: 0.78 % / 0.84 % (Kopperdahl & Keaveny 1998, same modulus in tension and compression; §5 [U])
TENSION_COMPRESSION_RATIO = 0.78 / 0.84
#: lowest yield stress given to bone of positive density when a linear law goes negative, MPa
MIN_YIELD_MPA = 0.01


@dataclass(frozen=True)
class YieldLaw:
    """Compressive yield stress of bone: σ_yc = a·ρ^b (``power``), a + b·ρ (``linear``) or E·a
    (``strain``: a density-independent yield strain a); tensile σ_yt = ``tension_ratio``·σ_yc. MPa, ρ g/cm³."""

    name: str
    kind: str
    a: float
    b: float
    tension_ratio: float
    source: str

    def compression_mpa(self, density_g_cm3: np.ndarray, modulus_mpa: np.ndarray) -> np.ndarray:
        """σ_yc (MPa); ``inf`` where the modulus is negligible (those voxels carry nothing and never yield)."""
        rho = np.asarray(density_g_cm3, dtype=np.float64)
        E = np.asarray(modulus_mpa, dtype=np.float64)
        safe = np.where(rho > 0, rho, 0.0)
        if self.kind == "power":
            sy = self.a * safe ** self.b
        elif self.kind == "linear":
            sy = self.a + self.b * safe
        else:
            sy = self.a * E
        sy = np.maximum(sy, MIN_YIELD_MPA)
        return np.where(E > 1.5 * NEGLIGIBLE_MODULUS_MPA, sy, np.inf)

    def formula(self) -> str:
        if self.kind == "power":
            f = f"σ_yc = {self.a:g}·ρ^{self.b:g} MPa"
        elif self.kind == "linear":
            f = f"σ_yc = {self.a:g} + {self.b:g}·ρ MPa"
        else:
            f = f"σ_yc = E·{self.a:g}"
        return f"{f}, σ_yt = {self.tension_ratio:.3g}·σ_yc"


YIELD_LAWS: dict[str, YieldLaw] = {
    "kopperdahl": YieldLaw("kopperdahl", "power", 37.4, 1.39, TENSION_COMPRESSION_RATIO,
                           "Kopperdahl et al. 2002 power-law pair (E = 2980·ρ^1.05, σ_yc = 37.4·ρ^1.39), "
                           "clinical-reference §5 [S]; tension ratio Kopperdahl & Keaveny 1998 [U]"),
    "kopperdahl-linear": YieldLaw("kopperdahl-linear", "linear", -0.750, 24.9, TENSION_COMPRESSION_RATIO,
                                  "Kopperdahl et al. 2002 linear yield law, clinical-reference §5 [S]"),
    "morgan": YieldLaw("morgan", "strain", 0.0077, 0.0, 0.70 / 0.77,
                       "Morgan & Keaveny 2001 vertebral yield strains 0.77 % / 0.70 % (clinical-reference §5 [U])"),
    "cortical": YieldLaw("cortical", "strain", 0.0081, 0.0, 0.33 / 0.81,
                         "Bayraktar 2004 tissue yield strains 0.81 % / 0.33 % (clinical-reference §5 [U])"),
}


def get_yield_law(name: str) -> YieldLaw:
    """The yield law paired with a density→modulus law (same names as :data:`LAWS`)."""
    try:
        return YIELD_LAWS[name.lower()]
    except KeyError:
        raise InputError(f"no yield law for material law {name!r} (choose from {', '.join(YIELD_LAWS)})") from None
