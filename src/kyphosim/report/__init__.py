"""Reports: the same :class:`Report` rendered to self-contained HTML and to PDF."""

from kyphosim.report.document import Figure, Paragraph, Report, Section, Table
from kyphosim.report.html import render_html, write_html
from kyphosim.report.pdf import render_pdf, write_pdf

__all__ = ["Report", "Section", "Figure", "Table", "Paragraph", "render_html", "write_html", "render_pdf",
           "write_pdf"]
