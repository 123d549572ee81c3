"""Follow-up outcomes: record NRS/ODI per visit, compare with trial ranges, flag problems."""

from kyphosim.outcomes.analysis import OutcomeAnalysis, analyse_outcomes
from kyphosim.outcomes.plot import outcome_html, plot_course
from kyphosim.outcomes.record import OutcomeLog, Visit, add_visit, import_csv, load_log, new_log, save_log

__all__ = ["OutcomeLog", "Visit", "add_visit", "import_csv", "load_log", "save_log", "new_log", "analyse_outcomes",
           "OutcomeAnalysis", "plot_course", "outcome_html", "refresh_outcome_outputs"]


def refresh_outcome_outputs(case_dir) -> dict:
    """Re-analyse the case's log and write outcome_analysis.json and outcome_course.png; returns paths."""
    from pathlib import Path

    from kyphosim.errors import InputError
    from kyphosim.fileio import write_bytes, write_json

    log = load_log(case_dir)
    if log is None:
        raise InputError(f"{case_dir}: no outcomes.json yet (use `kyphosim outcome add`)")
    analysis = analyse_outcomes(log)
    out = Path(case_dir)
    return {"analysis": write_json(out / "outcome_analysis.json", analysis.to_dict()),
            "figure": write_bytes(out / "outcome_course.png", plot_course(analysis)), "result": analysis}
