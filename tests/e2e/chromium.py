"""Look at an HTML report the way a reader does: headless Chromium at a desktop and a phone
width, measuring the laid-out page (chart widths, tick font size, page overflow)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

# Chromium's window is at least 500 px wide, so the page is shown in an iframe of the width
# under test (srcdoc: same origin, so the script can measure inside). The report itself has
# no scripts; only this probe page does.
PROBE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" style="width:{width}px;height:1200px;border:0" srcdoc="{page}"></iframe>
<script>
window.addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument;
  const r = (e) => e.getBoundingClientRect();
  const tick = d.querySelector('svg .tick');
  document.body.setAttribute('data-measure', JSON.stringify({{
    charts: [...d.querySelectorAll('svg')].map((s) => r(s).width),
    right: Math.max(...[...d.querySelectorAll('svg')].map((s) => r(s).right)),
    tick_px: tick ? r(tick).height : 0,
    page: d.documentElement.scrollWidth,
  }}));
}});
</script></body></html>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if IN_CI:
            pytest.fail("chromium missing under CI=true")
        pytest.skip("chromium not installed")
    return found


def measure(page: Path, width: int, tmp: Path) -> dict[str, Any]:
    """Layout of ``page`` in a window ``width`` px wide, plus a screenshot next to it."""
    exe = chromium()
    probe = tmp / f"{page.stem}-{width}.html"
    probe.write_text(PROBE.format(width=width, page=html.escape(page.read_text(), quote=True)))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--hide-scrollbars", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp / 'chromium'}", f"--window-size={max(width, 500) + 20},1200"]
    dom = subprocess.run([exe, *flags, "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    m = re.search(r'data-measure="([^"]*)"', dom)
    assert m, "the measuring script did not run"
    shot = tmp / f"{page.stem}-{width}.png"
    subprocess.run([exe, *flags, f"--screenshot={shot}", probe.as_uri()], capture_output=True, timeout=120,
                   check=True)
    out: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    out["screenshot"] = shot
    return out


def coloured_pixels(png: Path) -> int:
    from PIL import Image

    img = Image.open(png).convert("RGB")
    w, h = img.size
    n = 0
    for y in range(0, h, 2):
        for x in range(0, w, 2):
            r, g, b = img.getpixel((x, y))  # type: ignore[misc]
            if max(r, g, b) - min(r, g, b) > 60:
                n += 1
    return n


def check_report_page(page: Path, tmp: Path) -> None:
    """Charts use the width a desktop gives them, fit a phone, and stay readable there."""
    wide = measure(page, 1400, tmp)
    # two charts side by side, each wider than the old fixed 620 px, together using the window
    assert wide["charts"] and min(wide["charts"]) >= 560 and wide["right"] >= 1250, wide
    assert wide["page"] <= 1400
    assert coloured_pixels(wide["screenshot"]) > 2000
    phone = measure(page, 390, tmp)
    assert phone["page"] <= 390, phone  # no sideways scrolling of the page (tables scroll in place)
    assert all(300 <= w <= 390 for w in phone["charts"]), phone
    assert phone["tick_px"] >= 9, phone  # tick labels readable, not scaled down to specks
