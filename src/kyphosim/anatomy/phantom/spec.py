"""Phantom specification: which levels, which fractures, bone density, grid and seed.

The syntax of a fracture on the command line is ``LEVEL:TYPE:GRADE[:acute|:chronic][:cleft]
[:cleft=gas|fluid][:retropulsion=MM]``, e.g. ``L1:wedge:2``, ``T12:crush:3:chronic:cleft``,
``L2:biconcave:1:acute:retropulsion=3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, asdict
from typing import Any, Sequence

from kyphosim.errors import InputError
from kyphosim.imaging.labels import parse_levels, vertebra_id, vertebra_name

__all__ = ["FractureSpec", "PhantomSpec", "parse_fracture", "parse_spacing", "demo_case",
           "FRACTURE_TYPES", "GENANT_BANDS_PCT", "SUPPORTED_LEVELS"]

FRACTURE_TYPES = ("wedge", "biconcave", "crush")
#: Height-loss band drawn for each Genant grade, % (Genant 1993; clinical-reference §1). The bands
#: stay 0.5–1 % inside the grade limits so the drawn deformity always grades as asked.
GENANT_BANDS_PCT: dict[int, tuple[float, float]] = {1: (20.5, 24.5), 2: (26.0, 39.0), 3: (42.0, 58.0)}
#: VerSe ids the phantom can build: T1 (8) … L5 (24)
SUPPORTED_LEVELS = tuple(range(8, 25))
_VALID_AXCODES = ({"L", "R"}, {"P", "A"}, {"I", "S"})


@dataclass
class FractureSpec:
    """One vertebral compression fracture.

    Parameters
    ----------
    level : str or int
        Vertebra name (``"L1"``) or VerSe id.
    type : {"wedge", "biconcave", "crush"}
        Genant morphologic type: anterior, middle or whole-body height loss.
    grade : {1, 2, 3}
        Genant semi-quantitative grade; the height loss is drawn (seeded) inside the grade's band.
    age : {"acute", "chronic"}
        Acute: a compaction band of condensed trabeculae under the depressed endplate.
        Chronic: sclerotic bands (higher mineral density) and a thicker endplate near the fracture.
    cleft : bool
        An intravertebral cleft (Kümmell) under the depressed endplate.
    cleft_content : {"gas", "fluid"}
        What the cleft holds (gas ≈ −900 HU, fluid ≈ +15 HU).
    retropulsion_mm : float
        Posterior-wall bulge into the spinal canal, mm (0–5), as measured by the bulge convention.
    """

    level: str = "L1"
    type: str = "wedge"
    grade: int = 2
    age: str = "acute"
    cleft: bool = False
    retropulsion_mm: float = 0.0
    cleft_content: str = "gas"

    def __post_init__(self) -> None:
        try:
            vid = vertebra_id(self.level)
        except ValueError as exc:
            raise InputError(f"fracture level: {exc}") from None
        if vid not in SUPPORTED_LEVELS:
            raise InputError(f"fracture level {self.level!r}: the phantom builds T1–L5 only")
        self.level = vertebra_name(vid)
        t = str(self.type).strip().lower()
        if t not in FRACTURE_TYPES:
            raise InputError(f"fracture type {self.type!r} is not one of {', '.join(FRACTURE_TYPES)}")
        self.type = t
        try:
            g = int(self.grade)
        except (TypeError, ValueError):
            raise InputError(f"fracture grade {self.grade!r} must be 1, 2 or 3 (Genant)") from None
        if g not in (1, 2, 3) or (isinstance(self.grade, float) and self.grade != g):
            raise InputError(f"fracture grade {self.grade!r} must be 1, 2 or 3 (Genant)")
        self.grade = g
        a = str(self.age).strip().lower()
        if a not in ("acute", "chronic"):
            raise InputError(f"fracture age {self.age!r} must be 'acute' or 'chronic'")
        self.age = a
        self.cleft = bool(self.cleft)
        c = str(self.cleft_content).strip().lower()
        if c not in ("gas", "fluid"):
            raise InputError(f"cleft content {self.cleft_content!r} must be 'gas' or 'fluid'")
        self.cleft_content = c
        try:
            r = float(self.retropulsion_mm)
        except (TypeError, ValueError):
            raise InputError(f"retropulsion {self.retropulsion_mm!r} must be a number of mm") from None
        if not (0.0 <= r <= 5.0):
            raise InputError(f"retropulsion {r:g} mm is outside 0–5 mm")
        self.retropulsion_mm = r

    @property
    def label(self) -> int:
        return vertebra_id(self.level)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_fracture(text: str) -> FractureSpec:
    """Parse ``LEVEL:TYPE:GRADE[:acute|:chronic][:cleft][:cleft=gas|fluid][:retropulsion=MM]``."""
    parts = [p.strip() for p in str(text).split(":")]
    if len(parts) < 3 or not all(parts[:3]):
        raise InputError(f"fracture {text!r}: expected LEVEL:TYPE:GRADE[:acute|:chronic][:cleft]"
                         f"[:retropulsion=MM], e.g. L1:wedge:2")
    level, ftype, grade = parts[:3]
    if not re.fullmatch(r"\d+", grade):
        raise InputError(f"fracture {text!r}: grade {grade!r} must be 1, 2 or 3 (Genant)")
    kw: dict[str, Any] = {}
    for opt in parts[3:]:
        o = opt.lower()
        if o in ("acute", "chronic"):
            kw["age"] = o
        elif o == "cleft":
            kw["cleft"] = True
        elif o.startswith("cleft="):
            kw["cleft"] = True
            kw["cleft_content"] = o.split("=", 1)[1]
        elif o.startswith("retropulsion="):
            val = o.split("=", 1)[1].removesuffix("mm")
            try:
                kw["retropulsion_mm"] = float(val)
            except ValueError:
                raise InputError(f"fracture {text!r}: retropulsion {val!r} is not a number of mm") from None
        else:
            raise InputError(f"fracture {text!r}: unknown option {opt!r} (acute, chronic, cleft, "
                             f"cleft=gas|fluid, retropulsion=MM)")
    return FractureSpec(level=level, type=ftype, grade=int(grade), **kw)


def parse_spacing(value: str | float | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.8,1.5"`` / ``1.0`` / ``(1, 1, 2)`` → three positive spacings, mm (array axes i, j, k)."""
    if isinstance(value, str):
        try:
            vals = [float(v) for v in re.split(r"[,x\s]+", value.strip()) if v]
        except ValueError:
            raise InputError(f"spacing {value!r} must be numbers in mm, e.g. 0.8,0.8,1.5") from None
    elif isinstance(value, (int, float)):
        vals = [float(value)]
    else:
        try:
            vals = [float(v) for v in value]
        except (TypeError, ValueError):
            raise InputError(f"spacing {value!r} must be numbers in mm") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise InputError(f"spacing {value!r} needs 1 or 3 values (mm), got {len(vals)}")
    for v in vals:
        if not (v == v) or v <= 0 or v == float("inf"):
            raise InputError(f"spacing {value!r}: each value must be a positive number of mm")
        if v < 0.1 or v > 5.0:
            raise InputError(f"spacing {v:g} mm is outside 0.1–5 mm")
    return (vals[0], vals[1], vals[2])


def _parse_orientation(code: str) -> str:
    c = str(code).strip().upper()
    if len(c) != 3 or any(ch not in "LRPAIS" for ch in c):
        raise InputError(f"orientation {code!r} must be a 3-letter code such as LPS, RAS or PIR")
    for pair in _VALID_AXCODES:
        if len(pair & set(c)) != 1:
            raise InputError(f"orientation {code!r} must name each of L/R, P/A, I/S exactly once")
    return c


@dataclass
class PhantomSpec:
    """Everything that defines a phantom; two equal specs give identical phantoms.

    Parameters
    ----------
    levels : str or list
        ``"T10-L3"``, ``"T12,L1"`` or a list of names / VerSe ids (T1–L5), contiguous.
    fractures : list of FractureSpec (or strings in the CLI syntax)
    bmd_mg_cm3 : float
        Mean trabecular volumetric BMD of the intact levels, mg/cm³ (K2HPO4-equivalent QCT scale).
    spacing_mm : float or (float, float, float)
        Voxel size along the output array axes i, j, k, mm.
    orientation : str
        Output voxel order, e.g. ``"LPS"``, ``"RAS"``, ``"PIR"`` (world stays RAS+ mm).
    seed : int
        Seed of every random draw (height loss in the grade band, density heterogeneity, soft
        tissue thicknesses, noise).
    noise_hu : float
        Standard deviation of the CT noise at 1 mm³ voxels, HU (scaled by 1/√voxel volume).
    blur_fwhm_mm : float
        In-plane full width at half maximum of the CT point-spread function, mm.
    soft_tissue : bool
        Draw muscle, fat, aorta, skin and air; False gives bone, discs and canal in a ~20 HU medium
        (fast fine grids for geometry tests).
    margin_mm : float or None
        Field of view margin around the bone; None = a torso-sized field of view with air behind the back.
    hu_gain, hu_offset : float
        Scanner calibration: every HU value of the model is mapped to ``hu_offset + hu_gain·HU``
        (1 and 0 = the documented calibration; change them to test phantomless calibration).
    size_sd : float
        Between-subject size variability: every linear dimension is multiplied by one seeded factor
        drawn from N(1, size_sd) (clipped to ±3 SD); 0 (default) = the mean adult of the tables.
    """

    levels: str | list = "T11-L3"
    fractures: list = field(default_factory=list)
    bmd_mg_cm3: float = 85.0
    spacing_mm: Any = (1.0, 1.0, 1.0)
    orientation: str = "LPS"
    seed: int = 0
    noise_hu: float = 12.0
    blur_fwhm_mm: float = 1.0
    soft_tissue: bool = True
    margin_mm: float | None = None
    hu_gain: float = 1.0
    hu_offset: float = 0.0
    size_sd: float = 0.0

    def __post_init__(self) -> None:
        try:
            if isinstance(self.levels, str):
                ids = parse_levels(self.levels)
            else:
                ids = [vertebra_id(v) for v in self.levels]
        except ValueError as exc:
            raise InputError(f"levels: {exc}") from None
        ids = sorted(dict.fromkeys(ids))
        bad = [vertebra_name(i) for i in ids if i not in SUPPORTED_LEVELS]
        if bad:
            raise InputError(f"levels {', '.join(bad)}: the phantom builds T1–L5 only")
        if any(b - a != 1 for a, b in zip(ids, ids[1:])):
            raise InputError(f"levels {[vertebra_name(i) for i in ids]} must be contiguous")
        self.levels = [vertebra_name(i) for i in ids]
        fr = []
        for f in self.fractures or []:
            if isinstance(f, str):
                f = parse_fracture(f)
            elif isinstance(f, dict):
                f = FractureSpec(**f)
            elif not isinstance(f, FractureSpec):
                raise InputError(f"fracture {f!r} must be a FractureSpec, a dict or 'LEVEL:TYPE:GRADE'")
            if f.level not in self.levels:
                raise InputError(f"fracture level {f.level} is not among the phantom levels "
                                 f"{self.levels[0]}–{self.levels[-1]}")
            if any(g.level == f.level for g in fr):
                raise InputError(f"two fractures given for {f.level}")
            fr.append(f)
        self.fractures = fr
        try:
            self.bmd_mg_cm3 = float(self.bmd_mg_cm3)
        except (TypeError, ValueError):
            raise InputError(f"bmd {self.bmd_mg_cm3!r} must be a number (mg/cm³)") from None
        if not (20.0 <= self.bmd_mg_cm3 <= 300.0):
            raise InputError(f"bmd {self.bmd_mg_cm3:g} mg/cm³ is outside 20–300 mg/cm³")
        self.spacing_mm = parse_spacing(self.spacing_mm)
        self.orientation = _parse_orientation(self.orientation)
        try:
            self.seed = int(self.seed)
        except (TypeError, ValueError):
            raise InputError(f"seed {self.seed!r} must be an integer") from None
        if self.seed < 0:
            raise InputError(f"seed {self.seed} must be ≥ 0")
        for name, lo, hi in (("noise_hu", 0.0, 200.0), ("blur_fwhm_mm", 0.0, 5.0),
                             ("hu_gain", 0.5, 2.0), ("hu_offset", -200.0, 200.0), ("size_sd", 0.0, 0.1)):
            v = float(getattr(self, name))
            if not (lo <= v <= hi):
                raise InputError(f"{name} {v:g} is outside {lo:g}–{hi:g}")
            setattr(self, name, v)
        if self.margin_mm is not None:
            self.margin_mm = float(self.margin_mm)
            if not (0.0 <= self.margin_mm <= 200.0):
                raise InputError(f"margin_mm {self.margin_mm:g} is outside 0–200 mm")
        self.soft_tissue = bool(self.soft_tissue)

    @property
    def level_ids(self) -> list[int]:
        return [vertebra_id(n) for n in self.levels]

    def fracture_at(self, level: str) -> FractureSpec | None:
        for f in self.fractures:
            if f.level == level:
                return f
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spacing_mm"] = list(self.spacing_mm)
        return d


def demo_case(*, spacing_mm: Any = (1.0, 1.0, 1.0), seed: int = 7) -> PhantomSpec:
    """The built-in demo: a painful acute L1 wedge fracture, Genant grade 2, in osteoporotic bone
    (T11–L3, trabecular vBMD 75 mg/cm³ — below the 80 mg/cm³ QCT osteoporosis threshold)."""
    return PhantomSpec(levels="T11-L3",
                       fractures=[FractureSpec(level="L1", type="wedge", grade=2, age="acute")],
                       bmd_mg_cm3=75.0, spacing_mm=spacing_mm, orientation="LPS", seed=seed)
