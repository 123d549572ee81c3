"""Render a :class:`~kyphosim.report.document.Report` as one self-contained HTML file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2

from kyphosim.fileio import write_text
from kyphosim.report.document import Report

__all__ = ["render_html", "write_html"]

_TEMPLATE = jinja2.Template(r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ report.title }}</title>
<style>
  :root { --ink:#1d2733; --muted:#5b6675; --accent:#0b5cad; --warn:#9a3b00; --line:#d8dee6; }
  * { box-sizing: border-box; }
  body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
         margin: 0 auto; max-width: 1100px; padding: 24px; line-height: 1.45; font-size: 15px; }
  header { border-bottom: 3px solid var(--accent); margin-bottom: 16px; }
  h1 { margin: 0 0 4px 0; font-size: 28px; } h2 { margin-top: 32px; border-bottom: 1px solid var(--line); }
  .subtitle { color: var(--muted); margin: 0 0 10px 0; }
  .notice { background: #fff4e5; border: 1px solid #f0c27a; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
  .note { background: #eef5fc; border-left: 4px solid var(--accent); padding: 8px 12px; }
  .warning { background: #fdeeee; border-left: 4px solid var(--warn); padding: 8px 12px; }
  nav ol { columns: 2; }
  table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 13px; max-width: 100%; display: block;
          overflow-x: auto; }
  th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
  th { background: #f2f5f9; }
  caption { caption-side: bottom; color: var(--muted); font-size: 12px; text-align: left; padding-top: 4px; }
  figure { margin: 10px 0 20px 0; display: inline-block; vertical-align: top; max-width: 100%; }
  figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
  figcaption { color: var(--muted); font-size: 12px; }
  footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); }
</style>
</head>
<body>
<header>
  <h1>{{ report.title }}</h1>
  {% if report.subtitle %}<p class="subtitle">{{ report.subtitle }}</p>{% endif %}
</header>
{% if report.notice %}<div class="notice" id="research-notice"><strong>Research use only.</strong> {{ report.notice }}</div>{% endif %}
<nav><strong>Contents</strong><ol>{% for s in report.sections %}<li><a href="#{{ s.id }}">{{ s.title }}</a></li>{% endfor %}</ol></nav>
{% for s in report.sections %}
<section id="{{ s.id }}">
<h2>{{ s.title }}</h2>
{% for b in s.blocks %}
  {% if b.__class__.__name__ == "Paragraph" %}
    {% if b.kind == "text" %}<p>{{ b.text }}</p>{% else %}<p class="{{ b.kind }}">{{ b.text }}</p>{% endif %}
  {% elif b.__class__.__name__ == "Table" %}
    <table>{% if b.caption %}<caption>{{ b.caption }}</caption>{% endif %}
      <thead><tr>{% for c in b.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
      <tbody>{% for r in b.rows %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody>
    </table>
  {% else %}
    <figure{% if b.id %} id="{{ b.id }}"{% endif %} style="width: {{ (b.width_frac * 100) | round(1) }}%">
      <img alt="{{ b.caption }}" src="data:image/png;base64,{{ b64(b.png) }}">
      <figcaption>{{ b.caption }}</figcaption>
    </figure>
  {% endif %}
{% endfor %}
</section>
{% endfor %}
<footer>{{ footer }}</footer>
</body>
</html>
""", autoescape=True)


def render_html(report: Report, *, footer: str = "") -> str:
    """The report as an HTML string; every image is embedded (no external resources)."""
    return _TEMPLATE.render(report=report, footer=footer or report.notice,
                            b64=lambda data: base64.b64encode(data).decode("ascii"))


def write_html(report: Report, path: str | os.PathLike, *, footer: str = "") -> Path:
    """Write the self-contained HTML report atomically."""
    return write_text(path, render_html(report, footer=footer))

