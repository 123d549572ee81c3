"""iCalendar (RFC 5545) export of the care-plan milestones, written by hand (no dependency).

Each milestone becomes an all-day ``VEVENT`` (``DTSTART;VALUE=DATE``; ``DTEND`` is exclusive, the day
after the last day). Follow-up visits get a reminder (``VALARM``) the day before. UIDs are derived
from the case, milestone id and date, and ``DTSTAMP`` is the procedure date at 00:00 UTC, so the
same plan always gives byte-identical output. Lines end with CRLF and are folded at 75 octets;
text values escape backslash, semicolon, comma and newline (RFC 5545 §3.1, §3.3.11).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

from kyphosim.care.careplan import CarePlan
from kyphosim.fileio import write_bytes

__all__ = ["care_plan_ics", "write_ics", "fold_line", "escape_text"]

PRODID = "-//kyphosim//care plan 1.0//EN"


def escape_text(s: str) -> str:
    """Escape a TEXT value (RFC 5545 §3.3.11)."""
    return (s.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n"))


def fold_line(line: str, limit: int = 75) -> str:
    """Fold a content line to at most ``limit`` octets per line (UTF-8 safe), joined with CRLF + space."""
    out, cur, size = [], "", 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        max_here = limit if not out else limit - 1  # continuation lines start with one space
        if size + n > max_here:
            out.append(cur)
            cur, size = "", 0
        cur += ch
        size += n
    out.append(cur)
    return "\r\n ".join(out)


def _date(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def care_plan_ics(plan: CarePlan, *, calendar_name: str | None = None) -> str:
    """The plan as an iCalendar string (CRLF line endings)."""
    stamp = plan.procedure_date.strftime("%Y%m%dT000000Z")
    case = plan.case_id or "case"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
             f"X-WR-CALNAME:{escape_text(calendar_name or 'Care plan after ' + plan.procedure)}"]
    for m in plan.milestones:
        last = m.end_date or m.start_date
        uid = hashlib.sha1(f"{case}|{m.id}|{m.start_date.isoformat()}|{','.join(plan.levels)}".encode()).hexdigest()
        desc = m.detail
        if m.limit_lb:
            desc += f" (limit {m.limit_lb:g} lb / {m.limit_kg:g} kg)"
        if m.window_end_date:
            desc += f" Latest date: {m.window_end_date.isoformat()}."
        if m.source:
            desc += f" Source: {m.source}"
        ev = ["BEGIN:VEVENT", f"UID:{uid}@kyphosim", f"DTSTAMP:{stamp}",
              f"DTSTART;VALUE=DATE:{_date(m.start_date)}",
              f"DTEND;VALUE=DATE:{_date(last + dt.timedelta(days=1))}",
              f"SUMMARY:{escape_text(m.title)}", f"DESCRIPTION:{escape_text(desc)}",
              f"CATEGORIES:{escape_text(m.category.upper().replace('_', '-'))}", "TRANSP:TRANSPARENT"]
        if m.daily:
            ev.append("RRULE:FREQ=DAILY;COUNT=365")
        if m.category == "follow_up":
            ev += ["BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{escape_text('Tomorrow: ' + m.title)}",
                   "TRIGGER:-P1D", "END:VALARM"]
        ev.append("END:VEVENT")
        lines += ev
    lines.append("END:VCALENDAR")
    return "".join(fold_line(line) + "\r\n" for line in lines)


def write_ics(plan: CarePlan, path: str | os.PathLike) -> Path:
    """Write the calendar atomically (UTF-8, CRLF)."""
    return write_bytes(path, care_plan_ics(plan).encode("utf-8"))
