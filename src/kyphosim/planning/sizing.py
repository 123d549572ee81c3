"""Device sizing and time estimates per level (literature in ``docs/planning.md``).

* Balloon (Kyphon Xpander IFU sizes 10/15/20 mm, clinical-reference §3): the longest nominal length
  that fits the trajectory's length inside the body minus ``BALLOON_MARGIN_MM`` (the proximal
  marker sits beyond the posterior wall).
* Expected inflation volume per balloon: a capsule of the balloon length with a diameter limited by
  the local body height minus 2 × ``ENDPLATE_MARGIN_MM`` and by ``BALLOON_MAX_DIAMETER_MM``, capped
  at the (unconfirmed, [U]) maximum volume per size.
* Cement: low = 16.2 %, high = 29.8 % of the vertebral-body volume (Molloy et al., Spine 2005 — fill
  restoring strength / stiffness); expected = the total inflation volume (FREE trial: cement ≈ IBT
  inflation volume ≈ 2.4 mL per side) clipped to [low, high].
* Procedure time: KAVIAR mean 40.0 min for kyphoplasty; a unipedicular level 18.6 min shorter
  (Sun 2023 meta-analysis; Medicine 2017 found 21.4 min).
"""

from __future__ import annotations

import math

__all__ = ["BALLOON_LENGTHS_MM", "balloon_length_mm", "inflation_volume_ml", "cement_volume_ml",
           "procedure_minutes", "FILL_FRACTION_LOW", "FILL_FRACTION_HIGH", "FREE_ML_PER_SIDE"]

BALLOON_LENGTHS_MM = (20, 15, 10)
#: [U] maximum inflation volumes per nominal length (IFU table not retrieved), mL.
BALLOON_MAX_VOLUME_ML = {10: 3.0, 15: 4.0, 20: 6.0}
BALLOON_MARGIN_MM = 3.0
ENDPLATE_MARGIN_MM = 2.0
BALLOON_MAX_DIAMETER_MM = 16.0
FILL_FRACTION_LOW = 0.162      # Molloy 2005: strength restored
FILL_FRACTION_HIGH = 0.298     # Molloy 2005: stiffness restored
FREE_ML_PER_SIDE = 2.4         # FREE trial (Van Meirhaeghe 2013)
KAVIAR_KP_MINUTES = 40.0
UNILATERAL_SAVING_MINUTES = 18.6


def balloon_length_mm(length_in_body_mm: float) -> tuple[int, bool]:
    """(nominal balloon length, fits) for the trajectory length inside the body (mm)."""
    room = length_in_body_mm - BALLOON_MARGIN_MM
    for L in BALLOON_LENGTHS_MM:
        if room >= L:
            return L, True
    return BALLOON_LENGTHS_MM[-1], False


def inflation_volume_ml(balloon_mm: int, body_height_mm: float) -> float:
    """Expected inflation volume (mL) of one balloon in a body of local height ``body_height_mm``."""
    d = min(BALLOON_MAX_DIAMETER_MM, max(4.0, body_height_mm - 2 * ENDPLATE_MARGIN_MM))
    r = d / 2.0
    cyl = max(balloon_mm - d, 0.0)
    v_mm3 = math.pi * r * r * cyl + 4.0 / 3.0 * math.pi * r ** 3
    return float(min(v_mm3 / 1000.0, BALLOON_MAX_VOLUME_ML[int(balloon_mm)]))


def cement_volume_ml(body_volume_ml: float, inflation_total_ml: float) -> dict:
    """{'low', 'expected', 'high'} mL from the body volume and the planned inflation volume."""
    low = FILL_FRACTION_LOW * body_volume_ml
    high = FILL_FRACTION_HIGH * body_volume_ml
    expected = min(max(inflation_total_ml, low), high)
    return {"low": round(low, 2), "expected": round(expected, 2), "high": round(high, 2)}


def procedure_minutes(approach: str) -> float:
    """Estimated procedure time for one level (min)."""
    return KAVIAR_KP_MINUTES - (UNILATERAL_SAVING_MINUTES if approach == "unipedicular" else 0.0)
