"""Shared builders for the clinical/care tests: the demo patient and a matching assessment."""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def _demo() -> dict:
    text = resources.files("kyphosim.clinical").joinpath("examples/demo_clinical.yaml").read_text()
    return yaml.safe_load(text)


def demo_clinical() -> dict:
    return copy.deepcopy(_demo())


def morph(name: str, label: int, **kw) -> dict:
    d = {"label": label, "name": name, "height_anterior_mm": 17.0, "height_middle_mm": 21.0,
         "height_posterior_mm": 25.0, "height_loss_pct": 32.0, "genant_grade": 2, "genant_type": "wedge",
         "wedge_angle_deg": 14.0, "trabecular_hu": 78.0, "vbmd_mg_cm3": 70.0, "posterior_wall_bulge_mm": 0.4,
         "flags": []}
    d.update(kw)
    return d


def demo_assessment() -> dict:
    return {"schema": "kyphosim.assessment/1",
            "levels": [morph("T12", 19, height_loss_pct=6.0, genant_grade=0, genant_type="normal", wedge_angle_deg=3.0),
                       morph("L1", 20),
                       morph("L2", 21, height_loss_pct=8.0, genant_grade=0, genant_type="normal", wedge_angle_deg=2.0)],
            "spine": {"sdi": 2, "l1_trabecular_hu": 78.0, "osteoporosis": "osteoporosis", "regional_kyphosis_deg": 18.0}}


def set_path(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def make_case(clinical: dict | None = None, level: dict | None = None, morph_l1: dict | None = None,
              spine: dict | None = None, rename: str | None = None):
    """Demo case with patches: ``clinical`` dotted paths, ``level`` fields of the L1 clinical entry,
    ``morph_l1`` fields of the L1 assessment entry, ``rename`` moves the fracture to another level."""
    c = demo_clinical()
    a = demo_assessment()
    for k, v in (clinical or {}).items():
        set_path(c, k, v)
    c["levels"][0].update(level or {})
    l1 = a["levels"][1]
    l1.update(morph_l1 or {})
    a["spine"].update(spine or {})
    if rename:
        from kyphosim.imaging.labels import vertebra_id
        c["levels"][0]["level"] = rename
        l1["name"], l1["label"] = rename, vertebra_id(rename)
        a["levels"] = [l1]
    return c, a


def test_demo_case_is_valid_and_indicated():
    from kyphosim.clinical import evaluate, parse_clinical

    c = parse_clinical(demo_clinical())
    assert c.patient.age_years == 74 and c.patient.sex == "female" and c.level("L1").mri_stir_oedema
    d = evaluate(c, demo_assessment())
    assert d.indicated_levels == ["L1"]
