"""Render a :class:`~kyphosim.report.document.Report` as a paginated PDF (reportlab, pure PyPI)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from xml.sax.saxutils import escape

from kyphosim.fileio import atomic_path
from kyphosim.report.document import Figure, Paragraph, Report, Table

__all__ = ["render_pdf", "write_pdf"]


def render_pdf(report: Report) -> bytes:
    """The report as PDF bytes (A4, images scaled to fit, long tables split across pages)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image, KeepTogether, SimpleDocTemplate, Spacer
    from reportlab.platypus import Paragraph as RLParagraph
    from reportlab.platypus import Table as RLTable
    from reportlab.platypus import TableStyle

    buf = io.BytesIO()
    margin = 15 * mm
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
                            bottomMargin=margin, title=report.title, author="kyphosim")
    width = A4[0] - 2 * margin
    max_h = A4[1] - 2 * margin - 30 * mm
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=12.5)
    note = ParagraphStyle("note", parent=body, backColor=colors.HexColor("#eef5fc"), borderPadding=4)
    warn = ParagraphStyle("warn", parent=body, backColor=colors.HexColor("#fdeeee"), borderPadding=4)
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9)
    cap = ParagraphStyle("cap", parent=body, fontSize=8, textColor=colors.HexColor("#5b6675"))
    notice = ParagraphStyle("notice", parent=body, backColor=colors.HexColor("#fff4e5"), borderPadding=5)

    story = [RLParagraph(escape(report.title), styles["Title"])]
    if report.subtitle:
        story.append(RLParagraph(escape(report.subtitle), body))
    if report.notice:
        story += [Spacer(1, 4 * mm), RLParagraph("<b>Research use only.</b> " + escape(report.notice), notice)]
    for sec in report.sections:
        story += [Spacer(1, 5 * mm), RLParagraph(escape(sec.title), styles["Heading2"])]
        for b in sec.blocks:
            if isinstance(b, Paragraph):
                style = {"note": note, "warning": warn}.get(b.kind, body)
                story += [RLParagraph(escape(b.text), style), Spacer(1, 2 * mm)]
            elif isinstance(b, Table):
                data = [[RLParagraph("<b>%s</b>" % escape(str(c)), cell) for c in b.columns]]
                data += [[RLParagraph(escape(str(c)), cell) for c in r] for r in b.rows]
                ncol = max(1, len(b.columns))
                t = RLTable(data, colWidths=[width / ncol] * ncol, repeatRows=1)
                t.setStyle(TableStyle([
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#c9d1db")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2f5f9")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]))
                story.append(t)
                if b.caption:
                    story.append(RLParagraph(escape(b.caption), cap))
                story.append(Spacer(1, 3 * mm))
            elif isinstance(b, Figure):
                reader = ImageReader(io.BytesIO(b.png))
                iw, ih = reader.getSize()
                w = width * min(1.0, max(0.3, b.width_frac))
                h = w * ih / iw
                if h > max_h:
                    h = max_h
                    w = h * iw / ih
                story.append(KeepTogether([Image(io.BytesIO(b.png), width=w, height=h),
                                           RLParagraph(escape(b.caption), cap), Spacer(1, 3 * mm)]))
    if report.notice:
        story += [Spacer(1, 6 * mm), RLParagraph(escape(report.notice), cap)]

    def _footer(canvas, doc_):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#5b6675"))
        canvas.drawString(margin, 8 * mm, "kyphosim — research use only, not a medical device")
        canvas.drawRightString(A4[0] - margin, 8 * mm, f"page {doc_.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buf.getvalue()


def write_pdf(report: Report, path: str | os.PathLike) -> Path:
    """Write the PDF report atomically."""
    data = render_pdf(report)
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_bytes(data)
    return p
