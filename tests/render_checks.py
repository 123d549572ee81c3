"""Look at reports as a person would: HTML rendered in headless Chromium, PDF rendered to images.

Both tools come from Debian packages that ``scripts/install-system-deps.sh`` installs (chromium,
poppler-utils); tests that need them skip with a reason when they are absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]

_CHECK_SCRIPT = r"""
<script>
(function () {
  function run() {
    var vw = window.innerWidth;
    var res = {sections: [], images: 0, broken_images: 0, overflow: [], page_width: document.documentElement.scrollWidth,
               viewport: vw};
    document.querySelectorAll('section[id]').forEach(function (s) { res.sections.push(s.id); });
    document.querySelectorAll('img').forEach(function (im) {
      res.images += 1;
      if (!im.complete || im.naturalWidth === 0) res.broken_images += 1;
      var r = im.getBoundingClientRect();
      if (r.right > vw + 1) res.overflow.push('img:' + im.alt.slice(0, 40));
    });
    document.querySelectorAll('p, h1, h2, figure, nav, header, footer, .notice').forEach(function (el) {
      var r = el.getBoundingClientRect();
      if (r.right > vw + 1 || el.scrollWidth > el.clientWidth + 1) res.overflow.push(el.tagName + ':' + (el.id || el.textContent.slice(0, 30)));
    });
    var pre = document.createElement('pre'); pre.id = 'kyphosim-check'; pre.textContent = JSON.stringify(res);
    document.body.appendChild(pre);
  }
  if (document.readyState === 'complete') run(); else window.addEventListener('load', run);
})();
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def check_html_in_browser(html_path: Path, width: int = 1200, screenshot: Path | None = None) -> dict:
    """Render ``html_path`` in headless Chromium; return what the page shows (sections, images, overflow)."""
    exe = chromium()
    if exe is None:
        pytest.skip("chromium not installed (scripts/install-system-deps.sh installs it)")
    html = Path(html_path).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as td:
        probe = Path(td) / "probe.html"
        probe.write_text(html.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
        args = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={td}/profile", f"--window-size={width},1600",
                "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        m = re.search(r'<pre id="kyphosim-check">(.*?)</pre>', out.stdout, re.S)
        assert m, f"chromium did not render the page: {out.stderr[-500:]}"
        result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if screenshot is not None:
            subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={td}/profile2", f"--window-size={width},2400",
                            f"--screenshot={screenshot}", Path(html_path).resolve().as_uri()],
                           capture_output=True, timeout=120)
    return result


def pdf_pages_as_images(pdf_path: Path, out_dir: Path, dpi: int = 40) -> list[Path]:
    """Render every PDF page to PNG with pdftoppm; returns the page images."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm not installed (scripts/install-system-deps.sh installs poppler-utils)")
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-png", "-r", str(dpi), str(pdf_path), str(out_dir / "page")], check=True, timeout=120)
    return sorted(out_dir.glob("page*.png"))


def pdf_text(pdf_path: Path) -> str:
    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.skip("pdftotext not installed (poppler-utils)")
    return subprocess.run([exe, "-layout", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
