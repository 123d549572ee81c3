"""Outcome log (add, CSV import), analysis flags against trial thresholds, figure, CLI."""

from __future__ import annotations

import json

import pytest

from kyphosim.errors import InputError
from kyphosim.outcomes import add_visit, analyse_outcomes, import_csv, load_log, outcome_html, plot_course
from kyphosim.outcomes.analysis import TRIAL_PAIN_CHANGES


def _log(tmp_path, visits, baseline=8.0):
    for i, (date, nrs, odi, nf) in enumerate(visits):
        add_visit(tmp_path, date=date, nrs=nrs, odi_pct=odi, new_fracture=nf, procedure_date="2025-03-10",
                  baseline_nrs=baseline if i == 0 else None, baseline_odi_pct=60 if i == 0 else None)
    return load_log(tmp_path)


def _kinds(a):
    return [f.kind for f in a.flags]


def test_good_course_has_no_flags(tmp_path):
    log = _log(tmp_path, [("2025-03-24", 4, 40, False), ("2025-04-21", 3, 30, False), ("2025-06-08", 2, 20, False)])
    a = analyse_outcomes(log)
    assert a.flags == [] and [v.day for v in a.visits] == [14, 42, 90]
    assert a.visits[1].nrs_change == -5 and a.visits[1].clinically_significant


def test_no_improvement_at_six_weeks(tmp_path):
    # -1.0 at day 42 is below the 1.5-point VERTOS IV change; -1.5 exactly is enough
    a = analyse_outcomes(_log(tmp_path / "a", [("2025-04-21", 7, 55, False)]))
    assert _kinds(a) == ["no_improvement", "odi_no_improvement"]
    b = analyse_outcomes(_log(tmp_path / "b", [("2025-04-21", 6.5, 45, False)]))
    assert "no_improvement" not in _kinds(b)
    c = analyse_outcomes(_log(tmp_path / "c", [("2025-04-20", 7.5, 59, False)]))  # day 41: too early to judge
    assert _kinds(c) == []


def test_new_fracture_and_recurrent_pain(tmp_path):
    a = analyse_outcomes(_log(tmp_path, [("2025-03-24", 3, 30, False), ("2025-05-05", 3, 30, False),
                                         ("2025-07-01", 6, 45, True)]))
    assert "new_fracture" in _kinds(a) and "recurrent_pain" in _kinds(a) and "no_improvement" not in _kinds(a)
    nf = next(f for f in a.flags if f.kind == "new_fracture")
    assert nf.date.isoformat() == "2025-07-01" and "BHOF" in nf.source


def test_no_baseline_flag_and_baseline_from_pre_visit(tmp_path):
    add_visit(tmp_path / "x", date="2025-04-21", nrs=4, procedure_date="2025-03-10")
    a = analyse_outcomes(load_log(tmp_path / "x"))
    assert _kinds(a) == ["no_baseline"] and a.visits[0].nrs_change is None
    add_visit(tmp_path / "x", date="2025-03-09", nrs=8)  # pre-procedure visit becomes the baseline
    a = analyse_outcomes(load_log(tmp_path / "x"))
    assert a.baseline_nrs == 8 and a.visits[-1].nrs_change == -4


def test_trial_reference_values(tmp_path):
    a = analyse_outcomes(_log(tmp_path, [("2025-03-24", 4, None, False)]))
    ref = {r["label"]: r for r in a.trial_reference}
    assert ref["Papanastassiou 2012, BKP"]["nrs_change"] == -5.07
    assert ref["Beall 2018, NSM"]["expected_nrs"] == pytest.approx(8 - 2.66)
    assert len(ref) == len(TRIAL_PAIN_CHANGES)


def test_same_date_replaces_and_validation(tmp_path):
    _log(tmp_path, [("2025-03-24", 4, 40, False)])
    add_visit(tmp_path, date="2025-03-24", nrs=5)
    log = load_log(tmp_path)
    assert len(log.visits) == 1 and log.visits[0].nrs == 5
    with pytest.raises(InputError, match="nrs"):
        add_visit(tmp_path, date="2025-03-25", nrs=12)
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        add_visit(tmp_path, date="25/03/2025", nrs=3)
    with pytest.raises(InputError, match="procedure date"):
        add_visit(tmp_path / "new", date="2025-03-25", nrs=3)


def test_csv_import(tmp_path):
    csv = tmp_path / "v.csv"
    csv.write_text("date,nrs,odi,new_fracture,note\n2025-03-24,4,40,no,ok\n2025-04-21,,35,,\n2025-06-08,6,50,yes,T12\n")
    log = import_csv(tmp_path / "case", csv, procedure_date="2025-03-10")
    assert [v.nrs for v in log.visits] == [4, None, 6] and log.visits[2].new_fracture and log.visits[1].odi_pct == 35
    bad = tmp_path / "bad.csv"
    bad.write_text("date,nrs\n2025-03-24,eleven\n")
    with pytest.raises(InputError, match="line 2"):
        import_csv(tmp_path / "case", bad)
    bad.write_text("when,nrs\n2025-03-24,3\n")
    with pytest.raises(InputError, match="header"):
        import_csv(tmp_path / "case", bad)


def test_defaults_from_case_folder(tmp_path):
    (tmp_path / "care_plan.json").write_text(json.dumps({"procedure_date": "2025-03-10", "case_id": "c1"}))
    (tmp_path / "decision.json").write_text(json.dumps({"levels": [{"facts": {"pain_nrs": 8, "odi_pct": 62}}]}))
    log = add_visit(tmp_path, date="2025-04-21", nrs=3, odi_pct=30)
    assert (log.procedure_date.isoformat(), log.baseline_nrs, log.baseline_odi_pct, log.case_id) == ("2025-03-10", 8, 62, "c1")


def test_figure_and_html(tmp_path):
    a = analyse_outcomes(_log(tmp_path, [("2025-03-24", 4, 40, False), ("2025-06-08", 6, 50, True)]))
    png = plot_course(a)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    h = outcome_html(a, png=png)
    assert "data:image/png;base64," in h and "new fracture" in h


def test_outcome_cli(tmp_path, cli, capsys):
    case = tmp_path / "case"
    code, out, err = cli(["outcome", "add", "--case", case, "--date", "2025-04-21", "--nrs", "7", "--odi", "55",
                          "--procedure-date", "2025-03-10", "--baseline-nrs", "8", "--baseline-odi", "62"], capsys)
    assert code == 0, err
    assert "FLAG no_improvement" in out and (case / "outcome_course.png").is_file()
    csv = tmp_path / "v.csv"
    csv.write_text("date,nrs,odi\n2025-06-08,3,30\n")
    code, out, err = cli(["outcome", "import", "--case", case, csv], capsys)
    assert code == 0 and "2025-06-08" in out
    code, out, err = cli(["outcome", "add", "--case", case, "--date", "2025-06-09", "--nrs", "15"], capsys)
    assert code == 2 and "nrs" in err
