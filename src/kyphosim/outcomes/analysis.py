"""Compare a patient's follow-up course with trial results and flag problems.

Flags (each with its source, clinical-reference.md §4h/§7):

* ``new_fracture`` — a visit records a new vertebral fracture (about 20 % of women have a new one
  within a year; BHOF 2022, Ryu 2014 24 % at 1 year).
* ``no_improvement`` — at a visit ≥ 6 weeks (42 days) after the procedure, pain has not fallen by at
  least 1.5 NRS points from baseline (VERTOS IV's clinically significant change; pain relief is mostly
  established by 2 weeks and maximal by 9 weeks after kyphoplasty, Ryu 2014).
* ``recurrent_pain`` — pain rises by ≥ 2 NRS points above its lowest post-procedure value (27 % had
  recurrent or new pain at 1 year, Ryu 2014) [threshold 2 points: assumption].
* ``odi_no_improvement`` — ODI has not fallen by ≥ 10 points at ≥ 6 weeks [U: commonly quoted ODI
  minimal important change, not in the clinical reference].

Trial reference changes of pain (VAS/NRS 0–10, pooled at follow-up): Papanastassiou 2012 BKP −5.07,
VP −4.55, NSM −2.17; Beall 2018 BKP −4.05, VP −3.88, NSM −2.66; Perez 2021 BKP with posterior-wall
disruption 8.7 → 2.5 (−6.2). FREE reports SF-36 PCS (+7.2 vs +2.0 at 1 month), not NRS, and is listed
for context only.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Optional

from pydantic import BaseModel, Field

from kyphosim.outcomes.record import OutcomeLog

__all__ = ["ANALYSIS_SCHEMA", "TRIAL_PAIN_CHANGES", "Flag", "VisitResult", "OutcomeAnalysis", "analyse_outcomes",
           "MCID_NRS", "NO_IMPROVEMENT_DAY"]

ANALYSIS_SCHEMA = "kyphosim.outcome-analysis/1"
MCID_NRS = 1.5            # VERTOS IV clinically significant change, NRS points
NO_IMPROVEMENT_DAY = 42   # 6 weeks
RECURRENT_RISE_NRS = 2.0  # assumption
MCID_ODI = 10.0           # [U]

#: (label, technique, pooled change of pain on 0–10, source)
TRIAL_PAIN_CHANGES: list[tuple[str, str, float, str]] = [
    ("Papanastassiou 2012, BKP", "kyphoplasty", -5.07, "Papanastassiou, Eur Spine J 2012 (pooled VAS change) [C]"),
    ("Papanastassiou 2012, VP", "vertebroplasty", -4.55, "Papanastassiou, Eur Spine J 2012 [C]"),
    ("Papanastassiou 2012, NSM", "non-surgical", -2.17, "Papanastassiou, Eur Spine J 2012 [C]"),
    ("Beall 2018, BKP", "kyphoplasty", -4.05, "Beall, meta-analysis 2018 (pooled VAS change) [C]"),
    ("Beall 2018, VP", "vertebroplasty", -3.88, "Beall 2018 [C]"),
    ("Beall 2018, NSM", "non-surgical", -2.66, "Beall 2018 [C]"),
    ("Perez 2021, BKP (posterior-wall disruption)", "kyphoplasty-subgroup", 2.5 - 8.7, "Perez, IJSS 2021 (VAS 8.7→2.5) [C]"),
]


class Flag(BaseModel):
    kind: Literal["new_fracture", "no_improvement", "recurrent_pain", "odi_no_improvement", "no_baseline"]
    date: Optional[dt.date] = None
    message: str
    source: str


class VisitResult(BaseModel):
    date: dt.date
    day: int
    nrs: Optional[float]
    odi_pct: Optional[float]
    nrs_change: Optional[float]
    odi_change: Optional[float]
    clinically_significant: Optional[bool] = Field(None, description="NRS fell by ≥ 1.5 points from baseline")
    new_fracture: bool = False


class OutcomeAnalysis(BaseModel):
    schema_: str = Field(ANALYSIS_SCHEMA, alias="schema")
    case_id: Optional[str]
    procedure_date: dt.date
    baseline_nrs: Optional[float]
    baseline_odi_pct: Optional[float]
    visits: list[VisitResult]
    flags: list[Flag]
    trial_reference: list[dict]
    model_config = {"populate_by_name": True}

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


def analyse_outcomes(log: OutcomeLog) -> OutcomeAnalysis:
    """Changes from baseline per visit and the flags described in the module docstring."""
    day0 = log.procedure_date
    base_nrs, base_odi = log.baseline_nrs, log.baseline_odi_pct
    pre = [v for v in log.visits if v.date <= day0]
    if base_nrs is None:
        base_nrs = next((v.nrs for v in reversed(pre) if v.nrs is not None), None)
    if base_odi is None:
        base_odi = next((v.odi_pct for v in reversed(pre) if v.odi_pct is not None), None)
    results: list[VisitResult] = []
    flags: list[Flag] = []
    if base_nrs is None:
        flags.append(Flag(kind="no_baseline", message="No baseline (pre-procedure) pain score: changes cannot be computed.",
                          source="kyphosim"))
    lowest: Optional[float] = None
    flagged = set()
    for v in sorted(log.visits, key=lambda v: v.date):
        day = (v.date - day0).days
        dn = None if (v.nrs is None or base_nrs is None) else round(v.nrs - base_nrs, 2)
        do = None if (v.odi_pct is None or base_odi is None) else round(v.odi_pct - base_odi, 2)
        results.append(VisitResult(date=v.date, day=day, nrs=v.nrs, odi_pct=v.odi_pct, nrs_change=dn, odi_change=do,
                                   clinically_significant=None if dn is None else dn <= -MCID_NRS,
                                   new_fracture=v.new_fracture))
        if day <= 0:
            continue
        if v.new_fracture:
            flags.append(Flag(kind="new_fracture", date=v.date,
                              message=f"New vertebral fracture recorded on {v.date.isoformat()} (day {day}): "
                                      "review osteoporosis treatment and consider imaging of the new level.",
                              source="BHOF 2022 (5-fold risk, highest in year 1); Ryu 2014 (24 % new fractures at 1 year)"))
        if dn is not None and day >= NO_IMPROVEMENT_DAY and dn > -MCID_NRS and "no_improvement" not in flagged:
            flagged.add("no_improvement")
            flags.append(Flag(kind="no_improvement", date=v.date,
                              message=f"Pain changed by {dn:+.1f} NRS points at day {day} (≥ 6 weeks): less than "
                                      f"the {MCID_NRS:g}-point clinically significant change.",
                              source="VERTOS IV (Firanescu, BMJ 2018: clinically significant change 1.5 points); "
                                     "Ryu 2014 (relief established by 2 weeks in 90 %)"))
        if v.nrs is not None:
            if lowest is not None and v.nrs - lowest >= RECURRENT_RISE_NRS:
                flags.append(Flag(kind="recurrent_pain", date=v.date,
                                  message=f"Pain rose from {lowest:g} to {v.nrs:g} on {v.date.isoformat()}: rule out a "
                                          "new or adjacent fracture.",
                                  source="Ryu 2014 (27 % recurrent or new back pain at 1 year)"))
                lowest = v.nrs  # flag again only after a further rise
            lowest = v.nrs if lowest is None else min(lowest, v.nrs)
        if do is not None and day >= NO_IMPROVEMENT_DAY and do > -MCID_ODI and "odi" not in flagged:
            flagged.add("odi")
            flags.append(Flag(kind="odi_no_improvement", date=v.date,
                              message=f"ODI changed by {do:+.0f} points at day {day}: less than a {MCID_ODI:g}-point "
                                      "improvement.",
                              source="ODI minimal important change about 10 points [U: not in clinical-reference.md]"))
    ref = [{"label": lab, "technique": tech, "nrs_change": ch, "source": src,
            "expected_nrs": None if base_nrs is None else round(max(0.0, base_nrs + ch), 2)}
           for lab, tech, ch, src in TRIAL_PAIN_CHANGES]
    return OutcomeAnalysis(case_id=log.case_id, procedure_date=day0, baseline_nrs=base_nrs, baseline_odi_pct=base_odi,
                           visits=results, flags=flags, trial_reference=ref)
