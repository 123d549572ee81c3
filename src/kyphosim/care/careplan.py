"""Personalised post-procedure care plan with dated milestones (schema ``kyphosim.careplan/1``).

``make_care_plan(procedure_date, levels, clinical=None, assessment=None)`` fills the packaged
template (``care/template.yaml``: the seeds' after-care page plus the sources in
clinical-reference.md §7) with dates counted from the procedure day and personalises it from the
clinical input: calcium and vitamin D for age and sex (NAM), opioid and driving advice, whether a DXA
is still needed, anticoagulant restart, fall-risk advice and the number of levels. Weights are given
in pounds and kilograms (1 lb = 0.45359237 kg), fever in °F and °C. Everything is deterministic.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, Field

from kyphosim.errors import InputError

__all__ = ["CAREPLAN_SCHEMA", "Milestone", "RedFlag", "BoneHealthPlan", "CarePlan", "make_care_plan",
           "lb_to_kg", "format_weight", "f_to_c", "calcium_mg_per_day", "vitamin_d_iu_per_day", "parse_date"]

CAREPLAN_SCHEMA = "kyphosim.careplan/1"
KG_PER_LB = 0.45359237
FEVER_F = 101.0
#: a DXA younger than this counts as recent (no new scan scheduled), days [assumption: 2 years]
DXA_RECENT_DAYS = 730


def lb_to_kg(lb: float) -> float:
    return float(lb) * KG_PER_LB


def f_to_c(f: float) -> float:
    return (float(f) - 32.0) * 5.0 / 9.0


def format_weight(lb: float) -> str:
    """``10`` → ``'10 lb (4.5 kg)'``."""
    return f"{lb:g} lb ({lb_to_kg(lb):.1f} kg)"


def calcium_mg_per_day(age_years: int, sex: str) -> int:
    """NAM recommended dietary allowance of calcium, mg/day (adults ≥ 19 y).

    Women ≥ 51: 1200 (clinical-reference.md §7 [C]); men 51–70: 1000, men ≥ 71: 1200, adults 19–50: 1000
    (NAM 2011 DRI table, general knowledge [U]). ``other``/``unknown`` sex uses the higher value.
    """
    if age_years < 51:
        return 1000
    if sex == "male" and age_years <= 70:
        return 1000
    return 1200


def vitamin_d_iu_per_day(age_years: int) -> int:
    """NAM vitamin D allowance: 600 IU/day up to age 70, 800 IU/day from 71 (clinical-reference.md §7 [C])."""
    return 600 if age_years <= 70 else 800


def parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"procedure date {value!r}: expected YYYY-MM-DD") from None


class Milestone(BaseModel):
    id: str
    category: Literal["procedure", "activity", "wound", "lifting", "sitting", "driving", "follow_up",
                      "bone_health", "medication"]
    title: str
    detail: str
    start_date: dt.date
    end_date: Optional[dt.date] = Field(None, description="last day of a period (inclusive)")
    window_end_date: Optional[dt.date] = Field(None, description="latest acceptable date for a visit")
    day_start: int
    day_end: Optional[int] = None
    daily: bool = False
    limit_lb: Optional[float] = None
    limit_kg: Optional[float] = None
    source: str = ""


class RedFlag(BaseModel):
    id: str
    symptom: str
    why: str
    action: str
    source: str = ""


class BoneHealthPlan(BaseModel):
    calcium_mg_per_day: int
    vitamin_d_iu_per_day: int
    dxa_needed: bool
    dxa_due_date: Optional[dt.date]
    fls_referral: bool = True
    on_treatment: Optional[bool] = None
    ct_osteoporosis: Optional[str] = None
    l1_trabecular_hu: Optional[float] = None
    notes: list[str] = Field(default_factory=list)


class CarePlan(BaseModel):
    schema_: str = Field(CAREPLAN_SCHEMA, alias="schema")
    case_id: Optional[str] = None
    procedure: str
    procedure_date: dt.date
    levels: list[str]
    milestones: list[Milestone]
    red_flags: list[RedFlag]
    bone_health: BoneHealthPlan
    personalisation: list[str] = Field(default_factory=list)
    patient_age_years: Optional[int] = None
    patient_sex: Optional[str] = None
    research_notice: str = ""

    model_config = {"populate_by_name": True}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def milestone(self, mid: str) -> Milestone:
        for m in self.milestones:
            if m.id == mid:
                return m
        raise KeyError(mid)

    @property
    def end_date(self) -> dt.date:
        return max((m.end_date or m.window_end_date or m.start_date) for m in self.milestones)


@lru_cache(maxsize=1)
def _template() -> dict:
    import yaml

    text = resources.files("kyphosim.care").joinpath("template.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if data.get("schema") != "kyphosim.care-template/1":
        raise InputError("care template: not kyphosim.care-template/1")
    return data


_DATE_RE = re.compile(r"\{date:\+(\d+)\}")


def _fill(text: str, subs: dict[str, str], day0: dt.date) -> str:
    text = _DATE_RE.sub(lambda m: _fmt_date(day0 + dt.timedelta(days=int(m.group(1)))), text)
    for k, v in subs.items():
        text = text.replace("{" + k + "}", v)
    return " ".join(text.split())


def _fmt_date(d: dt.date) -> str:
    return f"{d:%a} {d.day} {d:%b %Y}"


def _levels_text(levels: list[str]) -> str:
    return levels[0] if len(levels) == 1 else ", ".join(levels[:-1]) + " and " + levels[-1]


def make_care_plan(procedure_date: Any, levels: Iterable[str], clinical: Any = None, assessment: Any = None, *,
                   technique: Literal["kyphoplasty", "vertebroplasty"] = "kyphoplasty") -> CarePlan:
    """Build the dated care plan.

    Parameters
    ----------
    procedure_date : date or ``'YYYY-MM-DD'`` (day 0).
    levels : treated levels, e.g. ``['L1']`` (names or VerSe ids).
    clinical : optional clinical input (dict/path/:class:`~kyphosim.clinical.input.ClinicalInput`) for personalisation.
    assessment : optional ``kyphosim.assessment/1`` (dict or object) for the CT bone-density note.
    technique : ``kyphoplasty`` (balloon) or ``vertebroplasty``.
    """
    from kyphosim import RESEARCH_NOTICE
    from kyphosim.imaging.labels import craniocaudal_order, vertebra_id, vertebra_name

    day0 = parse_date(procedure_date)
    try:
        names = [vertebra_name(i) for i in craniocaudal_order(dict.fromkeys(vertebra_id(v) for v in levels))]
    except ValueError as exc:
        raise InputError(f"levels: {exc}") from None
    if not names:
        raise InputError("levels: at least one treated level is needed")
    c = None
    if clinical is not None:
        from kyphosim.clinical.input import load_clinical, parse_clinical
        c = load_clinical(clinical) if isinstance(clinical, (str,)) or hasattr(clinical, "__fspath__") \
            else parse_clinical(clinical)
    spine: dict = {}
    if assessment is not None:
        from kyphosim.clinical.engine import normalise_assessment
        spine = normalise_assessment(assessment)["spine"] or {}

    age = c.patient.age_years if c else None
    sex = c.patient.sex if c else None
    calcium = calcium_mg_per_day(age, sex) if c else 1200
    vit_d = vitamin_d_iu_per_day(age) if c else 800
    procedure = "balloon kyphoplasty" if technique == "kyphoplasty" else "vertebroplasty"
    subs = {"levels": _levels_text(names), "procedure": procedure, "lift1": "5-10 lb (2.3-4.5 kg)",
            "lift2": format_weight(20), "calcium_mg": str(calcium), "vitamin_d_iu": str(vit_d),
            "fever_f": f"{FEVER_F:g}", "fever_c": f"{f_to_c(FEVER_F):.1f}"}
    personal: list[str] = []
    if c is None:
        personal.append("No clinical file: adult defaults used (calcium 1200 mg, vitamin D 800 IU).")

    # DXA: skip scheduling when a recent one exists
    dxa_needed, dxa_note = True, None
    if c and c.bone_health.dxa_date:
        d = dt.date.fromisoformat(c.bone_health.dxa_date)
        if 0 <= (day0 - d).days <= DXA_RECENT_DAYS:
            dxa_needed = False
            dxa_note = f"DXA done on {d.isoformat()} (T-score {c.bone_health.dxa_t_score}); no new scan scheduled."
    on_treatment = c.bone_health.on_osteoporosis_treatment if c else None

    milestones: list[Milestone] = []
    for row in _template()["milestones"]:
        mid = row["id"]
        if mid == "dxa" and not dxa_needed:
            continue
        title, detail = _fill(row["title"], subs, day0), _fill(row["detail"], subs, day0)
        if mid == "osteoporosis-treatment" and on_treatment:
            title = "Keep taking your osteoporosis medicine"
            detail = "Continue your osteoporosis treatment; your doctor will review it at the follow-up visit."
        if mid == "driving" and c and c.conservative_care.on_opioids:
            detail += " You are taking opioid pain medicine: do not drive until you have stopped it."
        start = int(row["start"])
        end = row.get("end")
        wend = row.get("window_end")
        limit_lb = row.get("limit_lb")
        milestones.append(Milestone(
            id=mid, category=row["category"], title=title, detail=detail,
            start_date=day0 + dt.timedelta(days=start),
            end_date=None if end is None else day0 + dt.timedelta(days=int(end)),
            window_end_date=None if wend is None else day0 + dt.timedelta(days=int(wend)),
            day_start=start, day_end=None if end is None else int(end), daily=bool(row.get("daily", False)),
            limit_lb=limit_lb, limit_kg=None if limit_lb is None else round(lb_to_kg(limit_lb), 1),
            source=row.get("source", "")))

    if c and c.bleeding.anticoagulated:
        milestones.append(Milestone(
            id="anticoagulant-restart", category="medication", day_start=1, start_date=day0 + dt.timedelta(days=1),
            title="Blood thinner: restart only as your doctor told you",
            detail="Your blood thinner was paused for the procedure. Restart it on the day your care team gave you.",
            source="Kyphon Xpander II IFU (bleeding-risk treatment paused peri-procedurally) [C]"))
        personal.append("Anticoagulation: restart reminder added.")
    if c and c.fitness.fall_risk:
        milestones.append(Milestone(
            id="fall-prevention", category="activity", day_start=0, day_end=89, start_date=day0,
            end_date=day0 + dt.timedelta(days=89),
            title="Prevent falls at home",
            detail="Remove loose rugs, use night lights and grab rails, wear firm shoes, and use your walking aid.",
            source="BHOF 2022 (fracture prevention) [C]"))
        personal.append("Fall risk: fall-prevention advice added.")
    if c and c.conservative_care.on_opioids:
        personal.append("On opioids: driving only after stopping them.")
    if c:
        personal.append(f"Calcium {calcium} mg/day and vitamin D {vit_d} IU/day for a {age}-year-old {sex}.")
    if len(names) > 1:
        personal.append(f"{len(names)} levels treated ({_levels_text(names)}).")
    milestones.sort(key=lambda m: (m.start_date, m.day_end if m.day_end is not None else m.day_start, m.id))

    red = [RedFlag(id=r["id"], symptom=_fill(r["symptom"], subs, day0), why=r["why"], action=r["action"],
                   source=r.get("source", "")) for r in _template()["red_flags"]]
    bh_notes = []
    if dxa_note:
        bh_notes.append(dxa_note)
    ct_ost = spine.get("osteoporosis")
    l1_hu = spine.get("l1_trabecular_hu")
    if ct_ost:
        bh_notes.append(f"CT opportunistic screen: {ct_ost}" + (f" (L1 {float(l1_hu):.0f} HU)" if l1_hu is not None else "")
                        + ". A vertebral fragility fracture by itself usually means osteoporosis treatment is needed.")
    bone = BoneHealthPlan(calcium_mg_per_day=calcium, vitamin_d_iu_per_day=vit_d, dxa_needed=dxa_needed,
                          dxa_due_date=(day0 + dt.timedelta(days=28)) if dxa_needed else None,
                          on_treatment=on_treatment, ct_osteoporosis=ct_ost,
                          l1_trabecular_hu=None if l1_hu is None else float(l1_hu), notes=bh_notes)
    return CarePlan(case_id=c.case_id if c else None, procedure=procedure, procedure_date=day0, levels=names,
                    milestones=milestones, red_flags=red, bone_health=bone, personalisation=personal,
                    patient_age_years=age, patient_sex=sex, research_notice=RESEARCH_NOTICE)
