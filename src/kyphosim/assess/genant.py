"""Genant semi-quantitative grading with level-dependent normal shape and neighbour-based expectation.

Definitions (``docs/assessment.md``; ``clinical-reference.md`` §1):

* Grade from height loss x (%): 0 for x < 20, 1 for 20 ≤ x < 25, 2 for 25 ≤ x ≤ 40, 3 for x > 40
  (Genant et al., JBMR 1993; boundaries as restated by Wáng, QIMS 2019).
* Type: wedge when the anterior height is the most reduced, biconcave when the middle height is,
  crush when the posterior height (the whole body) is reduced (Lenchik et al., AJR, via the Tromsø
  figure legend).
* Normal anatomy is not a deformity: the anterior and middle heights are compared with the vertebra's
  own posterior height *times the normal ratio for that level* (normal Ha/Hp is lower in the
  mid-thoracic spine and above 1 at L5; Gallagher 1988; O'Neill/EVOS 1994; Diacinti et al.,
  Skeletal Radiol 1998), and the posterior height with the height predicted from adjacent normal
  levels scaled by the normal level-to-level growth of posterior body height (Panjabi et al. 1991, 1992).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kyphosim.imaging.labels import vertebra_name

__all__ = ["NORMAL_HA_HP", "NORMAL_HM_HP", "NORMAL_HP_MM", "GenantResult", "genant_grade_from_loss",
           "grade_spine", "normal_ratio"]

# Normal anterior/posterior height ratio by level (mean of normal vertebrae). Mid-thoracic wedging
# ~0.87–0.88 at T6–T8 (Gallagher 1988; O'Neill 1994; Diacinti 1998); lumbar ratios approach and
# exceed 1 caudally with lordosis; L5 is wedge-shaped the other way (anterior taller).
NORMAL_HA_HP: dict[str, float] = {
    "T1": 0.92, "T2": 0.91, "T3": 0.90, "T4": 0.90, "T5": 0.89, "T6": 0.88, "T7": 0.87, "T8": 0.87,
    "T9": 0.88, "T10": 0.90, "T11": 0.91, "T12": 0.92, "T13": 0.93, "L1": 0.94, "L2": 0.97, "L3": 1.00,
    "L4": 1.02, "L5": 1.10, "L6": 1.10,
}
# Normal middle/posterior height ratio (central endplate concavity), thoracic ~0.90, lumbar ~0.90–0.92.
NORMAL_HM_HP: dict[str, float] = {
    "T1": 0.91, "T2": 0.91, "T3": 0.91, "T4": 0.91, "T5": 0.90, "T6": 0.90, "T7": 0.90, "T8": 0.90,
    "T9": 0.90, "T10": 0.90, "T11": 0.90, "T12": 0.91, "T13": 0.91, "L1": 0.91, "L2": 0.91, "L3": 0.91,
    "L4": 0.92, "L5": 0.96, "L6": 0.96,
}
# Typical adult posterior body height (mm) by level, used only as *ratios* between levels to carry a
# neighbour's height to the level of interest (Panjabi et al., Spine 1991 thoracic; 1992 lumbar; approx.).
NORMAL_HP_MM: dict[str, float] = {
    "C3": 13.0, "C4": 13.0, "C5": 13.0, "C6": 13.5, "C7": 14.5,
    "T1": 14.5, "T2": 16.0, "T3": 16.5, "T4": 17.0, "T5": 17.5, "T6": 18.0, "T7": 18.5, "T8": 19.0,
    "T9": 20.0, "T10": 21.0, "T11": 22.5, "T12": 24.0, "T13": 25.0, "L1": 25.5, "L2": 26.5, "L3": 27.0,
    "L4": 26.5, "L5": 25.0, "L6": 25.0,
}

#: height-loss thresholds (%): grade 1 from 20, grade 2 from 25, grade 3 above 40
GRADE_THRESHOLDS_PCT = (20.0, 25.0, 40.0)
#: the posterior height must fall this far below its neighbour-based expectation to call a crush
#: (about 2.5 SD of the ~5 % level-to-level variation of normal posterior heights)
CRUSH_MIN_POSTERIOR_LOSS = 0.12
#: height resolution (mm, half the voxel along SI) from which mild (grade 1) calls need a margin
COARSE_UNCERTAINTY_MM = 1.25
#: own posterior height above the neighbour-based expectation by more than this is capped as reference
HP_OUTLIER = 0.08
#: with a reduced Hp, a middle deficit at least this multiple of the end deficits means biconcave, not crush
BICONCAVE_DOMINANCE = 2.0
#: references of a central depression (see :func:`grade_spine`)
MIDDLE_REFERENCES = ("posterior", "rim_mean", "rim_max")
#: a neighbour counts as a normal reference when its own-shape deficit is below this fraction
REFERENCE_MAX_DEFICIT = 0.15


def normal_ratio(name: str, which: str = "anterior") -> float:
    table = NORMAL_HA_HP if which == "anterior" else NORMAL_HM_HP
    if name in table:
        return table[name]
    if name.startswith("C"):
        return 1.0 if which == "anterior" else 0.95
    return table["L5"] if name.startswith("L") else 0.90


def genant_grade_from_loss(loss_pct: float | None) -> int | None:
    """Grade 0–3 from a height loss in percent (None → None)."""
    if loss_pct is None or not np.isfinite(loss_pct):
        return None
    g1, g2, g3 = GRADE_THRESHOLDS_PCT
    if loss_pct < g1:
        return 0
    if loss_pct < g2:
        return 1
    if loss_pct <= g3:
        return 2
    return 3


@dataclass
class GenantResult:
    """Grade and type of one level with the quantities that decided them."""

    grade: int | None
    type: str | None
    height_loss_pct: float | None
    expected_height_mm: float | None
    deficit_anterior: float | None
    deficit_middle: float | None
    deficit_posterior: float | None
    reference_levels: list[str]
    flags: list[str]


def _own_deficits(h: tuple, name: str) -> tuple[float | None, float | None]:
    a, m, p = h
    if p is None or not p or p <= 0:
        return None, None
    da = None if a is None else 1.0 - (a / p) / normal_ratio(name, "anterior")
    dm = None if m is None else 1.0 - (m / p) / normal_ratio(name, "middle")
    return da, dm


def grade_spine(levels: list[tuple[int, tuple[float | None, float | None, float | None]]], *,
                reliable: dict[int, bool] | None = None,
                uncertainty_mm: dict[int, float] | None = None,
                profile_min: dict[int, tuple[float | None, float | None]] | None = None,
                middle_reference: str = "posterior") -> dict[int, GenantResult]:
    """Grade every level of a spine.

    Parameters
    ----------
    levels : list of (VerSe id, (Ha, Hm, Hp) mm)
        Cranial to caudal; heights may be None.
    profile_min : dict, optional
        Per level (smallest height on the mid-sagittal profile 10–90 % of D, its AP fraction): an
        endplate depression between the three canonical positions then counts too.
    reliable : dict, optional
        Levels whose heights may serve as neighbour references (default: all measured).
    middle_reference : {'posterior', 'rim_mean', 'rim_max'}
        Reference of a central (biconcave) depression when the posterior height is not reduced:
        the own Hp (default, Eastell/McCloskey ratio Hm/Hp), the rim line at mid-depth (Ha + Hp)/2, or
        the taller rim max(Ha, Hp). Measured alternatives (docs/assessment.md), not the default.
    """
    if middle_reference not in MIDDLE_REFERENCES:
        raise ValueError(f"middle_reference must be one of {MIDDLE_REFERENCES}")
    order = [lid for lid, _ in levels]
    H = dict(levels)
    names = {lid: vertebra_name(lid) for lid in order}
    own = {lid: _own_deficits(H[lid], names[lid]) for lid in order}
    reliable = reliable or {}

    def is_ref(lid: int) -> bool:
        da, dm = own[lid]
        return (reliable.get(lid, True) and H[lid][2] is not None and da is not None and dm is not None
                and max(da, dm) < REFERENCE_MAX_DEFICIT)

    out: dict[int, GenantResult] = {}
    for i, lid in enumerate(order):
        name = names[lid]
        a, m, p = H[lid]
        flags: list[str] = []
        da, dm = own[lid]
        # expected posterior height from up to two normal levels on each side
        refs, w, vals = [], [], []
        for j in range(max(0, i - 2), min(len(order), i + 3)):
            if j == i or not is_ref(order[j]):
                continue
            nj = names[order[j]]
            if nj not in NORMAL_HP_MM or name not in NORMAL_HP_MM:
                continue
            refs.append(nj)
            w.append(1.0 / abs(i - j))
            vals.append(H[order[j]][2] * NORMAL_HP_MM[name] / NORMAL_HP_MM[nj])
        hp_exp = float(np.average(vals, weights=w)) if vals else None
        dp = None if (hp_exp is None or p is None) else 1.0 - p / hp_exp
        if p is None and a is not None and m is not None and hp_exp is not None:
            # posterior height cut (field of view): judge Ha and Hm against the neighbours' prediction
            hmin = min(a, m)
            loss = max(0.0, 100.0 * (1.0 - hmin / hp_exp))
            grade = genant_grade_from_loss(loss)
            gtype = "normal" if grade == 0 else ("wedge" if a <= m else "biconcave")
            out[lid] = GenantResult(grade, gtype, float(loss), float(hp_exp), da, dm, None, refs,
                                    ["posterior_height_from_neighbours"])
            continue
        if p is None or a is None or m is None:
            out[lid] = GenantResult(None, None, None, hp_exp, da, dm, dp, refs, ["heights_unavailable"])
            continue
        if hp_exp is None:
            flags.append("no_normal_neighbour")
        crush = dp is not None and dp >= CRUSH_MIN_POSTERIOR_LOSS
        pm = (profile_min or {}).get(lid, (None, None))
        m_low = min(m, pm[0]) if pm[0] is not None and 0.3 <= (pm[1] or 0.0) <= 0.7 else m
        if crush:
            # a reduced posterior height with a middle far more reduced than both ends is a severe
            # biconcave deformity (the endplate depression reaches the posterior corner), not a crush
            d_a = 1.0 - a / (normal_ratio(name, "anterior") * hp_exp)
            d_m = 1.0 - m_low / (normal_ratio(name, "middle") * hp_exp)
            if d_m >= BICONCAVE_DOMINANCE * max(d_a, dp):
                crush = False
                flags.append("posterior_height_reduced_biconcave")
        expected = hp_exp if crush else p
        if not crush and hp_exp is not None and p > hp_exp * (1.0 + HP_OUTLIER):
            # an own posterior height well above its neighbours' (posterior osteophyte, mask overshoot)
            # is not a valid normal reference: cap it
            expected = hp_exp * (1.0 + HP_OUTLIER)
            flags.append("posterior_height_above_neighbours")
        hmin, where = min((a, 0.10), (m, 0.50), (p, 0.90))
        if pm[0] is not None and pm[0] < hmin:
            hmin, where = pm
        loss = max(0.0, 100.0 * (1.0 - hmin / expected))
        if middle_reference != "posterior" and not crush:
            # the central depression judged against the endplate rims instead of Hp alone
            rim = 0.5 * (a + expected) if middle_reference == "rim_mean" else max(a, expected)
            loss = max(loss, 100.0 * (1.0 - m_low / rim))
        grade = genant_grade_from_loss(loss)
        unc = (uncertainty_mm or {}).get(lid, 0.0)
        if grade == 1 and unc >= COARSE_UNCERTAINTY_MM:
            # coarse scan: a mild deformity within the height resolution is not called a fracture
            if loss < GRADE_THRESHOLDS_PCT[0] + 100.0 * unc / expected:
                grade = 0
                flags.append("possible_mild_deformity_below_resolution")
        if grade == 0:
            gtype = "normal"
        elif crush:
            gtype = "crush"
        else:
            # biconcave only when the middle is clearly lower than both ends (δ = max(1 mm, 5 % Hp))
            delta = max(1.0, 0.05 * p)
            mid_low = min(m, hmin if where >= 0.3 else m)
            gtype = "biconcave" if (mid_low < a - delta and mid_low < p - delta) else "wedge"
        # deformity relative to the level's normal shape (literature ratios): flags normal variants
        if grade == 1 and not crush:
            norm_def = max(da or 0.0, dm or 0.0)
            if norm_def < GRADE_THRESHOLDS_PCT[0] / 100.0:
                flags.append("possible_normal_variant")
        out[lid] = GenantResult(grade, gtype, float(loss), float(expected), da, dm, dp, refs, flags)
    return out
