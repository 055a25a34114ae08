from __future__ import annotations

import xml.etree.ElementTree as ET

from orchestrator import htmlreport

REPORT = {
    "name": "demo",
    "backend": "local",
    "ok": True,
    "contents": {"movie": {"size": 4 << 20, "chunks": 16}},
    "distribution": {"movie": {"seconds": 3.0, "lower_bound_seconds": 2.5, "efficiency": 0.83,
                               "client_server_bound_seconds": 9.0}},
    "nodes": {
        "leechers-0": {"fetches": {"movie": {"bytes_from": {"seeders-0": 3 << 20, "leechers-1": 1 << 20}}}},
        "leechers-1": {"fetches": {"movie": {"bytes_from": {"seeders-0": 2 << 20, "leechers-0": 2 << 20}}}},
    },
}
SAMPLES = [
    {"t": float(t), "node": n, "contents": {"movie": {"have": min(16, t * k), "pieces": 16}}}
    for t in range(7)
    for n, k in (("leechers-0", 4), ("leechers-1", 3))
]


def test_series_from_samples() -> None:
    comp = htmlreport.completion_series(SAMPLES, "movie")
    assert comp["leechers-0"][-1] == (6.0, 100.0)
    assert comp["leechers-1"][1] == (1.0, 3 / 16 * 100)
    rep = htmlreport.replication_series(SAMPLES, "movie")
    assert rep["mean copies per chunk"][-1] == (6, 2.0)
    assert rep["nodes with a full copy"][-1] == (6, 2.0)
    assert rep["nodes with a full copy"][0] == (0, 0.0)


def test_render_has_charts_with_data() -> None:
    page = htmlreport.render(REPORT, SAMPLES)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # self-contained and static
    svgs = [s for s in page.split("<svg")[1:]]
    assert len(svgs) == 3
    for chunk in svgs:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed
    assert page.count('class="series"') == 4  # 2 nodes + 2 replication lines
    assert page.count('class="seg"') == 4


def test_render_escapes_names() -> None:
    rep = dict(REPORT, name="<x>")
    assert "<x>" not in htmlreport.render(rep, [])
