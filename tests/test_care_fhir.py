"""FHIR R4 bundle: validates with fhir.resources (R4B models) and every code is in the documented code table."""

from __future__ import annotations

import pytest

from test_clinical_cases import demo_assessment, demo_clinical
from kyphosim.care import build_fhir_bundle, make_care_plan
from kyphosim.care.fhir import code_table

_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
      [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def verhoeff_ok(s: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(s)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def loinc_ok(code: str) -> bool:
    """LOINC mod-10 check digit (Luhn over the digits before the hyphen)."""
    body, check = code.split("-")
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(check)


def test_check_digit_helpers_on_known_values():
    assert verhoeff_ok("2363") and not verhoeff_ok("2364")
    assert verhoeff_ok("138875005") and not verhoeff_ok("138875006")   # SNOMED CT root concept
    assert loinc_ok("8302-2") and loinc_ok("29463-7") and not loinc_ok("8302-3")


def test_code_table_is_well_formed():
    t = code_table()
    for key, c in t["codes"].items():
        if c["system"] == "http://snomed.info/sct":
            assert c["code"].isdigit() and verhoeff_ok(c["code"]) and c["code"][-3:-1] == "00", key  # concept id
        elif c["system"] == "http://loinc.org":
            assert loinc_ok(c["code"]), key
        elif c["system"] == "http://www.ama-assn.org/go/cpt":
            assert c["code"].isdigit() and len(c["code"]) == 5 and 22510 <= int(c["code"]) <= 22515, key
        if c["system"] != t["systems"]["kyphosim"]:
            assert c.get("verified"), f"{key}: a standard code needs its verification note"


@pytest.fixture(scope="module")
def bundle():
    plan = make_care_plan("2025-03-10", ["T12", "L1"], demo_clinical(), demo_assessment())
    return build_fhir_bundle(plan, demo_clinical(), demo_assessment())


def _codings(obj):
    if isinstance(obj, dict):
        if "system" in obj and "code" in obj and obj.get("system") != "http://unitsofmeasure.org":
            yield obj
        for v in obj.values():
            yield from _codings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _codings(v)


def test_bundle_validates_with_fhir_resources(bundle):
    pytest.importorskip("fhir.resources")
    from kyphosim.care import validate_fhir_bundle

    b = validate_fhir_bundle(bundle)
    types = [e.resource.__resource_type__ for e in b.entry]
    assert types.count("Procedure") == 2 and "CarePlan" in types and "Patient" in types
    assert types.count("Condition") == 3  # two fractures + osteoporosis (CT screen)
    assert types.count("Observation") >= 5  # 3 morphometry levels + spine + NRS + ODI


def test_invalid_bundle_is_rejected(bundle):
    pytest.importorskip("fhir.resources")
    import copy

    from kyphosim.care import validate_fhir_bundle
    from kyphosim.errors import InputError

    bad = copy.deepcopy(bundle)
    bad["entry"][0]["resource"]["gender"] = {"not": "a code"}
    with pytest.raises(InputError, match="does not validate"):
        validate_fhir_bundle(bad)


def test_every_coding_is_in_the_code_table(bundle):
    table = {(c["system"], c["code"]): c for c in code_table()["codes"].values()}
    seen = set()
    for cd in _codings(bundle):
        key = (cd["system"], cd["code"])
        assert key in table, key
        assert cd.get("display") == table[key].get("display"), key
        seen.add(key)
    assert ("http://loinc.org", "72514-3") in seen and ("http://snomed.info/sct", "15724005") in seen
    assert ("http://www.ama-assn.org/go/cpt", "22513") in seen and ("http://www.ama-assn.org/go/cpt", "22514") in seen


def test_units_are_ucum_and_references_resolve(bundle):
    units = set(code_table()["units"].values())
    urls = {e["fullUrl"] for e in bundle["entry"]}

    def walk(o):
        if isinstance(o, dict):
            if o.get("system") == "http://unitsofmeasure.org":
                assert o["code"] in units
            if "reference" in o:
                assert o["reference"] in urls, o["reference"]
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(bundle)


def test_bundle_content_and_determinism(bundle):
    res = {e["resource"]["resourceType"] + ":" + e["resource"].get("code", {}).get("text", ""): e["resource"]
           for e in bundle["entry"]}
    l1 = next(r for k, r in res.items() if k.startswith("Observation:Vertebral morphometry L1"))
    comp = {c["code"]["coding"][0]["code"]: c for c in l1["component"]}
    assert comp["height-anterior"]["valueQuantity"] == {"value": 17.0, "unit": "mm", "system": "http://unitsofmeasure.org",
                                                        "code": "mm"}
    assert comp["genant-grade"]["valueInteger"] == 2 and comp["trabecular-attenuation"]["valueQuantity"]["code"] == "[hnsf'U]"
    nrs = next(r for k, r in res.items() if "Back pain" in k)
    assert nrs["valueInteger"] == 8
    plan = make_care_plan("2025-03-10", ["T12", "L1"], demo_clinical(), demo_assessment())
    assert build_fhir_bundle(plan, demo_clinical(), demo_assessment()) == bundle
