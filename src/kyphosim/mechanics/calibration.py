"""HU → equivalent mineral density (mg/cm³ K2HPO4) calibrations.

Three forms, all returning mg/cm³:

* ``linear``:   ρ = c0 + c1·HU
* ``quadratic``: ρ = c0 + c1·HU + c2·HU²
* ``two-component`` (the Ogo internal/phantomless calibration, Michalski et al. 2020, as written in
  spineFE ``*_calibration.txt`` files):
  μ/ρ = s_u·HU + i_u, ρ_arch = s_ρ·HU + i_ρ (g/cm³),
  ρ_K2HPO4 = 1000·ρ_arch·(μ/ρ − μ_trig)/(μ_K2HPO4 − μ_trig).

:func:`load_calibration` reads a spineFE/Ogo text file, a JSON/YAML mapping
(``{"slope": .., "intercept": .., "quadratic": ..}``) or a plain text file of 2–3 numbers
(intercept slope [quadratic]). :data:`GENERIC` is the default for HU images: the two-component curve
of the spineFE reference scan (VerSe sub-verse004, effective energy 97 keV) — an *approximate*
stand-in when a scan's own calibration is unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kyphosim.errors import InputError

__all__ = ["Calibration", "GENERIC", "load_calibration", "parse_ogo_calibration"]


@dataclass(frozen=True)
class Calibration:
    """An HU → mg/cm³ (K2HPO4-equivalent) calibration."""

    kind: str
    coefficients: dict[str, float]
    source: str = ""
    approximate: bool = False
    notes: list[str] = field(default_factory=list)

    def density_mg_cm3(self, hu: np.ndarray) -> np.ndarray:
        h = np.asarray(hu, dtype=np.float64)
        c = self.coefficients
        if self.kind == "linear":
            return c["intercept"] + c["slope"] * h
        if self.kind == "quadratic":
            return c["intercept"] + c["slope"] * h + c["quadratic"] * h * h
        if self.kind == "two-component":
            up = c["hu_to_mu_slope"] * h + c["hu_to_mu_intercept"]
            arch = c["hu_to_density_slope"] * h + c["hu_to_density_intercept"]
            frac = (up - c["mu_triglyceride"]) / (c["mu_k2hpo4"] - c["mu_triglyceride"])
            return 1000.0 * arch * frac
        raise InputError(f"unknown calibration kind {self.kind!r}")

    def summary(self) -> dict:
        return {"kind": self.kind, "coefficients": dict(self.coefficients), "source": self.source,
                "approximate": self.approximate, "notes": list(self.notes)}


_OGO_KEYS = {
    "hu_to_mu_slope": r"HU-u/p Slope",
    "hu_to_mu_intercept": r"HU-u/p Y-Intercept",
    "hu_to_density_slope": r"HU-Material Density Slope",
    "hu_to_density_intercept": r"HU-Material Density Y-Intercept",
    "mu_k2hpo4": r"K2HPO4",
    "mu_triglyceride": r"Triglyceride",
}


def parse_ogo_calibration(text: str, source: str = "") -> Calibration:
    """Parse an Ogo/spineFE internal-calibration text file (``*_calibration.txt``)."""
    vals: dict[str, float] = {}
    for key, label in _OGO_KEYS.items():
        m = re.search(r"^\s*" + re.escape(label) + r"(?: \[cm2/g\])?\s*[: ]\s*([-+0-9.eE]+)\s*$", text, flags=re.M)
        if m is None:
            raise InputError(f"{source or 'calibration'}: missing '{label}' in the Ogo calibration text")
        vals[key] = float(m.group(1))
    if vals["mu_k2hpo4"] == vals["mu_triglyceride"]:
        raise InputError(f"{source}: K2HPO4 and triglyceride mass attenuation are equal")
    energy = re.search(r"Energy \[keV\]:\s*([-+0-9.eE]+)", text)
    notes = [f"effective energy {float(energy.group(1)):g} keV"] if energy else []
    return Calibration("two-component", vals, source=source or "Ogo internal calibration", notes=notes)


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file (spineFE/Ogo text, JSON/YAML mapping, or 2–3 plain numbers)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"calibration file not found: {p}")
    text = p.read_text(errors="replace")
    if "HU-u/p Slope" in text:
        return parse_ogo_calibration(text, source=p.name)
    data = None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{p.name}: invalid JSON ({exc})") from None
    elif p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    if isinstance(data, dict):
        try:
            slope = float(data["slope"])
            icpt = float(data.get("intercept", 0.0))
            quad = float(data.get("quadratic", 0.0))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{p.name}: needs numeric 'slope' (and 'intercept', optional 'quadratic')") from None
        return _poly(icpt, slope, quad, p.name)
    nums = re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)
    if len(nums) in (2, 3):
        v = [float(x) for x in nums]
        return _poly(v[0], v[1], v[2] if len(v) == 3 else 0.0, p.name)
    raise InputError(f"{p.name}: not a recognised calibration (Ogo text, JSON/YAML with slope/intercept, "
                     f"or 'intercept slope [quadratic]')")


def _poly(intercept: float, slope: float, quadratic: float, source: str) -> Calibration:
    if slope <= 0 and quadratic == 0:
        raise InputError(f"{source}: calibration slope must be positive (density rises with HU)")
    if quadratic:
        return Calibration("quadratic", {"intercept": intercept, "slope": slope, "quadratic": quadratic}, source)
    return Calibration("linear", {"intercept": intercept, "slope": slope}, source)


#: default for HU images without their own calibration: the two-component internal calibration of the
#: spineFE reference scan (sub-verse004_0000_calibration.txt, Ogo, effective energy 97 keV). About
#: 34 mg/cm³ at 0 HU, 146 at 200 HU, 917 at 1000 HU. Approximate for any other scanner/protocol.
GENERIC = Calibration(
    "two-component",
    {"hu_to_mu_slope": 0.000016, "hu_to_mu_intercept": 0.171240, "hu_to_density_slope": 0.000893,
     "hu_to_density_intercept": 0.968731, "mu_k2hpo4": 0.205, "mu_triglyceride": 0.170},
    source="generic: spineFE reference internal calibration (VerSe sub-verse004, 97 keV)",
    approximate=True,
    notes=["approximate: not this scan's own calibration; HU depend on scanner, kVp and contrast "
           "(clinical-reference §2 calibration notes)"],
)
