"""Plain-language patient handout of the care plan: HTML (large type) and PDF (reportlab, pure PyPI).

``care_plan_html(plan)`` is an embeddable fragment (``<section class="kyphosim-careplan">``) with
inline styles; ``handout_html(plan)`` wraps it in a self-contained page; ``handout_pdf(plan)``
returns PDF bytes (US Letter, 14 pt body text, 20 pt headings, high contrast).
"""

from __future__ import annotations

import datetime as dt
import html
import io
import os
from pathlib import Path

from kyphosim.care.careplan import CarePlan, Milestone
from kyphosim.fileio import write_bytes, write_text

__all__ = ["care_plan_html", "handout_html", "handout_pdf", "write_handout", "milestone_when"]

BODY_PT = 14
HEADING_PT = 20


def _d(d: dt.date) -> str:
    return f"{d:%a} {d.day} {d:%b %Y}"


def milestone_when(m: Milestone) -> str:
    """Human-readable date or period of a milestone ('Mon 10 Mar 2025 – Sun 6 Apr 2025', 'from ...')."""
    if m.daily:
        return f"every day from {_d(m.start_date)}"
    if m.end_date is not None:
        return f"{_d(m.start_date)} – {_d(m.end_date)}"
    if m.window_end_date is not None:
        return f"{_d(m.start_date)} (by {_d(m.window_end_date)} at the latest)"
    return _d(m.start_date)


_GROUPS = [("Your dates", ("procedure", "follow_up", "driving")),
           ("Moving, lifting and sitting", ("activity", "lifting", "sitting")),
           ("Wound and medicines", ("wound", "medication")),
           ("Protect your bones", ("bone_health",))]


def care_plan_html(plan: CarePlan, *, large: bool = True) -> str:
    """HTML fragment of the plan (inline styles; ``large`` uses 1.25 rem body text)."""
    e = html.escape
    fs = "1.25rem" if large else "1rem"
    out = [f'<section class="kyphosim-careplan" style="font-size:{fs};line-height:1.5;color:#111">',
           f"<h2>After your {e(plan.procedure)} ({e(', '.join(plan.levels))}) on {e(_d(plan.procedure_date))}</h2>"]
    out.append('<div class="red-flags" style="border:3px solid #b71c1c;background:#fff5f5;padding:0.6em 1em;'
               'margin:0.8em 0"><h3 style="color:#b71c1c;margin-top:0.2em">Get help at once if you have</h3><ul>')
    for r in plan.red_flags:
        out.append(f"<li><b>{e(r.symptom)}</b> — {e(r.why)}. <b>{e(r.action)}.</b></li>")
    out.append("</ul></div>")
    for title, cats in _GROUPS:
        ms = [m for m in plan.milestones if m.category in cats]
        if not ms:
            continue
        out.append(f"<h3>{e(title)}</h3>")
        out.append('<table style="border-collapse:collapse;width:100%">')
        for m in ms:
            limit = (f' <span style="white-space:nowrap">(limit {m.limit_lb:g} lb / {m.limit_kg:g} kg)</span>'
                     if m.limit_lb else "")
            out.append('<tr style="border-top:1px solid #999;vertical-align:top">'
                       f'<td style="padding:0.4em 0.8em 0.4em 0;width:32%"><b>{e(milestone_when(m))}</b></td>'
                       f'<td style="padding:0.4em 0"><b>{e(m.title)}</b>{limit}<br>{e(m.detail)}</td></tr>')
        out.append("</table>")
    bh = plan.bone_health
    out.append("<h3>About your bones</h3><p>")
    out.append(e(f"Calcium {bh.calcium_mg_per_day} mg and vitamin D {bh.vitamin_d_iu_per_day} IU every day. ")
               + e("A bone density scan (DXA) is planned by " + _d(bh.dxa_due_date) + ". " if bh.dxa_due_date else "")
               + e(" ".join(bh.notes)))
    out.append("</p>")
    out.append(f'<p style="font-size:0.8em;color:#444">{e(plan.research_notice)} '
               "This plan follows published after-care advice; your own care team's instructions come first.</p>")
    out.append("</section>")
    return "".join(out)


def handout_html(plan: CarePlan) -> str:
    """A complete, self-contained HTML page (no external resources) for printing or a patient portal."""
    title = f"Your care plan after {plan.procedure}"
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>"
            "body{font-family:Verdana,Arial,sans-serif;max-width:48em;margin:1.5em auto;padding:0 1em;"
            "font-size:20px;background:#fff;color:#111}h1{font-size:2em}h2{font-size:1.5em}h3{font-size:1.25em}"
            "td{word-wrap:break-word;overflow-wrap:anywhere}@media print{body{font-size:16px}}"
            f"</style></head><body><h1>{html.escape(title)}</h1>{care_plan_html(plan)}</body></html>\n")


def handout_pdf(plan: CarePlan) -> bytes:
    """The handout as PDF bytes (US Letter, large type). Long tables split across pages."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import inch
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    from xml.sax.saxutils import escape

    buf = io.BytesIO()
    margin = 0.75 * inch
    doc = SimpleDocTemplate(buf, pagesize=letter, leftMargin=margin, rightMargin=margin, topMargin=margin,
                            bottomMargin=margin, title=f"Care plan after {plan.procedure}", author="kyphosim",
                            invariant=1)
    width = letter[0] - 2 * margin
    body = ParagraphStyle("body", fontName="Helvetica", fontSize=BODY_PT, leading=BODY_PT * 1.3)
    bold = ParagraphStyle("bold", parent=body, fontName="Helvetica-Bold")
    h1 = ParagraphStyle("h1", parent=body, fontName="Helvetica-Bold", fontSize=HEADING_PT + 4,
                        leading=(HEADING_PT + 4) * 1.25, spaceAfter=8)
    h2 = ParagraphStyle("h2", parent=body, fontName="Helvetica-Bold", fontSize=HEADING_PT,
                        leading=HEADING_PT * 1.25, spaceBefore=12, spaceAfter=6)
    red = ParagraphStyle("red", parent=h2, textColor=colors.HexColor("#b71c1c"), spaceBefore=0)
    small = ParagraphStyle("small", parent=body, fontSize=11, leading=14, textColor=colors.HexColor("#333333"))

    def P(text, style=body):
        return Paragraph(escape(text), style)

    story = [P(f"Your care plan after {plan.procedure}", h1),
             P(f"Treated level{'s' if len(plan.levels) > 1 else ''}: {', '.join(plan.levels)}. "
               f"Procedure day: {_d(plan.procedure_date)}.", bold), Spacer(1, 8)]
    flags = [P("Get help at once if you have:", red)]
    for r in plan.red_flags:
        flags.append(Paragraph(f"• <b>{escape(r.symptom)}</b>: {escape(r.action)}.", body))
    box = Table([[f] for f in flags], colWidths=[width])
    box.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 2.5, colors.HexColor("#b71c1c")),
                             ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff5f5")),
                             ("LEFTPADDING", (0, 0), (-1, -1), 10), ("RIGHTPADDING", (0, 0), (-1, -1), 10)]))
    story += [box]
    for title, cats in _GROUPS:
        ms = [m for m in plan.milestones if m.category in cats]
        if not ms:
            continue
        story.append(P(title, h2))
        rows = []
        for m in ms:
            limit = f" (limit {m.limit_lb:g} lb / {m.limit_kg:g} kg)" if m.limit_lb else ""
            rows.append([P(milestone_when(m), bold),
                         Paragraph(f"<b>{escape(m.title)}</b>{escape(limit)}<br/>{escape(m.detail)}", body)])
        t = Table(rows, colWidths=[0.32 * width, 0.68 * width], repeatRows=0, splitByRow=1)
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LINEABOVE", (0, 0), (-1, -1), 0.75, colors.HexColor("#888888")),
                               ("LEFTPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        story.append(t)
    bh = plan.bone_health
    bone = [P("About your bones", h2),
            P(f"Calcium {bh.calcium_mg_per_day} mg and vitamin D {bh.vitamin_d_iu_per_day} IU every day."
              + (f" A bone density scan (DXA) is planned by {_d(bh.dxa_due_date)}." if bh.dxa_due_date else "")
              + (" " + " ".join(bh.notes) if bh.notes else ""))]
    story.append(KeepTogether(bone))
    story += [Spacer(1, 12), P(plan.research_notice + " This plan follows published after-care advice; your own "
                               "care team's instructions come first.", small)]
    doc.build(story)
    return buf.getvalue()


def write_handout(plan: CarePlan, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``handout.html`` and ``handout.pdf`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return {"html": write_text(out / "handout.html", handout_html(plan)),
            "pdf": write_bytes(out / "handout.pdf", handout_pdf(plan))}
