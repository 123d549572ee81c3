"""End-to-end pathway: `kyphosim run` and `kyphosim demo`, and the report as a person sees it."""

from __future__ import annotations

import json

import pytest

from kyphosim.anatomy.phantom import FractureSpec, PhantomSpec, make_phantom
from render_checks import check_html_in_browser, pdf_pages_as_images, pdf_text

ALL_SECTIONS = ["case", "truth", "assessment", "decision", "plan", "simulation", "risks", "strength", "care",
                "stages", "notice"]


@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    d = tmp_path_factory.mktemp("case")
    ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=[FractureSpec(level="L1", type="wedge", grade=2)],
                                  bmd_mg_cm3=80.0, spacing_mm=(1.5, 1.5, 1.5), orientation="PIR", seed=3))
    ph.save(d)
    return d


def test_run_without_clinical_skips_decision_with_reason(small_case, tmp_path, cli, capsys):
    out = tmp_path / "run"
    code, stdout, err = cli(["run", small_case / "ct.nii.gz", "--labels", small_case / "labels.nii.gz",
                             "--levels", "L1", "--no-simulation", "--no-strength", "--date", "2026-12-01",
                             "--out", out, "--quiet"], capsys)
    run = json.loads((out / "run.json").read_text())
    assert run["schema"] == "kyphosim.run/1"
    st = run["stages"]
    assert st["decide"]["status"] == "skipped" and "clinical" in st["decide"]["reason"]
    assert st["simulate"]["status"] == "skipped" and st["strength"]["status"] == "skipped"
    assert st["assess"]["status"] == "ok" and st["care"]["status"] == "ok" and st["report"]["status"] == "ok"
    assert run["treated_levels"] == ["L1"]
    assert (out / "report.html").is_file() and (out / "report.pdf").is_file()
    assert (out / "assessment" / "assessment.json").is_file()
    assert code == (1 if any(v["status"] == "failed" for v in st.values()) else 0)


def test_run_rejects_bad_input(tmp_path, cli, capsys):
    code, out, err = cli(["run", tmp_path / "missing.nii.gz", "--out", tmp_path / "o"], capsys)
    assert code == 2 and err.startswith("kyphosim: error:")
    code, out, err = cli(["run", tmp_path / "missing.nii.gz", "--out", tmp_path / "o", "--approach", "sideways"],
                         capsys)
    assert code == 2


@pytest.mark.slow
def test_demo_end_to_end_report_as_a_person_sees_it(tmp_path, cli, capsys):
    out = tmp_path / "demo"
    code, stdout, err = cli(["demo", "--out", out, "--quiet"], capsys)
    run = json.loads((out / "run.json").read_text())
    failed = {k: v["reason"] for k, v in run["stages"].items() if v["status"] != "ok"}
    assert failed == {}, failed
    assert code == 0
    res = check_html_in_browser(out / "report.html", width=1200, screenshot=tmp_path / "shot.png")
    assert res["sections"] == ALL_SECTIONS
    assert res["broken_images"] == 0 and res["images"] >= 8
    assert res["overflow"] == [], res["overflow"]
    narrow = check_html_in_browser(out / "report.html", width=800)
    assert narrow["overflow"] == [], narrow["overflow"]
    pages = pdf_pages_as_images(out / "report.pdf", tmp_path / "pages")
    assert len(pages) >= 4
    text = pdf_text(out / "report.pdf")
    for title in ("Assessment", "Decision", "Plan", "Simulated procedure", "Strength", "care plan",
                  "Research use only"):
        assert title in text, title
    for f in ("care/care_plan.json", "care/handout.html", "care/care_plan.ics", "care/fhir_bundle.json",
              "plan/plan.json", "decision/decision.json", "assessment/assessment.json", "phantom/truth.json"):
        assert (out / f).is_file(), f
