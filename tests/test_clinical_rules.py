"""Every rule of the rules table has a case that makes it fire and one that does not."""

from __future__ import annotations

import pytest

from test_clinical_cases import make_case, morph
from kyphosim.clinical import default_rules, evaluate

LEVEL = "L1"


def _many_levels():
    c, a = make_case()
    for name, vid in (("T11", 18), ("T12", 19), ("L2", 21)):
        c["levels"].append({"level": name, "mri_stir_oedema": True, "tender_on_exam": True})
    a["levels"] = [morph("T11", 18), morph("T12", 19), morph("L1", 20), morph("L2", 21)]
    return c, a


TUMOUR_UNSTABLE = {"pain": "mechanical", "lesion": "lytic", "alignment": "subluxation_translation",
                   "posterolateral": "bilateral"}
TUMOUR_POTENTIAL = {"pain": "mechanical", "lesion": "lytic", "alignment": "normal", "posterolateral": "none"}

# rule id -> (kwargs of make_case that make it fire, kwargs that do not; level evaluated)
CASES: dict[str, tuple[dict, dict, str]] = {
    "CI-INFECTION-LOCAL": ({"clinical": {"infection.local_active": True}}, {}, LEVEL),
    "CI-INFECTION-SYSTEMIC": ({"clinical": {"infection.systemic_untreated": True}}, {}, LEVEL),
    "CI-COAGULOPATHY": ({"clinical": {"bleeding.coagulopathy_uncorrected": True}}, {}, LEVEL),
    "CI-ALLERGY": ({"clinical": {"allergy.cement": True}}, {}, LEVEL),
    "CI-RETROPULSION-DEFICIT": ({"clinical": {"neurology.deficit": True}, "morph_l1": {"posterior_wall_bulge_mm": 4.0}},
                                {"clinical": {"neurology.deficit": True}}, LEVEL),
    "CI-CORD-COMPRESSION": ({"clinical": {"neurology.cord_compression": True}}, {}, LEVEL),
    "CI-ASYMPTOMATIC": ({"clinical": {"pain.nrs": 0}}, {}, LEVEL),
    "CI-HEALED": ({"level": {"mri_stir_oedema": False}}, {"level": {"mri_stir_oedema": False, "bone_scan_active": True}},
                  LEVEL),
    "CI-NO-FRACTURE": ({"level": {"mri_stir_oedema": False},
                        "morph_l1": {"genant_grade": 0, "height_loss_pct": 8.0, "genant_type": "normal"}},
                       {"morph_l1": {"genant_grade": 0, "height_loss_pct": 8.0, "genant_type": "normal"}}, LEVEL),
    "CI-MINOR": ({"clinical": {"patient.age_years": 16}}, {}, LEVEL),
    "CI-PREGNANCY": ({"clinical": {"fitness.pregnant": True}}, {}, LEVEL),
    "CI-SINS-UNSTABLE": ({"level": {"tumour": TUMOUR_UNSTABLE}}, {"level": {"tumour": TUMOUR_POTENTIAL}}, LEVEL),
    "CI-ALREADY-CEMENTED": ({"level": {"previously_augmented": True}}, {}, LEVEL),
    "RC-ANTICOAGULATION": ({"clinical": {"bleeding.anticoagulated": True}}, {}, LEVEL),
    "RC-RADICULOPATHY": ({"clinical": {"neurology.radiculopathy": True}}, {}, LEVEL),
    "RC-VERTEBRA-PLANA": ({"morph_l1": {"height_loss_pct": 75.0, "genant_grade": 3}}, {}, LEVEL),
    "RC-POSTERIOR-WALL": ({"morph_l1": {"posterior_wall_bulge_mm": 3.0}},
                          {"morph_l1": {"posterior_wall_bulge_mm": 1.0}}, LEVEL),
    "RC-ABOVE-T5": ({"rename": "T3"}, {"rename": "T5"}, None),
    "RC-BELOW-L5": ({"rename": "L6"}, {"rename": "L5"}, None),
    "RC-PAIN-BELOW-ENTRY": ({"clinical": {"pain.nrs": 4}}, {"clinical": {"pain.nrs": 5}}, LEVEL),
    "RC-NO-CONSERVATIVE-CARE": ({"clinical": {"conservative_care": {"tried": False}}},
                                {"clinical": {"conservative_care": {"tried": False},
                                              "function.hospitalised_for_pain": True}}, LEVEL),
    "RC-EARLY": ({"level": {"fracture_age_weeks": 1}},
                 {"level": {"fracture_age_weeks": 1}, "clinical": {"pain.worsening": True}}, LEVEL),
    "RC-CHRONIC": ({"level": {"fracture_age_weeks": 60}}, {"level": {"fracture_age_weeks": 40}}, LEVEL),
    "RC-NOT-TENDER": ({"level": {"tender_on_exam": False}}, {}, LEVEL),
    "RC-UNFIT": ({"clinical": {"fitness.severe_cardiopulmonary_disease": True}}, {}, LEVEL),
    "RC-CANNOT-LIE-PRONE": ({"clinical": {"fitness.can_lie_prone": False}}, {}, LEVEL),
    "RC-HIGH-ENERGY": ({"clinical": {"fitness.high_energy_trauma": True}}, {}, LEVEL),
    "RC-SINS-POTENTIAL": ({"level": {"tumour": TUMOUR_POTENTIAL}}, {"level": {"tumour": TUMOUR_UNSTABLE}}, LEVEL),
    "RC-SUSPECTED-MALIGNANT": ({"clinical": {"cancer.known_malignancy": True}},
                               {"clinical": {"cancer.known_malignancy": True}, "level": {"tumour": TUMOUR_POTENTIAL}},
                               LEVEL),
    "RC-SHORT-LIFE-EXPECTANCY": ({"clinical": {"cancer.known_malignancy": True, "cancer.life_expectancy_months": 2}},
                                 {"clinical": {"cancer.known_malignancy": True, "cancer.life_expectancy_months": 12}},
                                 LEVEL),
    "RC-YOUNG": ({"clinical": {"patient.age_years": 40}}, {"clinical": {"patient.age_years": 50}}, LEVEL),
    "RC-MANY-LEVELS": ("many", {}, LEVEL),
    "IN-NICE-TA279": ({}, {"clinical": {"pain.nrs": 6}}, LEVEL),
    "IN-CARE-PATHWAY": ({}, {"level": {"mri_stir_oedema": False}}, LEVEL),
    "IN-VERTOS-II": ({}, {"clinical": {"pain.duration_weeks": 8}}, LEVEL),
    "IN-ACR-VARIANT-2": ({}, {"spine": {"osteoporosis": "osteopenia"}}, LEVEL),
    "IN-CAFE": ({"clinical": {"cancer.known_malignancy": True}}, {}, LEVEL),
    "NO-INDICATION": ({"clinical": {"pain.nrs": 4}}, {}, LEVEL),
}


def _fired(kwargs, level):
    c, a = _many_levels() if kwargs == "many" else make_case(**kwargs)
    if level is None:
        level = c["levels"][0]["level"]
    lv = evaluate(c, a).level(level)
    return lv, {r.id for r in lv.fired}


def test_every_rule_has_a_case():
    assert set(CASES) == set(default_rules().ids)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_and_does_not(rule_id):
    fire, nofire, level = CASES[rule_id]
    rule = default_rules().by_id(rule_id)
    lv, fired = _fired(fire, level)
    assert rule_id in fired, f"{rule_id} should fire; fired: {sorted(fired)}"
    if rule.verdict == "contraindicated":
        assert lv.verdict == "contraindicated"
    elif rule.verdict == "relative_contraindication":
        assert lv.verdict in ("relative_contraindication", "contraindicated", "insufficient_information")
    lv2, fired2 = _fired(nofire, level)
    assert rule_id not in fired2, f"{rule_id} should not fire; fired: {sorted(fired2)}"
    # the reason and source reach the output
    r = next(r for r in lv.fired if r.id == rule_id)
    assert r.reason == rule.reason and r.source == rule.source


@pytest.mark.parametrize("rule_id", [r.id for r in default_rules().rules if r.on_unknown == "insufficient"])
def test_blocking_rules_need_their_facts(rule_id):
    """A rule marked on_unknown: insufficient makes the level insufficient_information when its facts are unknown."""
    from kyphosim.clinical.engine import FACTS

    rule = default_rules().by_id(rule_id)
    to_clear = {"infection_local": ("clinical", "infection.local_active"),
                "infection_systemic": ("clinical", "infection.systemic_untreated"),
                "coagulopathy_uncorrected": ("clinical", "bleeding.coagulopathy_uncorrected"),
                "cement_allergy": ("clinical", "allergy.cement"), "contrast_allergy": ("clinical", "allergy.contrast"),
                "neuro_deficit": ("clinical", "neurology.deficit"),
                "posterior_wall_bulge_mm": ("morph_l1", "posterior_wall_bulge_mm"),
                "pain_nrs": ("clinical", "pain.nrs"), "mri_oedema": ("level", "mri_stir_oedema"),
                "bone_scan_active": ("level", "bone_scan_active"), "genant_grade": ("morph_l1", "genant_grade"),
                "height_loss_pct": ("morph_l1", "height_loss_pct"),
                "anticoagulated": ("clinical", "bleeding.anticoagulated"),
                "conservative_tried": ("clinical", "conservative_care.tried")}
    facts = sorted(n for n in rule.condition.names if n in FACTS and n in to_clear)
    assert facts, f"test table lacks the facts of {rule_id}"
    kwargs: dict = {"clinical": {}, "level": {}, "morph_l1": {}}
    for f in facts:
        where, path = to_clear[f]
        if where == "clinical":
            kwargs["clinical"][path] = None
        else:
            kwargs[where][path] = None
    if rule_id == "CI-NO-FRACTURE":  # only unknown when the level is not known to be acute
        kwargs["level"]["mri_stir_oedema"] = None
    c, a = make_case(**kwargs)
    lv = evaluate(c, a).level(LEVEL)
    assert lv.verdict == "insufficient_information"
    assert any(u.id == rule_id and u.blocks_decision for u in lv.unknown)
    assert set(lv.missing_facts) & set(facts)
