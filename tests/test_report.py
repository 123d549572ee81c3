"""Report rendering: the same content in HTML (self-contained) and PDF, checked as a person sees it."""

from __future__ import annotations

import numpy as np
import pytest

from kyphosim.imaging import Volume
from kyphosim.report import Report, Section, write_html, write_pdf
from kyphosim.report.figures import orthogonal_views
from render_checks import check_html_in_browser, pdf_pages_as_images, pdf_text


def _tiny_ct():
    rng = np.random.RandomState(0)
    ct = np.full((40, 50, 60), -1000, np.int16)
    ct[5:35, 5:45, 5:55] = 40
    ct[15:25, 10:30, 10:50] = 300 + rng.randint(0, 50, (10, 20, 40))
    lab = np.zeros(ct.shape, np.uint8)
    lab[15:25, 10:30, 10:30] = 20
    lab[15:25, 10:30, 31:50] = 19
    aff = np.diag([-0.8, -0.8, 1.5, 1.0])  # LPS, anisotropic
    return Volume(ct, aff), Volume(lab, aff, is_label=True)


def _report():
    ct, lab = _tiny_ct()
    rep = Report("kyphosim test report", "synthetic", notice="Research software, not a medical device.")
    s = rep.add(Section("Views", "views"))
    s.text("A paragraph with <html> characters & ampersands that must be escaped.")
    s.figure(orthogonal_views(ct, lab, title="tiny"), "orthogonal views")
    t = rep.add(Section("Table", "table"))
    t.table(["a", "b", "a very long column heading that wraps"],
            [[1, 2.5, "x" * 30], ["L1", None, "a long cell " * 12]], "caption")
    t.text("warning text", "warning")
    return rep


def test_html_is_self_contained_and_escaped(tmp_path):
    p = write_html(_report(), tmp_path / "r.html")
    html = p.read_text()
    assert "data:image/png;base64," in html
    assert "src=\"http" not in html and "<link" not in html
    assert "&lt;html&gt;" in html
    assert 'id="research-notice"' in html


def test_pdf_renders_every_section(tmp_path):
    p = write_pdf(_report(), tmp_path / "r.pdf")
    assert p.read_bytes()[:5] == b"%PDF-"
    pages = pdf_pages_as_images(p, tmp_path / "pages")
    assert pages
    text = pdf_text(p)
    for title in ("kyphosim test report", "Views", "Table", "Research use only"):
        assert title in text


def test_html_in_browser(tmp_path):
    p = write_html(_report(), tmp_path / "r.html")
    res = check_html_in_browser(p, width=900)
    assert res["sections"] == ["views", "table"]
    assert res["images"] == 1 and res["broken_images"] == 0
    assert res["overflow"] == [], res["overflow"]
    assert res["page_width"] <= res["viewport"] + 1


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    from kyphosim.fileio import atomic_path

    p = write_html(_report(), tmp_path / "r.html")
    before = p.read_text()
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash while writing")
    assert p.read_text() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["r.html"]
