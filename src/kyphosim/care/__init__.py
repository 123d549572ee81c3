"""Post-procedure care: dated care plan, patient handout (HTML/PDF), iCalendar and FHIR R4 export."""

from kyphosim.care.careplan import CAREPLAN_SCHEMA, CarePlan, Milestone, RedFlag, make_care_plan
from kyphosim.care.fhir import build_fhir_bundle, validate_fhir_bundle
from kyphosim.care.handout import care_plan_html, handout_html, handout_pdf, write_handout
from kyphosim.care.ical import care_plan_ics, write_ics

__all__ = ["make_care_plan", "CarePlan", "Milestone", "RedFlag", "CAREPLAN_SCHEMA", "care_plan_html",
           "handout_html", "handout_pdf", "write_handout", "care_plan_ics", "write_ics", "build_fhir_bundle",
           "validate_fhir_bundle", "write_care_outputs"]


def write_care_outputs(plan: CarePlan, out_dir, *, clinical=None, assessment=None, validate: bool = True) -> dict:
    """Write care_plan.json, handout.html, handout.pdf, care_plan.ics and fhir_bundle.json; returns paths.

    With ``validate`` the FHIR bundle is parsed with fhir.resources (R4B) when that package is installed.
    """
    from pathlib import Path

    from kyphosim.fileio import write_json

    out = Path(out_dir)
    paths = {"care_plan": write_json(out / "care_plan.json", plan.to_dict())}
    paths.update({f"handout_{k}": v for k, v in write_handout(plan, out).items()})
    paths["ics"] = write_ics(plan, out / "care_plan.ics")
    bundle = build_fhir_bundle(plan, clinical, assessment)
    validated = False
    if validate:
        try:
            import fhir.resources  # noqa: F401
        except ImportError:
            pass
        else:
            validate_fhir_bundle(bundle)
            validated = True
    paths["fhir"] = write_json(out / "fhir_bundle.json", bundle)
    paths["fhir_validated"] = validated
    return paths
