"""FHIR R4 export: Patient, Condition (fracture, osteoporosis), Procedure, Observations and CarePlan.

``build_fhir_bundle(plan, clinical=None, assessment=None)`` returns a ``Bundle`` (type
``collection``) as a plain dict; every coding comes from the code table ``care/codes.yaml`` (standard
LOINC / SNOMED CT / CPT codes only where we are sure of them, otherwise the local kyphosim code
system). ``validate_fhir_bundle`` parses it with the ``fhir.resources`` package (optional extra
``fhir``). Note: fhir.resources ≥ 7 models R5 at top level; we validate with its **R4B** subpackage
(``fhir.resources.R4B``, FHIR 4.3), whose Patient/Condition/Procedure/Observation/CarePlan match R4
(4.0.1) for every element written here. Identifiers are UUID-5 values derived from the case id, so
output is deterministic.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from kyphosim.care.careplan import CarePlan
from kyphosim.errors import InputError
from kyphosim.fileio import write_json

__all__ = ["build_fhir_bundle", "validate_fhir_bundle", "write_fhir_bundle", "code_table", "coding"]

_NS = uuid.UUID("6f1c2a4e-8d3b-5c7a-9e0f-1a2b3c4d5e6f")


@lru_cache(maxsize=1)
def code_table() -> dict[str, Any]:
    """The code table (``care/codes.yaml``) with systems resolved to URLs."""
    import yaml

    data = yaml.safe_load(resources.files("kyphosim.care").joinpath("codes.yaml").read_text(encoding="utf-8"))
    systems = data["systems"]
    codes = {k: {**v, "system": systems[v["system"]]} for k, v in data["codes"].items()}
    return {"systems": systems, "codes": codes, "units": data["units"]}


def coding(key: str) -> dict[str, str]:
    """A FHIR Coding for a code-table key."""
    c = code_table()["codes"][key]
    out = {"system": c["system"], "code": str(c["code"])}
    if c.get("display"):
        out["display"] = c["display"]
    return out


def _cc(key: str, text: str | None = None) -> dict:
    d: dict[str, Any] = {"coding": [coding(key)]}
    if text:
        d["text"] = text
    return d


def _qty(value: float, unit_key: str, unit_text: str) -> dict:
    return {"value": round(float(value), 3), "unit": unit_text, "system": "http://unitsofmeasure.org",
            "code": code_table()["units"][unit_key]}


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _region(level: str) -> str:
    return "lumbar" if level.startswith("L") or level.startswith("S") else "thoracic"


_LEVEL_MEASURES = [  # assessment key, code key, unit key, unit text, label
    ("height_anterior_mm", "height_anterior", "mm", "mm"),
    ("height_middle_mm", "height_middle", "mm", "mm"),
    ("height_posterior_mm", "height_posterior", "mm", "mm"),
    ("height_loss_pct", "height_loss", "pct", "%"),
    ("wedge_angle_deg", "wedge_angle", "deg", "deg"),
    ("trabecular_hu", "trabecular_hu", "hu", "HU"),
    ("vbmd_mg_cm3", "vbmd", "mg_cm3", "mg/cm3"),
    ("posterior_wall_bulge_mm", "posterior_wall_bulge", "mm", "mm"),
]


def _num(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) != float("inf") else None


def build_fhir_bundle(plan: CarePlan, clinical: Any = None, assessment: Any = None, *,
                     procedure_status: str = "preparation") -> dict[str, Any]:
    """FHIR R4 Bundle (collection) for the case.

    Parameters
    ----------
    plan : the care plan (treated levels, procedure date, milestones).
    clinical : optional clinical input (baseline pain NRS and ODI become survey Observations).
    assessment : optional ``kyphosim.assessment/1`` (morphometry Observations per level, spine summary,
        osteoporosis Condition when the CT screen says so).
    procedure_status : FHIR Procedure.status: ``preparation`` (planned, default) or ``completed``.
    """
    from kyphosim.clinical.engine import _level_name, normalise_assessment

    if procedure_status not in ("preparation", "in-progress", "completed", "not-done", "on-hold", "stopped",
                                "entered-in-error", "unknown"):
        raise InputError(f"procedure_status {procedure_status!r} is not a FHIR Procedure.status")
    c = None
    if clinical is not None:
        from kyphosim.clinical.input import load_clinical, parse_clinical
        c = load_clinical(clinical) if isinstance(clinical, str) or hasattr(clinical, "__fspath__") \
            else parse_clinical(clinical)
    a = normalise_assessment(assessment)
    morph = {_level_name(e): e for e in a["levels"] if isinstance(e, dict)}
    case = plan.case_id or "case"
    date = plan.procedure_date.isoformat()
    entries: list[dict] = []

    def add(resource: dict, key: str) -> str:
        rid = _uuid(case, resource["resourceType"], key)
        resource["id"] = rid
        entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": resource})
        return f"urn:uuid:{rid}"

    gender = {"female": "female", "male": "male", "other": "other"}.get(plan.patient_sex or "", "unknown")
    patient = {"resourceType": "Patient", "active": True, "gender": gender,
               "identifier": [{"system": "https://kyphosim.org/fhir/case-id", "value": case}]}
    pref = add(patient, "patient")
    subj = {"reference": pref}

    cond_refs: dict[str, str] = {}
    for lv in plan.levels:
        m = morph.get(lv, {})
        grade, gtype = m.get("genant_grade"), m.get("genant_type")
        text = f"Vertebral compression fracture of {lv}"
        if grade is not None:
            text += f" (Genant grade {grade}{', ' + str(gtype) if gtype else ''})"
        cond = {"resourceType": "Condition", "clinicalStatus": _cc("clinical_active"),
                "verificationStatus": _cc("verification_confirmed"),
                "category": [_cc("encounter_diagnosis")], "code": _cc("vertebral_fracture", text),
                "bodySite": [{"text": f"{lv} vertebral body"}], "subject": subj}
        cond_refs[lv] = add(cond, f"fracture-{lv}")
    ct_ost = (a["spine"] or {}).get("osteoporosis") if isinstance(a["spine"], dict) else None
    dxa = c.bone_health.dxa_t_score if c else None
    if ct_ost == "osteoporosis" or (dxa is not None and dxa <= -2.5):
        confirmed = dxa is not None and dxa <= -2.5
        basis = f"DXA T-score {dxa:g}" if confirmed else "opportunistic CT screen (L1 attenuation)"
        cond = {"resourceType": "Condition", "clinicalStatus": _cc("clinical_active"),
                "verificationStatus": _cc("verification_confirmed" if confirmed else "verification_provisional"),
                "category": [_cc("encounter_diagnosis")], "code": _cc("osteoporosis", f"Osteoporosis ({basis})"),
                "subject": subj}
        cond_refs["osteoporosis"] = add(cond, "osteoporosis")

    kp = plan.procedure == "balloon kyphoplasty"
    proc_refs = []
    for lv in plan.levels:
        key = ("kyphoplasty_" if kp else "vertebroplasty_") + _region(lv)
        proc = {"resourceType": "Procedure", "status": procedure_status,
                "code": _cc(key, f"{plan.procedure.capitalize()} of {lv}"), "subject": subj,
                "performedDateTime": date, "bodySite": [{"text": f"{lv} vertebral body"}],
                "reasonReference": [{"reference": cond_refs[lv]}]}
        proc_refs.append(add(proc, f"procedure-{lv}"))

    obs_refs = []
    for lv, m in morph.items():
        comps = []
        for akey, ckey, ukey, utext in _LEVEL_MEASURES:
            v = _num(m.get(akey))
            if v is not None:
                comps.append({"code": _cc(ckey), "valueQuantity": _qty(v, ukey, utext)})
        if m.get("genant_grade") is not None:
            comps.append({"code": _cc("genant_grade"), "valueInteger": int(round(float(m["genant_grade"])))})
        if m.get("genant_type"):
            comps.append({"code": _cc("genant_type"), "valueString": str(m["genant_type"])})
        if not comps:
            continue
        obs = {"resourceType": "Observation", "status": "final", "category": [_cc("cat_imaging")],
               "code": _cc("morphometry_panel", f"Vertebral morphometry {lv}"), "subject": subj,
               "bodySite": {"text": f"{lv} vertebral body"}, "component": comps}
        obs_refs.append(add(obs, f"morphometry-{lv}"))
    spine = a["spine"] if isinstance(a["spine"], dict) else {}
    comps = []
    if _num(spine.get("sdi")) is not None:
        comps.append({"code": _cc("sdi"), "valueInteger": int(round(float(spine["sdi"])))})
    if _num(spine.get("l1_trabecular_hu")) is not None:
        comps.append({"code": _cc("l1_hu"), "valueQuantity": _qty(spine["l1_trabecular_hu"], "hu", "HU")})
    if _num(spine.get("regional_kyphosis_deg")) is not None:
        comps.append({"code": _cc("regional_kyphosis"), "valueQuantity": _qty(spine["regional_kyphosis_deg"], "deg", "deg")})
    if comps:
        obs_refs.append(add({"resourceType": "Observation", "status": "final", "category": [_cc("cat_imaging")],
                             "code": _cc("spine_panel"), "subject": subj, "component": comps}, "spine"))
    if c and c.pain.nrs is not None:
        nrs = c.pain.nrs
        obs = {"resourceType": "Observation", "status": "final", "category": [_cc("cat_survey")],
               "code": _cc("pain_nrs", "Back pain before the procedure (0-10)"), "subject": subj}
        if float(nrs).is_integer():
            obs["valueInteger"] = int(nrs)
        else:
            obs["valueQuantity"] = _qty(nrs, "score", "score")
        obs_refs.append(add(obs, "baseline-nrs"))
    if c and c.function.odi_pct is not None:
        obs_refs.append(add({"resourceType": "Observation", "status": "final", "category": [_cc("cat_survey")],
                             "code": _cc("odi", "Oswestry Disability Index before the procedure"),
                             "subject": subj, "valueQuantity": _qty(c.function.odi_pct, "pct", "%")}, "baseline-odi"))

    activities = []
    for mst in plan.milestones:
        detail: dict[str, Any] = {"status": "scheduled" if mst.category == "follow_up" else "not-started",
                                  "description": f"{mst.title}. {mst.detail}"}
        end = mst.end_date or mst.window_end_date
        if mst.daily:
            detail["scheduledString"] = f"daily from {mst.start_date.isoformat()}"
        else:
            detail["scheduledPeriod"] = {"start": mst.start_date.isoformat(),
                                         **({"end": end.isoformat()} if end else {})}
        if mst.category == "follow_up":
            detail["kind"] = "Appointment"
        if mst.id == "dxa":
            detail["kind"] = "ServiceRequest"
            detail["code"] = _cc("bone_density_scan", "Bone density scan (DXA)")
        activities.append({"detail": detail})
    careplan = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                "category": [_cc("assess_plan")],
                "title": f"Care plan after {plan.procedure} ({', '.join(plan.levels)})",
                "description": "Post-procedure activity limits, follow-up and bone-health plan (kyphosim; research use only).",
                "subject": subj, "period": {"start": date, "end": plan.end_date.isoformat()},
                "addresses": [{"reference": r} for r in cond_refs.values()],
                "supportingInfo": [{"reference": r} for r in proc_refs + obs_refs],
                "activity": activities}
    add(careplan, "careplan")
    return {"resourceType": "Bundle", "id": _uuid(case, "bundle"), "type": "collection", "entry": entries}


def validate_fhir_bundle(bundle: dict) -> Any:
    """Parse the bundle with ``fhir.resources.R4B`` (raises :class:`InputError` with the first problems)."""
    try:
        from fhir.resources.R4B.bundle import Bundle
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("FHIR validation needs the 'fhir.resources' package (pip install 'kyphosim[fhir]')") from None
    try:
        return Bundle.model_validate(bundle)
    except Exception as exc:
        msg = str(exc).splitlines()
        raise InputError("FHIR bundle does not validate: " + " | ".join(msg[:6])) from None


def write_fhir_bundle(bundle: dict, path: str | os.PathLike) -> Path:
    return write_json(path, bundle)
