"""The HTML page of a simulated run: `meshbed run`'s page (orchestrator/htmlreport.py) plus
the completion curve of all fetchers and the swarm's upload utilisation per second, which
stay readable at any number of nodes (per-node charts are drawn up to 64 nodes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator import htmlreport


def completion_curve(completions: Sequence[float]) -> list[tuple[float, float]]:
    """(seconds, % of fetchers complete) as a step curve."""
    n = len(completions)
    pts: list[tuple[float, float]] = [(0.0, 0.0)]
    for i, t in enumerate(completions):
        pts.append((float(t), 100.0 * i / n))
        pts.append((float(t), 100.0 * (i + 1) / n))
    return pts


def extra_sections(report: Mapping[str, Any]) -> str:
    parts = [f"<h2>Simulation</h2><p>virtual {report.get('virtual_seconds')} s in "
             f"{report.get('wall_seconds')} s wall, {report.get('events_processed')} events</p>"]
    for content, d in (report.get("distribution") or {}).items():
        done = d.get("completions") or []
        if done:
            parts.append(f"<h3>{htmlreport._esc(content)}: fetchers complete over time</h3>")
            parts.append(htmlreport.line_chart({"complete": completion_curve(done)}, "completion curve",
                                               "seconds", "% of fetchers", 100.0))
    util = report.get("utilisation") or []
    if util:
        parts.append("<h3>Swarm upload used / capacity</h3>")
        parts.append(htmlreport.line_chart({"utilisation": [(float(i + 1), 100.0 * u) for i, u in enumerate(util)]},
                                           "utilisation", "seconds", "% of upload capacity", 100.0))
    return "\n".join(parts)


def render(report: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> str:
    page = htmlreport.render(report, samples)
    page = page.replace("<h1>meshbed run:", "<h1>meshbed simulate:", 1)
    return page.replace("\n</body>", "\n" + extra_sections(report) + "\n</body>", 1)
