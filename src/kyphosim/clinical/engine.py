"""Indications engine: clinical input + CT assessment → a decision per vertebral level.

``evaluate(clinical, assessment)`` builds one flat dictionary of *facts* per candidate level (patient
facts from the clinical file, level facts from the clinical file and from the assessment JSON, and a
few derived facts), runs every rule of the rules table (:mod:`kyphosim.clinical.rules`) on it and
returns a :class:`Decision` with, per level, one of ``indicated``, ``relative_contraindication``,
``contraindicated`` or ``insufficient_information`` and the rules that fired (id, reason, source,
and the fact values they read).

Candidate levels: every assessed level with Genant grade ≥ 1 (or a ``fracture`` flag, or listed in
``spine.fractured_levels``), plus every level named in the clinical file. The assessment (schema ``kyphosim.assessment/1``) may be a dict or
any object with ``model_dump()``; this module does not import :mod:`kyphosim.assess`.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, Field

from kyphosim.clinical.expr import UNKNOWN
from kyphosim.clinical.input import ClinicalInput, parse_clinical
from kyphosim.clinical.rules import VERDICT_SEVERITY, RuleTable, default_rules
from kyphosim.clinical.sins import score_sins
from kyphosim.errors import InputError

__all__ = ["FACTS", "DECISION_SCHEMA", "FiredRule", "UnknownRule", "LevelDecision", "Decision", "evaluate",
           "level_facts", "decision_html", "normalise_assessment"]

DECISION_SCHEMA = "kyphosim.decision/1"

#: every fact a rule may read: name → (unit/type, meaning)
FACTS: dict[str, str] = {
    # patient (clinical file)
    "age_years": "years; patient.age_years",
    "sex": "female|male|other|unknown; patient.sex",
    "pain_nrs": "0-10; pain.nrs",
    "pain_duration_weeks": "weeks; pain.duration_weeks",
    "pain_worsening": "bool; pain.worsening",
    "conservative_tried": "bool; conservative_care.tried",
    "conservative_weeks": "weeks; conservative_care.duration_weeks",
    "on_opioids": "bool; conservative_care.on_opioids",
    "odi_pct": "0-100; function.odi_pct",
    "rdq": "0-24; function.rdq",
    "daily_function_impaired": "bool; function.daily_function_impaired",
    "hospitalised_for_pain": "bool; function.hospitalised_for_pain",
    "pulmonary_dysfunction": "bool; function.pulmonary_dysfunction",
    "neuro_deficit": "bool; neurology.deficit",
    "radiculopathy": "bool; neurology.radiculopathy",
    "cord_compression": "bool; neurology.cord_compression",
    "infection_local": "bool; infection.local_active",
    "infection_systemic": "bool; infection.systemic_untreated",
    "coagulopathy_uncorrected": "bool; bleeding.coagulopathy_uncorrected",
    "anticoagulated": "bool; bleeding.anticoagulated",
    "cement_allergy": "bool; allergy.cement",
    "contrast_allergy": "bool; allergy.contrast",
    "known_malignancy": "bool; cancer.known_malignancy",
    "myeloma": "bool; cancer.myeloma",
    "life_expectancy_months": "months; cancer.life_expectancy_months",
    "can_lie_prone": "bool; fitness.can_lie_prone",
    "severe_cardiopulmonary": "bool; fitness.severe_cardiopulmonary_disease",
    "pregnant": "bool; fitness.pregnant",
    "high_energy_trauma": "bool; fitness.high_energy_trauma",
    "dxa_t_score": "T-score; bone_health.dxa_t_score",
    "osteoporotic": "bool; DXA T-score ≤ −2.5 or CT opportunistic screen says osteoporosis (either known true → true)",
    # level (clinical file)
    "level": "vertebra name, e.g. L1",
    "mri_oedema": "bool; levels[].mri_stir_oedema",
    "bone_scan_active": "bool; levels[].bone_scan_active",
    "imaging_acute": "bool; MRI oedema or bone-scan activity (Kleene or)",
    "tender_at_level": "bool; levels[].tender_on_exam",
    "fracture_age_weeks": "weeks; levels[].fracture_age_weeks, else pain.duration_weeks",
    "height_loss_progressing": "bool; levels[].height_loss_progressing",
    "previously_augmented": "bool; levels[].previously_augmented",
    "tumour_flagged": "bool; a tumour block is given for this level",
    "sins_total": "points 0-18; SINS when a tumour is flagged, else unknown",
    # level (assessment)
    "genant_grade": "0-3; assessment levels[].genant_grade",
    "genant_type": "normal|wedge|biconcave|crush; assessment",
    "height_loss_pct": "%; assessment levels[].height_loss_pct",
    "wedge_angle_deg": "degrees; assessment levels[].wedge_angle_deg",
    "posterior_wall_bulge_mm": "mm; assessment levels[].posterior_wall_bulge_mm",
    "trabecular_hu": "HU; assessment levels[].trabecular_hu",
    "ct_osteoporosis": "normal|osteopenia|osteoporosis; assessment spine.osteoporosis",
    "at_or_below_t5": "bool; level is T5 or more caudal",
    "below_l5": "bool; level is caudal to L5 (L6/sacrum)",
    # derived over levels / rules
    "unfavourable_factors": "count 0-7 of the Hirsch 2018 decision factors known to be unfavourable",
    "n_target_levels": "count of candidate levels with MRI oedema or bone-scan activity",
    "indications_met": "count of indication rules that fired (stage 2 only)",
}

#: Hirsch 2018 unfavourable-factor thresholds (operational choices, documented in docs/clinical.md)
PAIN_PERSISTENT_WEEKS = 3.0        # pain persisting ≥ 3 weeks despite treatment [assumption]
HEIGHT_LOSS_UNFAVOURABLE_PCT = 25.0  # Genant grade ≥ 2 (≥ 25 % height loss)
KYPHOSIS_UNFAVOURABLE_DEG = 15.0   # vertebral wedge angle ≥ 15° [assumption]
ODI_SEVERE_PCT = 40.0              # ODI ≥ 40 % = severe disability (Fairbank banding) [U]
VERSE_T5, VERSE_L5 = 12, 24


class FiredRule(BaseModel):
    id: str
    verdict: str
    reason: str
    source: str
    facts: dict[str, Any] = Field(default_factory=dict, description="values of the facts the rule read")


class UnknownRule(BaseModel):
    id: str
    verdict: str
    reason: str
    source: str
    missing: list[str]
    blocks_decision: bool


class LevelDecision(BaseModel):
    level: str
    verdict: Literal["indicated", "relative_contraindication", "contraindicated", "insufficient_information"]
    summary: str
    fired: list[FiredRule] = Field(default_factory=list)
    unknown: list[UnknownRule] = Field(default_factory=list)
    missing_facts: list[str] = Field(default_factory=list)
    sins: Optional[dict[str, Any]] = None
    facts: dict[str, Any] = Field(default_factory=dict)


class Decision(BaseModel):
    schema_: str = Field(DECISION_SCHEMA, alias="schema")
    case_id: Optional[str] = None
    levels: list[LevelDecision]
    indicated_levels: list[str]
    rules_version: int
    rules_digest: str
    notes: list[str] = Field(default_factory=list)
    research_notice: str = ""

    model_config = {"populate_by_name": True}

    def level(self, name: str) -> LevelDecision:
        for lv in self.levels:
            if lv.level == name:
                return lv
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# ----------------------------------------------------------------------------- assessment input
def normalise_assessment(assessment: Any) -> dict[str, Any]:
    """Assessment as a plain dict (accepts a dict, a pydantic model, a dataclass or a JSON path)."""
    if assessment is None:
        return {"levels": [], "spine": {}}
    if hasattr(assessment, "model_dump"):
        assessment = assessment.model_dump(mode="json")
    elif hasattr(assessment, "to_dict"):
        assessment = assessment.to_dict()
    elif isinstance(assessment, (str, bytes)) or hasattr(assessment, "__fspath__"):
        import json
        from pathlib import Path
        p = Path(assessment)
        if not p.is_file():
            raise InputError(f"assessment file not found: {p}")
        try:
            assessment = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{p}: not valid JSON: {exc}") from None
    if not isinstance(assessment, dict):
        raise InputError(f"assessment: expected a mapping, got {type(assessment).__name__}")
    schema = assessment.get("schema")
    if schema is not None and not str(schema).startswith("kyphosim.assessment/"):
        raise InputError(f"assessment: schema {schema!r} is not kyphosim.assessment/*")
    levels = assessment.get("levels") or []
    if not isinstance(levels, list):
        raise InputError("assessment.levels: expected a list")
    return {"levels": levels, "spine": assessment.get("spine") or {}}


def _level_name(entry: dict) -> str:
    from kyphosim.imaging.labels import vertebra_id, vertebra_name

    key = entry.get("name") or entry.get("label")
    if key is None:
        raise InputError("assessment.levels[]: each level needs 'name' or 'label'")
    try:
        return vertebra_name(vertebra_id(key))
    except ValueError as exc:
        raise InputError(f"assessment.levels[]: {exc}") from None


def _num(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return None if f != f else (int(f) if float(f).is_integer() and isinstance(v, int) else f)


def _kleene_or(*vals: Optional[bool]) -> Optional[bool]:
    if any(v is True for v in vals):
        return True
    if all(v is False for v in vals):
        return False
    return None


# ----------------------------------------------------------------------------- facts
def _patient_facts(c: ClinicalInput, spine: dict) -> dict[str, Any]:
    ct_ost = spine.get("osteoporosis")
    t = c.bone_health.dxa_t_score
    osteoporotic = _kleene_or(None if t is None else t <= -2.5,
                              None if ct_ost is None else ct_ost == "osteoporosis")
    return {
        "age_years": c.patient.age_years, "sex": c.patient.sex,
        "pain_nrs": c.pain.nrs, "pain_duration_weeks": c.pain.duration_weeks,
        "pain_worsening": c.pain.worsening,
        "conservative_tried": c.conservative_care.tried, "conservative_weeks": c.conservative_care.duration_weeks,
        "on_opioids": c.conservative_care.on_opioids,
        "odi_pct": c.function.odi_pct, "rdq": c.function.rdq,
        "daily_function_impaired": c.function.daily_function_impaired,
        "hospitalised_for_pain": c.function.hospitalised_for_pain,
        "pulmonary_dysfunction": c.function.pulmonary_dysfunction,
        "neuro_deficit": c.neurology.deficit, "radiculopathy": c.neurology.radiculopathy,
        "cord_compression": c.neurology.cord_compression,
        "infection_local": c.infection.local_active, "infection_systemic": c.infection.systemic_untreated,
        "coagulopathy_uncorrected": c.bleeding.coagulopathy_uncorrected, "anticoagulated": c.bleeding.anticoagulated,
        "cement_allergy": c.allergy.cement, "contrast_allergy": c.allergy.contrast,
        "known_malignancy": c.cancer.known_malignancy, "myeloma": c.cancer.myeloma,
        "life_expectancy_months": c.cancer.life_expectancy_months,
        "can_lie_prone": c.fitness.can_lie_prone, "severe_cardiopulmonary": c.fitness.severe_cardiopulmonary_disease,
        "pregnant": c.fitness.pregnant, "high_energy_trauma": c.fitness.high_energy_trauma,
        "dxa_t_score": t, "osteoporotic": osteoporotic, "ct_osteoporosis": ct_ost,
    }


def level_facts(clinical: ClinicalInput, name: str, morph: dict | None, spine: dict | None = None,
                *, n_target_levels: int = 0) -> dict[str, Any]:
    """All facts for one level (patient + level + assessment + derived); unknown values are None."""
    from kyphosim.imaging.labels import vertebra_id

    spine = spine or {}
    morph = morph or {}
    f = _patient_facts(clinical, spine)
    lv = clinical.level(name)
    vid = vertebra_id(name)
    rank = 19.5 if vid == 28 else float(vid)
    f.update({
        "level": name,
        "mri_oedema": lv.mri_stir_oedema if lv else None,
        "bone_scan_active": lv.bone_scan_active if lv else None,
        "tender_at_level": lv.tender_on_exam if lv else None,
        "fracture_age_weeks": (lv.fracture_age_weeks if lv and lv.fracture_age_weeks is not None
                               else clinical.pain.duration_weeks),
        "height_loss_progressing": lv.height_loss_progressing if lv else None,
        "previously_augmented": lv.previously_augmented if lv else None,
        "tumour_flagged": bool(lv and lv.tumour is not None),
        "genant_grade": _num(morph.get("genant_grade")),
        "genant_type": morph.get("genant_type"),
        "height_loss_pct": _num(morph.get("height_loss_pct")),
        "wedge_angle_deg": _num(morph.get("wedge_angle_deg")),
        "posterior_wall_bulge_mm": _num(morph.get("posterior_wall_bulge_mm")),
        "trabecular_hu": _num(morph.get("trabecular_hu")),
        "at_or_below_t5": rank >= VERSE_T5 and vid != 26,
        "below_l5": rank > VERSE_L5 and vid != 28,
        "n_target_levels": n_target_levels,
        "sins_total": None,
    })
    f["imaging_acute"] = _kleene_or(f["mri_oedema"], f["bone_scan_active"])
    # Hirsch 2018's seven decision factors, counted when known to be unfavourable
    factors = [
        f["pain_duration_weeks"] is not None and f["pain_duration_weeks"] >= PAIN_PERSISTENT_WEEKS
        and f["conservative_tried"] is True,
        f["imaging_acute"] is True,
        f["height_loss_pct"] is not None and f["height_loss_pct"] >= HEIGHT_LOSS_UNFAVOURABLE_PCT,
        f["wedge_angle_deg"] is not None and f["wedge_angle_deg"] >= KYPHOSIS_UNFAVOURABLE_DEG,
        f["height_loss_progressing"] is True,
        f["pain_worsening"] is True,
        f["daily_function_impaired"] is True or f["hospitalised_for_pain"] is True
        or (f["odi_pct"] is not None and f["odi_pct"] >= ODI_SEVERE_PCT),
    ]
    f["unfavourable_factors"] = int(sum(bool(x) for x in factors))
    return f


def _sins_for(clinical: ClinicalInput, name: str, facts: dict) -> dict | None:
    lv = clinical.level(name)
    if lv is None or lv.tumour is None:
        return None
    t = lv.tumour
    s = score_sins(name, pain=t.pain, lesion=t.lesion, alignment=t.alignment, posterolateral=t.posterolateral,
                   height_loss_pct=facts["height_loss_pct"], wedge_angle_deg=facts["wedge_angle_deg"],
                   body_involvement_gt_50pct=t.body_involvement_gt_50pct)
    return s.to_dict()


# ----------------------------------------------------------------------------- evaluation
def _candidate_levels(clinical: ClinicalInput, morph_by_level: dict[str, dict], spine: dict | None = None) -> list[str]:
    from kyphosim.imaging.labels import craniocaudal_order, vertebra_id, vertebra_name

    names = set()
    for n in (spine or {}).get("fractured_levels") or []:  # the assessment's own list, when given
        try:
            names.add(vertebra_name(vertebra_id(n)))
        except ValueError:
            raise InputError(f"assessment.spine.fractured_levels: unknown level {n!r}") from None
    for name, m in morph_by_level.items():
        grade = _num(m.get("genant_grade"))
        flags = m.get("flags") or []
        if (isinstance(grade, (int, float)) and grade >= 1) or "fracture" in flags:
            names.add(name)
    names.update(lv.level for lv in clinical.levels)
    return [vertebra_name(i) for i in craniocaudal_order(vertebra_id(n) for n in names)]


_SUMMARY = {
    "indicated": "Indicated: {n} indication criteria met, no contraindication.",
    "relative_contraindication": "Relative contraindication: treatment possible only after weighing {k}.",
    "contraindicated": "Contraindicated: {k}.",
    "insufficient_information": "Insufficient information: needs {m}.",
}


def evaluate(clinical: Any, assessment: Any = None, *, rules: RuleTable | None = None,
             levels: Iterable[str] | None = None) -> Decision:
    """Decide per level whether vertebral augmentation is indicated.

    Parameters
    ----------
    clinical : :class:`ClinicalInput` or a dict in the ``kyphosim.clinical/1`` schema.
    assessment : ``kyphosim.assessment/1`` dict, pydantic object, path to its JSON, or None.
    rules : rules table (default: the packaged ``rules.yaml``).
    levels : restrict to these level names (default: candidate levels, see module docstring).
    """
    from kyphosim import RESEARCH_NOTICE

    c = parse_clinical(clinical)
    table = rules or default_rules()
    a = normalise_assessment(assessment)
    morph_by_level = {}
    for entry in a["levels"]:
        if not isinstance(entry, dict):
            raise InputError("assessment.levels[]: each level must be a mapping")
        morph_by_level[_level_name(entry)] = entry
    spine = a["spine"] if isinstance(a["spine"], dict) else {}
    if levels is not None:
        from kyphosim.imaging.labels import vertebra_id, vertebra_name
        names = [vertebra_name(vertebra_id(n)) for n in levels]
    else:
        names = _candidate_levels(c, morph_by_level, spine)
    notes: list[str] = []
    if not names:
        notes.append("No candidate level: no fractured level in the assessment and none named in the clinical file.")
    if assessment is None:
        notes.append("No CT assessment given: morphometry facts are unknown.")
    for lv in c.levels:
        if morph_by_level and lv.level not in morph_by_level:
            notes.append(f"{lv.level} is in the clinical file but not in the CT assessment.")

    pre = {n: level_facts(c, n, morph_by_level.get(n), spine) for n in names}
    n_targets = sum(1 for f in pre.values() if f["imaging_acute"] is True)
    out: list[LevelDecision] = []
    indicated: list[str] = []
    for name in names:
        facts = dict(pre[name])
        facts["n_target_levels"] = n_targets
        sins = _sins_for(c, name, facts)
        if sins is not None:
            facts["sins_total"] = sins["total"]
        fired: list[FiredRule] = []
        unknown: list[UnknownRule] = []
        env = {**facts, **table.parameters, "indications_met": None}
        for stage in (1, 2):
            if stage == 2:
                env["indications_met"] = sum(1 for r in fired if r.verdict == "indicated")
            for rule in (r for r in table.rules if r.stage == stage):
                val = rule.condition.evaluate(env)
                read = {k: env[k] for k in sorted(rule.condition.names) if k in facts or k == "indications_met"}
                if val is True:
                    fired.append(FiredRule(id=rule.id, verdict=rule.verdict, reason=rule.reason,
                                           source=rule.source, facts=read))
                elif val is UNKNOWN:
                    unknown.append(UnknownRule(id=rule.id, verdict=rule.verdict, reason=rule.reason,
                                               source=rule.source, missing=rule.condition.unknown_names(env),
                                               blocks_decision=rule.on_unknown == "insufficient"))
        verdicts = [r.verdict for r in fired]
        if any(u.blocks_decision for u in unknown):
            verdicts.append("insufficient_information")
        if not verdicts:  # only possible with a custom table lacking a fallback rule
            verdicts.append("insufficient_information")
        verdict = max(verdicts, key=lambda v: VERDICT_SEVERITY[v])
        missing = sorted({m for u in unknown if u.blocks_decision for m in u.missing})
        keys = [r.id for r in fired if r.verdict == verdict]
        summary = _SUMMARY[verdict].format(n=sum(v == "indicated" for v in verdicts), k=", ".join(keys) or "-",
                                           m=", ".join(missing) or "-")
        out.append(LevelDecision(level=name, verdict=verdict, summary=summary, fired=fired, unknown=unknown,
                                 missing_facts=missing, sins=sins, facts=facts))
        if verdict == "indicated":
            indicated.append(name)
    return Decision(case_id=c.case_id, levels=out, indicated_levels=indicated, rules_version=table.version,
                    rules_digest=table.digest, notes=notes, research_notice=RESEARCH_NOTICE)


# ----------------------------------------------------------------------------- HTML
_BADGE = {"indicated": ("#1b5e20", "#e8f5e9", "Indicated"),
          "relative_contraindication": ("#8a5300", "#fff3e0", "Relative contraindication"),
          "contraindicated": ("#b71c1c", "#ffebee", "Contraindicated"),
          "insufficient_information": ("#37474f", "#eceff1", "Insufficient information")}


def decision_html(decision: Decision) -> str:
    """An HTML fragment (``<section class="kyphosim-decision">``) with inline styles, for reports."""
    e = html.escape
    parts = ['<section class="kyphosim-decision"><h2>Decision per level</h2>']
    if not decision.levels:
        parts.append("<p>No candidate level.</p>")
    for lv in decision.levels:
        fg, bg, label = _BADGE[lv.verdict]
        parts.append(f'<div class="level" style="border-left:6px solid {fg};background:{bg};padding:8px 12px;'
                     f'margin:10px 0"><h3 style="margin:0 0 4px 0">{e(lv.level)}: '
                     f'<span style="color:{fg}">{label}</span></h3>')
        rows = "".join(f"<tr><td><code>{e(r.id)}</code></td><td>{e(_BADGE[r.verdict][2])}</td>"
                       f"<td>{e(r.reason)}</td><td><small>{e(r.source)}</small></td></tr>" for r in lv.fired)
        if rows:
            parts.append('<table style="border-collapse:collapse;width:100%;font-size:0.92em">'
                         "<thead><tr><th align=left>rule</th><th align=left>effect</th><th align=left>reason</th>"
                         f"<th align=left>source</th></tr></thead><tbody>{rows}</tbody></table>")
        if lv.missing_facts:
            parts.append(f"<p><b>Missing information:</b> {e(', '.join(lv.missing_facts))}</p>")
        if lv.sins:
            parts.append(f"<p><b>SINS</b> {lv.sins['total']} ({e(lv.sins['category'].replace('_', ' '))})</p>")
        parts.append("</div>")
    for n in decision.notes:
        parts.append(f"<p><i>{e(n)}</i></p>")
    parts.append("</section>")
    return "".join(parts)
