"""Clinical input schema, condition language, rules table loading, engine behaviour and the decide CLI."""

from __future__ import annotations

import json

import pytest

from test_clinical_cases import demo_assessment, demo_clinical, make_case, morph
from kyphosim.clinical import clinical_json_schema, evaluate, load_clinical, load_rules, parse_clinical, rules_markdown
from kyphosim.clinical.expr import UNKNOWN, Condition, ConditionError
from kyphosim.errors import InputError


# ------------------------------------------------------------------ input
def test_unknown_field_is_named():
    c = demo_clinical()
    c["pain"]["severity"] = 3
    with pytest.raises(InputError, match=r"pain\.severity: unknown field"):
        parse_clinical(c)


@pytest.mark.parametrize("path,value,field", [
    (("pain", "nrs"), 11, "pain.nrs"), (("patient", "age_years"), -1, "patient.age_years"),
    (("function", "odi_pct"), 120, "function.odi_pct"), (("patient", "sex"), "f", "patient.sex"),
    (("bone_health", "dxa_t_score"), -12, "bone_health.dxa_t_score"),
    (("pain", "duration_weeks"), -2, "pain.duration_weeks")])
def test_impossible_values_name_the_field(path, value, field):
    c = demo_clinical()
    c[path[0]][path[1]] = value
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        parse_clinical(c)


def test_cross_field_checks():
    c = demo_clinical()
    c["patient"]["sex"] = "male"
    parse_clinical(c)  # pregnant: false is fine for a man
    c["fitness"]["pregnant"] = True
    with pytest.raises(InputError, match="fitness.pregnant"):
        parse_clinical(c)


def test_cross_field_checks_levels_and_dates():
    c = demo_clinical()
    c["levels"].append({"level": "l1"})
    with pytest.raises(InputError, match="more than once"):
        parse_clinical(c)
    c = demo_clinical()
    c["levels"][0]["level"] = "X9"
    with pytest.raises(InputError, match="levels.0.level"):
        parse_clinical(c)
    c = demo_clinical()
    c["bone_health"]["dxa_date"] = "2024-02-30"
    with pytest.raises(InputError, match="dxa_date"):
        parse_clinical(c)


def test_male_without_pregnancy_field_is_fine():
    c = demo_clinical()
    c["patient"]["sex"] = "male"
    c["fitness"]["pregnant"] = None
    assert parse_clinical(c).patient.sex == "male"


def test_yaml_and_json_files(tmp_path):
    c = demo_clinical()
    p = tmp_path / "c.json"
    p.write_text(json.dumps(c))
    assert load_clinical(p).case_id == "demo-0001"
    bad = tmp_path / "bad.yaml"
    bad.write_text("patient: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_clinical(bad)
    with pytest.raises(InputError, match="not found"):
        load_clinical(tmp_path / "missing.yaml")


def test_json_schema_export():
    s = clinical_json_schema()
    assert s["additionalProperties"] is False
    assert {"patient", "pain", "levels", "schema"} <= set(s["properties"])
    assert "Patient" in s["$defs"] and s["$defs"]["Pain"]["properties"]["nrs"]["anyOf"][0]["maximum"] == 10


# ------------------------------------------------------------------ condition language
@pytest.mark.parametrize("a,b,and_,or_", [
    (True, True, True, True), (True, False, False, True), (False, None, False, UNKNOWN),
    (True, None, UNKNOWN, True), (None, None, UNKNOWN, UNKNOWN)])
def test_kleene_logic(a, b, and_, or_):
    env = {"a": a, "b": b}
    assert Condition.parse("a == True and b == True").evaluate(env) is and_
    assert Condition.parse("a == True or b == True").evaluate(env) is or_


def test_is_tests_are_never_unknown():
    c = Condition.parse("x is not True")
    assert c.evaluate({"x": None}) is True and c.evaluate({"x": True}) is False
    assert Condition.parse("x is None").evaluate({"x": None}) is True
    assert Condition.parse("not (x > 3)").evaluate({"x": None}) is UNKNOWN
    assert Condition.parse("t in ('wedge', 'crush')").evaluate({"t": "crush"}) is True


@pytest.mark.parametrize("text", ["__import__('os')", "a.b == 1", "a + 1 > 2", "x is 3", "lambda: 1", "a ==="])
def test_condition_language_rejects(text):
    with pytest.raises(ConditionError):
        Condition.parse(text)


def test_unknown_fact_name_is_an_error():
    with pytest.raises(ConditionError, match="unknown fact"):
        Condition.parse("nope == 1").evaluate({"x": 1})


# ------------------------------------------------------------------ rules table
def _write_rules(tmp_path, rule: str) -> str:
    p = tmp_path / "r.yaml"
    p.write_text("schema: kyphosim.rules/1\nparameters: {}\nrules:\n" + rule)
    return str(p)


@pytest.mark.parametrize("rule,msg", [
    ("  - {id: A, verdict: maybe, when: pain_nrs > 1, reason: r, source: s}\n", "unknown verdict"),
    ("  - {id: A, verdict: indicated, when: pian_nrs > 1, reason: r, source: s}\n", "unknown fact"),
    ("  - {id: A, verdict: indicated, when: pain_nrs > 1, reason: r, source: s}\n"
     "  - {id: A, verdict: indicated, when: pain_nrs > 2, reason: r, source: s}\n", "duplicate"),
    ("  - {id: A, verdict: indicated, when: pain_nrs > 1, reason: r}\n", "missing 'source'"),
    ("  - {id: A, verdict: indicated, when: pain_nrs > 1, reason: r, source: s, color: red}\n", "unknown field"),
])
def test_rules_table_is_checked(tmp_path, rule, msg):
    with pytest.raises(InputError, match=msg):
        load_rules(_write_rules(tmp_path, rule))


def test_custom_rules_table_changes_the_decision(tmp_path):
    p = _write_rules(tmp_path, "  - {id: ONLY, verdict: contraindicated, when: age_years > 70, reason: old, source: test}\n")
    d = evaluate(demo_clinical(), demo_assessment(), rules=load_rules(p))
    assert d.level("L1").verdict == "contraindicated" and [r.id for r in d.level("L1").fired] == ["ONLY"]


def test_docs_render_every_rule():
    from pathlib import Path

    md = rules_markdown()
    doc = (Path(__file__).resolve().parents[1] / "docs" / "clinical.md").read_text(encoding="utf-8")
    for rid in load_rules().ids:
        assert f"`{rid}`" in md and f"`{rid}`" in doc, rid
    rendered = doc.split("<!-- rules:begin -->\n", 1)[1].split("<!-- rules:end -->", 1)[0]
    assert rendered == md, "docs/clinical.md rules table is stale: re-render with rules_markdown()"


# ------------------------------------------------------------------ engine
def test_painless_old_grade1_is_not_a_target_and_acute_level_is():
    c, a = make_case()
    c["levels"].append({"level": "T8", "mri_stir_oedema": False, "tender_on_exam": False})
    a["levels"].append(morph("T8", 15, height_loss_pct=22.0, genant_grade=1, wedge_angle_deg=7.0))
    d = evaluate(c, a)
    assert [lv.level for lv in d.levels] == ["T8", "L1"]  # cranial to caudal; grade-0 levels skipped
    t8 = d.level("T8")
    assert t8.verdict == "contraindicated" and "CI-HEALED" in {r.id for r in t8.fired}
    assert d.level("L1").verdict == "indicated" and d.indicated_levels == ["L1"]


def test_painless_patient():
    c, a = make_case(clinical={"pain.nrs": 0}, level={"mri_stir_oedema": False},
                     morph_l1={"genant_grade": 1, "height_loss_pct": 21.0})
    lv = evaluate(c, a).level("L1")
    assert lv.verdict == "contraindicated" and {"CI-ASYMPTOMATIC", "CI-HEALED"} <= {r.id for r in lv.fired}


def test_retropulsion_with_deficit_needs_decompression():
    c, a = make_case(clinical={"neurology.deficit": True}, morph_l1={"posterior_wall_bulge_mm": 5.0})
    lv = evaluate(c, a).level("L1")
    assert lv.verdict == "contraindicated"
    r = next(r for r in lv.fired if r.id == "CI-RETROPULSION-DEFICIT")
    assert "decompression" in r.reason and r.facts["posterior_wall_bulge_mm"] == 5.0


def test_spine_fractured_levels_are_candidates():
    c, a = make_case()
    a["spine"]["fractured_levels"] = ["L2"]
    assert [lv.level for lv in evaluate(c, a).levels] == ["L1", "L2"]


def test_fractured_level_without_mri_needs_information():
    c, a = make_case()
    a["levels"].append(morph("T10", 17, genant_grade=1, height_loss_pct=21.0))
    lv = evaluate(c, a).level("T10")
    assert lv.verdict == "insufficient_information" and "mri_oedema" in lv.missing_facts


def test_no_assessment_uses_clinical_levels_only():
    d = evaluate(demo_clinical(), None)
    assert [lv.level for lv in d.levels] == ["L1"]
    lv = d.level("L1")
    # MRI oedema + examination + history decide it; criteria that need CT morphometry stay unknown
    assert lv.verdict == "indicated" and "IN-NICE-TA279" in {r.id for r in lv.fired}
    assert {"IN-VERTOS-II", "RC-POSTERIOR-WALL"} <= {u.id for u in lv.unknown}
    assert any("No CT assessment" in n for n in d.notes)
    c = demo_clinical()
    c["levels"][0]["mri_stir_oedema"] = None
    lv = evaluate(c, None).level("L1")
    assert lv.verdict == "insufficient_information" and {"genant_grade", "mri_oedema"} <= set(lv.missing_facts)


def test_accepts_pydantic_assessment_and_is_deterministic():
    from pydantic import BaseModel

    class Assessment(BaseModel):
        schema_: str = "kyphosim.assessment/1"
        levels: list[dict]
        spine: dict

    a = demo_assessment()
    obj = Assessment(levels=a["levels"], spine=a["spine"])
    d1, d2 = evaluate(demo_clinical(), obj).to_dict(), evaluate(demo_clinical(), a).to_dict()
    assert d1 == d2 and d1["schema"] == "kyphosim.decision/1"


def test_bad_assessment_is_readable():
    with pytest.raises(InputError, match="schema"):
        evaluate(demo_clinical(), {"schema": "kyphosim.plan/1", "levels": []})
    with pytest.raises(InputError, match="name' or 'label"):
        evaluate(demo_clinical(), {"levels": [{"genant_grade": 2}]})


def test_sins_reported_for_tumour_level():
    c, a = make_case(level={"tumour": {"pain": "mechanical", "lesion": "lytic", "posterolateral": "none"}})
    lv = evaluate(c, a).level("L1")
    # L1 junctional 3 + mechanical 3 + lytic 2 + wedge 14° → normal alignment 0 + collapse 32 % → 2 + none 0
    assert lv.sins["total"] == 10 and lv.sins["category"] == "potentially_unstable"


def test_decision_html_fragment():
    from kyphosim.clinical import decision_html

    h = decision_html(evaluate(demo_clinical(), demo_assessment()))
    assert h.startswith('<section class="kyphosim-decision">') and "IN-NICE-TA279" in h and "NICE TA279" in h


# ------------------------------------------------------------------ CLI
def test_decide_cli(tmp_path, cli, capsys):
    import yaml

    cpath, apath = tmp_path / "clinical.yaml", tmp_path / "assessment.json"
    cpath.write_text(yaml.safe_dump(demo_clinical()))
    apath.write_text(json.dumps(demo_assessment()))
    code, out, err = cli(["decide", "--clinical", cpath, "--assessment", apath, "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    d = json.loads((tmp_path / "o" / "decision.json").read_text())
    assert d["indicated_levels"] == ["L1"] and "L1" in out and (tmp_path / "o" / "decision.html").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**demo_clinical(), "smoker": True}))
    code, out, err = cli(["decide", "--clinical", bad, "--out", tmp_path / "o2"], capsys)
    assert code == 2 and "smoker: unknown field" in err and len(err.strip().splitlines()) == 1
