"""Crush fracture on the project phantom: the lift's reference is the height expected from the
adjacent levels (the assessment's definition), and the compaction conserves bone mass."""

from __future__ import annotations

import pytest

from kyphosim.simulation import simulate


@pytest.fixture(scope="module")
def crush():
    from kyphosim.anatomy.phantom import FractureSpec, PhantomSpec, make_phantom

    ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=[FractureSpec(level="L1", type="crush", grade=2,
                                                                          age="acute")],
                                  bmd_mg_cm3=75.0, seed=132))
    lv = next(l for l in ph.truth["levels"] if l["name"] == "L1")
    plan = {"levels": [{"level": "L1", "trajectories": [
        {"side": s, "entry_mm": lv["pedicles"][s]["entry_mm"], "target_mm": lv["pedicles"][s]["target_mm"]}
        for s in ("left", "right")]}]}
    return ph, lv, plan


def test_crush_lift_uses_expected_height(crush):
    ph, lv, plan = crush
    r = simulate(ph.ct, ph.labels, "L1", plan=plan, technique="kyphoplasty", resolution_mm=1.0,
                 subregions=ph.subregions)
    fr = r.fracture
    assert fr["assessed"]["genant_type"] == "crush"
    before, after = r.heights["before"], r.heights["after"]
    # the reference is the neighbours' expectation (truth: the intact height), not the own Hp
    assert fr["reference_height_mm"] > before.posterior_mm + 2.0
    assert abs(fr["reference_height_mm"] - lv["expected_height_mm"]) < 0.15 * lv["expected_height_mm"]
    # every height rises (the whole endplate is depressed), restoration is measured against E
    assert after.anterior_mm > before.anterior_mm + 1.0 and after.posterior_mm > before.posterior_mm + 1.0
    assert 0.0 < r.height_restoration_pct <= 100.0
    assert r.bone["mass_error_pct"] < 1.0
