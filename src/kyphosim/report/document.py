"""A report as data: sections of paragraphs, tables and figures, rendered to HTML and PDF.

Stages contribute :class:`Section` objects; :func:`kyphosim.report.html.render_html` and
:func:`kyphosim.report.pdf.render_pdf` turn the same :class:`Report` into a self-contained HTML page
(images embedded as base64 PNG) and a paginated PDF, so the two always show the same content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["Figure", "Table", "Paragraph", "Section", "Report"]


@dataclass
class Figure:
    """A PNG image with a caption. ``width_frac`` is its width as a fraction of the page width."""

    png: bytes
    caption: str
    width_frac: float = 1.0
    id: str = ""


@dataclass
class Table:
    """A table of already formatted cells."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class Paragraph:
    """Plain text; ``kind`` is 'text', 'note' (highlighted box) or 'warning'."""

    text: str
    kind: str = "text"


@dataclass
class Section:
    """One titled part of the report, holding paragraphs, tables and figures in order."""

    title: str
    id: str
    blocks: list[Paragraph | Table | Figure] = field(default_factory=list)

    def text(self, text: str, kind: str = "text") -> "Section":
        self.blocks.append(Paragraph(text, kind))
        return self

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> "Section":
        self.blocks.append(Table(list(columns), [list(r) for r in rows], caption))
        return self

    def figure(self, png: bytes, caption: str, width_frac: float = 1.0, id: str = "") -> "Section":
        self.blocks.append(Figure(png, caption, width_frac, id))
        return self


@dataclass
class Report:
    """The whole report: title, subtitle, sections, and the research-use notice."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    notice: str = ""

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section

    def section_ids(self) -> list[str]:
        return [s.id for s in self.sections]

    def figure_count(self) -> int:
        return sum(isinstance(b, Figure) for s in self.sections for b in s.blocks)


def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """Format a number for a table cell; None → '—'."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value}{unit}"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return str(value)
