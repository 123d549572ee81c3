"""Clinical input: the facts a clinician supplies beside the CT (schema ``kyphosim.clinical/1``).

A YAML or JSON file validated by :class:`ClinicalInput`. Unknown fields and impossible values are
errors that name the field (``pain.nrs: ...``). A field left out (``null``) means *not known*: the
indications engine then answers ``insufficient_information`` wherever the fact matters, instead of
guessing. Units are in the field names (``_years``, ``_weeks``, ``_kg``, ``_cm``, ``_months``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kyphosim.errors import InputError

__all__ = [
    "CLINICAL_SCHEMA", "ClinicalInput", "Patient", "Pain", "ConservativeCare", "Function", "Neurology",
    "Infection", "Bleeding", "Allergy", "Cancer", "Fitness", "BoneHealth", "LevelClinical", "Tumour",
    "load_clinical", "parse_clinical", "clinical_json_schema", "format_validation_error",
]

CLINICAL_SCHEMA = "kyphosim.clinical/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_strip_whitespace=True)


class Patient(_Strict):
    """Who the patient is."""
    age_years: int = Field(..., ge=0, le=120, description="Age in whole years")
    sex: Literal["female", "male", "other", "unknown"] = Field(..., description="Sex recorded for dosing norms")
    weight_kg: Optional[float] = Field(None, gt=0, le=400, description="Body weight, kg")
    height_cm: Optional[float] = Field(None, gt=30, le=260, description="Standing height, cm")


class Pain(_Strict):
    """Back pain now (0–10 numeric rating scale) and how long it has lasted."""
    nrs: Optional[float] = Field(None, ge=0, le=10, description="Pain on the 0–10 numeric rating scale (VAS/10 is accepted)")
    duration_weeks: Optional[float] = Field(None, ge=0, le=1040, description="Weeks since the pain began")
    worsening: Optional[bool] = Field(None, description="Pain or function getting worse despite treatment")
    mechanical: Optional[bool] = Field(None, description="Pain worse on loading/movement, relieved lying down")


class ConservativeCare(_Strict):
    """Medical (non-surgical) management tried so far."""
    tried: Optional[bool] = Field(None, description="Analgesics / bracing / rest / physiotherapy tried")
    duration_weeks: Optional[float] = Field(None, ge=0, le=1040, description="Weeks of conservative treatment")
    modalities: list[Literal["analgesics", "opioids", "nsaids", "bracing", "bed_rest", "physiotherapy",
                             "calcitonin", "nerve_block", "other"]] = Field(default_factory=list)
    on_opioids: Optional[bool] = Field(None, description="Currently taking opioid pain medication")


class Function(_Strict):
    """Disability scores and impact on daily life."""
    odi_pct: Optional[float] = Field(None, ge=0, le=100, description="Oswestry Disability Index, 0–100 %")
    rdq: Optional[int] = Field(None, ge=0, le=24, description="Roland–Morris Disability Questionnaire, 0–24")
    daily_function_impaired: Optional[bool] = Field(None, description="Pain limits walking, self-care or sleep")
    hospitalised_for_pain: Optional[bool] = Field(None, description="Admitted because of the pain")
    pulmonary_dysfunction: Optional[bool] = Field(None, description="Breathing impaired by kyphosis/pain")


class Neurology(_Strict):
    deficit: Optional[bool] = Field(None, description="New motor or sensory deficit, or bladder/bowel dysfunction")
    radiculopathy: Optional[bool] = Field(None, description="Radicular (nerve-root) pain or signs")
    cord_compression: Optional[bool] = Field(None, description="Spinal cord or cauda equina compression on imaging")


class Infection(_Strict):
    local_active: Optional[bool] = Field(None, description="Active infection at the treatment site (osteomyelitis, discitis, skin)")
    systemic_untreated: Optional[bool] = Field(None, description="Sepsis or untreated blood-borne infection")


class Bleeding(_Strict):
    coagulopathy_uncorrected: Optional[bool] = Field(None, description="Bleeding disorder that cannot be corrected before the procedure")
    anticoagulated: Optional[bool] = Field(None, description="On anticoagulant or antiplatelet therapy that raises bleeding risk")
    platelets_per_nl: Optional[float] = Field(None, ge=0, le=2000, description="Platelet count, 10⁹/L")
    inr: Optional[float] = Field(None, ge=0.5, le=20, description="International normalised ratio")


class Allergy(_Strict):
    cement: Optional[bool] = Field(None, description="Severe allergy to PMMA bone cement")
    contrast: Optional[bool] = Field(None, description="Severe allergy to contrast media")


class Cancer(_Strict):
    known_malignancy: Optional[bool] = Field(None, description="Known cancer with possible spinal involvement")
    myeloma: Optional[bool] = Field(None, description="Multiple myeloma")
    life_expectancy_months: Optional[float] = Field(None, ge=0, le=600, description="Estimated life expectancy, months")


class Fitness(_Strict):
    can_lie_prone: Optional[bool] = Field(None, description="Able to lie face down for ~1 h")
    severe_cardiopulmonary_disease: Optional[bool] = Field(None, description="Unfit for sedation/anaesthesia")
    pregnant: Optional[bool] = Field(None, description="Currently pregnant")
    high_energy_trauma: Optional[bool] = Field(None, description="Fracture from high-energy trauma (not a fragility fracture)")
    fall_risk: Optional[bool] = Field(None, description="History of falls or high fall risk")


class BoneHealth(_Strict):
    dxa_t_score: Optional[float] = Field(None, ge=-8, le=6, description="Lowest DXA T-score")
    dxa_date: Optional[str] = Field(None, description="Date of the last DXA, YYYY-MM-DD")
    on_osteoporosis_treatment: Optional[bool] = Field(None, description="Already on bisphosphonate/denosumab/anabolic therapy")
    long_term_steroids: Optional[bool] = Field(None, description="Long-term glucocorticoid use")
    prior_fragility_fracture: Optional[bool] = Field(None, description="Earlier fragility fracture at any site")


class Tumour(_Strict):
    """Spinal Instability Neoplastic Score inputs that CT morphometry cannot supply (Fisher 2010)."""
    pain: Literal["mechanical", "occasional_non_mechanical", "pain_free"] = "mechanical"
    lesion: Literal["lytic", "mixed", "blastic"] = "lytic"
    alignment: Optional[Literal["subluxation_translation", "de_novo_deformity", "normal"]] = None
    body_involvement_gt_50pct: Optional[bool] = Field(None, description="Tumour involves > 50 % of the body (used when there is no collapse)")
    posterolateral: Literal["bilateral", "unilateral", "none"] = "none"


class LevelClinical(_Strict):
    """What clinical examination and MRI/bone scan show at one vertebral level."""
    level: str = Field(..., description="Vertebra name, e.g. L1 or T12")
    mri_stir_oedema: Optional[bool] = Field(None, description="Bone-marrow oedema on STIR/T2 fat-saturated MRI")
    bone_scan_active: Optional[bool] = Field(None, description="Increased uptake on bone scintigraphy")
    tender_on_exam: Optional[bool] = Field(None, description="Focal tenderness / pain reproduced at this level")
    fracture_age_weeks: Optional[float] = Field(None, ge=0, le=2080, description="Weeks since this fracture (if known)")
    height_loss_progressing: Optional[bool] = Field(None, description="Height loss progressing on serial imaging")
    previously_augmented: Optional[bool] = Field(None, description="Already cemented")
    tumour: Optional[Tumour] = Field(None, description="Set when a tumour is suspected/known at this level (SINS is scored)")

    @field_validator("level")
    @classmethod
    def _level_name(cls, v: str) -> str:
        from kyphosim.imaging.labels import vertebra_id, vertebra_name

        try:
            return vertebra_name(vertebra_id(v))
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class ClinicalInput(_Strict):
    """Everything the indications engine and the care plan need besides the CT.

    Omitted (``null``) fields mean "not known". Sections may be omitted entirely.
    """
    schema_: Literal["kyphosim.clinical/1"] = Field(CLINICAL_SCHEMA, alias="schema")
    case_id: Optional[str] = Field(None, max_length=64, description="Pseudonymous case identifier (no names)")
    patient: Patient
    pain: Pain = Field(default_factory=Pain)
    conservative_care: ConservativeCare = Field(default_factory=ConservativeCare)
    function: Function = Field(default_factory=Function)
    neurology: Neurology = Field(default_factory=Neurology)
    infection: Infection = Field(default_factory=Infection)
    bleeding: Bleeding = Field(default_factory=Bleeding)
    allergy: Allergy = Field(default_factory=Allergy)
    cancer: Cancer = Field(default_factory=Cancer)
    fitness: Fitness = Field(default_factory=Fitness)
    bone_health: BoneHealth = Field(default_factory=BoneHealth)
    levels: list[LevelClinical] = Field(default_factory=list, description="Per-level findings")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    @model_validator(mode="after")
    def _consistent(self) -> "ClinicalInput":
        names = [lv.level for lv in self.levels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"levels: level {', '.join(dup)} listed more than once")
        if self.fitness.pregnant and self.patient.sex == "male":
            raise ValueError("fitness.pregnant: cannot be true when patient.sex is male")
        cc = self.conservative_care
        if cc.tried is False and (cc.duration_weeks or 0) > 0:
            raise ValueError("conservative_care.duration_weeks: given although conservative_care.tried is false")
        if self.bone_health.dxa_date is not None:
            import datetime as _dt
            try:
                _dt.date.fromisoformat(self.bone_health.dxa_date)
            except ValueError:
                raise ValueError("bone_health.dxa_date: expected YYYY-MM-DD") from None
        return self

    def level(self, name: str) -> LevelClinical | None:
        """Per-level findings for ``name`` (e.g. 'L1'), or None."""
        for lv in self.levels:
            if lv.level == name:
                return lv
        return None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One readable line per problem: ``source: field.path: message (got value)``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "__root__")
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err.get("type") == "extra_forbidden":
            msg = "unknown field (not in schema kyphosim.clinical/1)"
        got = err.get("input")
        if err.get("type") not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)):
            msg += f" (got {got!r})"
        parts.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    return f"{source}: " + "; ".join(parts)


def parse_clinical(data: Any, *, source: str = "clinical input") -> ClinicalInput:
    """Validate a dict (or an existing :class:`ClinicalInput`); raises :class:`InputError` naming fields."""
    if isinstance(data, ClinicalInput):
        return data
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return ClinicalInput.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source)) from None


def load_clinical(path: str | os.PathLike) -> ClinicalInput:
    """Read a clinical YAML (``.yaml``/``.yml``) or JSON file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"clinical file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {first}") from None
    return parse_clinical(data, source=str(path))


def clinical_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the clinical input file."""
    schema = ClinicalInput.model_json_schema(by_alias=True)
    schema["$id"] = "https://kyphosim.org/schema/clinical-1.json"
    schema["title"] = "kyphosim clinical input (kyphosim.clinical/1)"
    return schema
