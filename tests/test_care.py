"""Care plan dates and limits, handout HTML/PDF, iCalendar and the care CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from test_clinical_cases import demo_assessment, demo_clinical
from kyphosim.care import care_plan_ics, handout_html, handout_pdf, make_care_plan
from kyphosim.care.careplan import calcium_mg_per_day, f_to_c, format_weight, lb_to_kg, vitamin_d_iu_per_day
from kyphosim.errors import InputError

DAY0 = dt.date(2025, 3, 10)


@pytest.fixture(scope="module")
def plan():
    return make_care_plan("2025-03-10", ["L1"], demo_clinical(), demo_assessment())


def _days(plan, mid):
    m = plan.milestone(mid)
    return (m.start_date - DAY0).days, None if m.end_date is None else (m.end_date - DAY0).days


def test_milestone_dates_follow_the_seeds(plan):
    assert _days(plan, "procedure") == (0, None)
    assert _days(plan, "walking")[0] == 1                       # walking from day 1
    assert _days(plan, "lifting-early") == (0, 27)             # ≤ 5-10 lb the first weeks
    assert _days(plan, "lifting-mid") == (28, 89)              # ~20 lb after 4-6 weeks
    assert _days(plan, "lifting-end") == (90, None)            # nothing > 20 lb for 3 months
    assert _days(plan, "sitting") == (0, 27)                   # 2-4 weeks
    assert _days(plan, "driving") == (7, None)                 # about 1 week
    fu = plan.milestone("follow-up-1")
    assert (fu.start_date - DAY0).days == 14 and (fu.window_end_date - DAY0).days == 28  # 2-4 weeks
    assert plan.milestone("dxa").start_date <= fu.window_end_date
    assert plan.milestones == sorted(plan.milestones, key=lambda m: (m.start_date, m.day_end if m.day_end is not None
                                                                     else m.day_start, m.id))


def test_limits_in_lb_and_kg(plan):
    early, mid = plan.milestone("lifting-early"), plan.milestone("lifting-mid")
    assert (early.limit_lb, early.limit_kg) == (10, 4.5) and (mid.limit_lb, mid.limit_kg) == (20, 9.1)
    assert "lb" in early.title and "kg" in early.title
    assert lb_to_kg(1) == pytest.approx(0.45359237) and format_weight(20) == "20 lb (9.1 kg)"
    assert f_to_c(101) == pytest.approx(38.33, abs=0.01)


def test_red_flags_cover_the_seeds(plan):
    text = " ".join(r.symptom for r in plan.red_flags).lower()
    for word in ("weakness", "numbness", "chest pain", "breath", "fever over 101 °f (38.3 °c)", "wound", "bladder"):
        assert word in text, word


def test_personalisation(plan):
    assert plan.bone_health.calcium_mg_per_day == 1200 and plan.bone_health.vitamin_d_iu_per_day == 800
    assert "You are taking opioid" in plan.milestone("driving").detail       # demo patient takes opioids
    assert plan.milestone("fall-prevention")                                  # demo patient has fall risk
    assert plan.bone_health.dxa_needed and plan.bone_health.ct_osteoporosis == "osteoporosis"
    c = demo_clinical()
    c["conservative_care"]["on_opioids"] = False
    c["bone_health"].update(dxa_date="2024-06-01", dxa_t_score=-2.9, on_osteoporosis_treatment=True)
    c["bleeding"]["anticoagulated"] = True
    p2 = make_care_plan(DAY0, ["L1", "T12"], c)
    assert "You are taking opioid" not in p2.milestone("driving").detail
    assert not p2.bone_health.dxa_needed and "dxa" not in {m.id for m in p2.milestones}
    assert p2.milestone("osteoporosis-treatment").title.startswith("Keep taking")
    assert p2.milestone("anticoagulant-restart").day_start == 1
    assert p2.levels == ["T12", "L1"] and "T12 and L1" in p2.milestone("procedure").title


@pytest.mark.parametrize("age,sex,ca,vd", [(74, "female", 1200, 800), (55, "female", 1200, 600), (45, "female", 1000, 600),
                                           (60, "male", 1000, 600), (75, "male", 1200, 800)])
def test_calcium_vitamin_d(age, sex, ca, vd):
    assert calcium_mg_per_day(age, sex) == ca and vitamin_d_iu_per_day(age) == vd


def test_bad_inputs():
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        make_care_plan("10/03/2025", ["L1"])
    with pytest.raises(InputError, match="levels"):
        make_care_plan(DAY0, ["Z1"])
    with pytest.raises(InputError, match="at least one"):
        make_care_plan(DAY0, [])


def test_deterministic(plan):
    again = make_care_plan("2025-03-10", ["L1"], demo_clinical(), demo_assessment())
    assert again.to_dict() == plan.to_dict() and care_plan_ics(again) == care_plan_ics(plan)


# ------------------------------------------------------------------ iCalendar
def _unfold(ics: str) -> list[str]:
    return ics.replace("\r\n ", "").split("\r\n")


def test_ics_is_rfc5545(plan):
    ics = care_plan_ics(plan)
    raw_lines = ics.split("\r\n")
    assert ics.endswith("\r\n") and "\n" not in ics.replace("\r\n", "")
    assert all(len(l.encode("utf-8")) <= 75 for l in raw_lines)
    lines = _unfold(ics)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-2] == "END:VCALENDAR"
    assert "VERSION:2.0" in lines and any(l.startswith("PRODID:") for l in lines)
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") == len(plan.milestones)
    events, cur = [], None
    for l in lines:
        if l == "BEGIN:VEVENT":
            cur = {}
        elif l == "END:VEVENT":
            events.append(cur)
            cur = None
        elif cur is not None and ":" in l and not l.startswith(("BEGIN:VALARM", "END:VALARM", "ACTION", "TRIGGER")):
            k, v = l.split(":", 1)
            cur.setdefault(k, v)
    uids = [e["UID"] for e in events]
    assert len(set(uids)) == len(uids)
    for e, m in zip(events, plan.milestones):
        assert {"DTSTAMP", "DTSTART;VALUE=DATE", "DTEND;VALUE=DATE", "SUMMARY"} <= set(e)
        start = dt.datetime.strptime(e["DTSTART;VALUE=DATE"], "%Y%m%d").date()
        end = dt.datetime.strptime(e["DTEND;VALUE=DATE"], "%Y%m%d").date()
        assert start == m.start_date and end == (m.end_date or m.start_date) + dt.timedelta(days=1)
    # commas and semicolons are escaped in text
    desc = next(e["DESCRIPTION"] for e in events if "," in plan.milestone("procedure").detail)
    assert "\\," in desc


def test_fold_line_multibyte():
    from kyphosim.care.ical import fold_line

    s = "DESCRIPTION:" + "é°" * 60
    parts = fold_line(s).split("\r\n")
    assert all(len(p.encode()) <= 75 for p in parts) and "".join(p[1:] if i else p for i, p in enumerate(parts)) == s


# ------------------------------------------------------------------ handout
def test_handout_html(plan):
    h = handout_html(plan)
    assert h.startswith("<!doctype html>") and "font-size:20px" in h
    assert "src=\"http" not in h and "<link" not in h  # self-contained
    for text in ("Get help at once", "Your dates", "Protect your bones", "10 lb / 4.5 kg", "Fracture liaison".lower()):
        assert text.lower() in h.lower(), text
    assert plan.research_notice in h


def test_handout_pdf(plan, tmp_path):
    pdf = handout_pdf(plan)
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf == handout_pdf(plan)  # invariant output
    import shutil
    import subprocess

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed")
    p = tmp_path / "h.pdf"
    p.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(p), "-"], capture_output=True, text=True, check=True).stdout
    for phrase in ("Get help at once", "Your dates", "10 lb / 4.5 kg", "vitamin D 800 IU"):
        assert phrase in " ".join(text.split()), phrase
    info = subprocess.run(["pdfinfo", str(p)], capture_output=True, text=True).stdout
    assert "Pages:" in info and "612 x 792" in info  # US Letter


# ------------------------------------------------------------------ CLI
def test_care_cli(tmp_path, cli, capsys):
    import yaml

    cpath, apath = tmp_path / "clinical.yaml", tmp_path / "assessment.json"
    cpath.write_text(yaml.safe_dump(demo_clinical()))
    apath.write_text(json.dumps(demo_assessment()))
    out = tmp_path / "out"
    code, so, err = cli(["care", "--date", "2025-03-10", "--levels", "L1", "--clinical", cpath, "--assessment", apath,
                         "--out", out], capsys)
    assert code == 0, err
    for name in ("care_plan.json", "handout.html", "handout.pdf", "care_plan.ics", "fhir_bundle.json"):
        assert (out / name).stat().st_size > 200, name
    cp = json.loads((out / "care_plan.json").read_text())
    assert cp["schema"] == "kyphosim.careplan/1" and cp["procedure_date"] == "2025-03-10"
    code, so, err = cli(["care", "--date", "2025-03-10", "--levels", "L1", "--technique", "glue", "--out", out], capsys)
    assert code == 2 and "--technique" in err
