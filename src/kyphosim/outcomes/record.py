"""Follow-up outcomes: pain (NRS 0–10) and disability (ODI 0–100 %) per visit, stored per case.

The log lives in ``<case>/outcomes.json`` (schema ``kyphosim.outcomes/1``). The procedure date and
the baseline (pre-procedure) scores come from the first ``add`` options, or else from the case's
``care_plan.json`` (procedure date) and ``decision.json`` (pain NRS and ODI facts), or from a visit
dated on/before the procedure day.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, Field, ValidationError

from kyphosim.errors import InputError
from kyphosim.fileio import write_json

__all__ = ["OUTCOMES_SCHEMA", "Visit", "OutcomeLog", "load_log", "save_log", "add_visit", "import_csv",
           "new_log"]

OUTCOMES_SCHEMA = "kyphosim.outcomes/1"
LOG_NAME = "outcomes.json"


class Visit(BaseModel):
    date: dt.date
    nrs: Optional[float] = Field(None, ge=0, le=10, description="Pain, 0–10 numeric rating scale")
    odi_pct: Optional[float] = Field(None, ge=0, le=100, description="Oswestry Disability Index, %")
    new_fracture: bool = Field(False, description="A new vertebral fracture was diagnosed at this visit")
    note: str = ""

    model_config = {"extra": "forbid"}


class OutcomeLog(BaseModel):
    schema_: str = Field(OUTCOMES_SCHEMA, alias="schema")
    case_id: Optional[str] = None
    procedure_date: dt.date
    baseline_nrs: Optional[float] = Field(None, ge=0, le=10)
    baseline_odi_pct: Optional[float] = Field(None, ge=0, le=100)
    visits: list[Visit] = Field(default_factory=list)

    model_config = {"populate_by_name": True, "extra": "forbid"}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _readable(exc: ValidationError, where: str) -> InputError:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg')} (got {e.get('input')!r})")
    return InputError(f"{where}: " + "; ".join(parts))


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InputError(f"{where}: date {value!r} is not YYYY-MM-DD") from None


def load_log(case_dir: str | os.PathLike) -> OutcomeLog | None:
    """The case's outcome log, or None when there is none yet."""
    p = Path(case_dir) / LOG_NAME
    if not p.is_file():
        return None
    try:
        return OutcomeLog.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise _readable(exc, str(p)) from None
    except ValueError as exc:
        raise InputError(f"{p}: not valid JSON: {exc}") from None


def save_log(log: OutcomeLog, case_dir: str | os.PathLike) -> Path:
    log.visits.sort(key=lambda v: v.date)
    return write_json(Path(case_dir) / LOG_NAME, log.to_dict())


def _case_defaults(case_dir: Path) -> dict[str, Any]:
    """Procedure date, case id and baseline scores found in earlier outputs of the case folder."""
    out: dict[str, Any] = {}
    cp = case_dir / "care_plan.json"
    if cp.is_file():
        try:
            d = json.loads(cp.read_text(encoding="utf-8"))
            out["procedure_date"] = d.get("procedure_date")
            out["case_id"] = d.get("case_id")
        except ValueError:
            pass
    dec = case_dir / "decision.json"
    if dec.is_file():
        try:
            d = json.loads(dec.read_text(encoding="utf-8"))
            facts = (d.get("levels") or [{}])[0].get("facts", {})
            out.setdefault("case_id", d.get("case_id"))
            out["baseline_nrs"] = facts.get("pain_nrs")
            out["baseline_odi_pct"] = facts.get("odi_pct")
        except (ValueError, AttributeError, IndexError):
            pass
    return out


def new_log(case_dir: str | os.PathLike, *, procedure_date: Any = None, baseline_nrs: float | None = None,
            baseline_odi_pct: float | None = None, case_id: str | None = None) -> OutcomeLog:
    """A new, empty log; missing values are taken from the case folder's care_plan.json / decision.json."""
    d = _case_defaults(Path(case_dir))
    pdate = procedure_date if procedure_date is not None else d.get("procedure_date")
    if pdate is None:
        raise InputError(f"{case_dir}: no procedure date: give --procedure-date or run `kyphosim care` "
                         "into this folder first")
    try:
        return OutcomeLog(procedure_date=_date(pdate, "procedure date"),
                          baseline_nrs=baseline_nrs if baseline_nrs is not None else d.get("baseline_nrs"),
                          baseline_odi_pct=baseline_odi_pct if baseline_odi_pct is not None else d.get("baseline_odi_pct"),
                          case_id=case_id or d.get("case_id"))
    except ValidationError as exc:
        raise _readable(exc, "outcome log") from None


def add_visit(case_dir: str | os.PathLike, *, date: Any, nrs: float | None = None, odi_pct: float | None = None,
              new_fracture: bool = False, note: str = "", procedure_date: Any = None,
              baseline_nrs: float | None = None, baseline_odi_pct: float | None = None) -> OutcomeLog:
    """Add (or replace, same date) one visit and save the log; returns the updated log."""
    log = load_log(case_dir) or new_log(case_dir, procedure_date=procedure_date, baseline_nrs=baseline_nrs,
                                        baseline_odi_pct=baseline_odi_pct)
    if nrs is None and odi_pct is None and not new_fracture:
        raise InputError("a visit needs --nrs, --odi or --new-fracture")
    try:
        visit = Visit(date=_date(date, "--date"), nrs=nrs, odi_pct=odi_pct, new_fracture=new_fracture, note=note)
    except ValidationError as exc:
        raise _readable(exc, "visit") from None
    log.visits = [v for v in log.visits if v.date != visit.date] + [visit]
    if baseline_nrs is not None:
        log.baseline_nrs = baseline_nrs
    if baseline_odi_pct is not None:
        log.baseline_odi_pct = baseline_odi_pct
    save_log(log, case_dir)
    return log


_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"", "0", "false", "no", "n"}


def import_csv(case_dir: str | os.PathLike, csv_path: str | os.PathLike, *, procedure_date: Any = None) -> OutcomeLog:
    """Import visits from a CSV with a header: ``date,nrs,odi[,new_fracture][,note]`` (``odi`` may be
    ``odi_pct``). Empty cells mean "not measured". Rows replace visits of the same date."""
    p = Path(csv_path)
    if not p.is_file():
        raise InputError(f"CSV file not found: {p}")
    log = load_log(case_dir) or new_log(case_dir, procedure_date=procedure_date)
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "date" not in cols:
            raise InputError(f"{p}: header must contain 'date' (and 'nrs' and/or 'odi')")
        unknown = set(cols) - {"date", "nrs", "odi", "odi_pct", "new_fracture", "note"}
        if unknown:
            raise InputError(f"{p}: unknown column(s) {', '.join(sorted(unknown))}")
        new = {}
        for i, raw in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            where = f"{p}: line {i}"
            try:
                nrs = float(row["nrs"]) if row.get("nrs") else None
                odi_s = row.get("odi") or row.get("odi_pct")
                odi = float(odi_s) if odi_s else None
            except ValueError as exc:
                raise InputError(f"{where}: {exc}") from None
            nf = row.get("new_fracture", "").lower()
            if nf not in _TRUE | _FALSE:
                raise InputError(f"{where}: new_fracture {nf!r} is not yes/no")
            try:
                v = Visit(date=_date(row.get("date"), where), nrs=nrs, odi_pct=odi, new_fracture=nf in _TRUE,
                          note=row.get("note", ""))
            except ValidationError as exc:
                raise _readable(exc, where) from None
            new[v.date] = v
    log.visits = [v for v in log.visits if v.date not in new] + list(new.values())
    save_log(log, case_dir)
    return log
