from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from orchestrator import htmlreport

REPORT = {
    "name": "demo",
    "backend": "local",
    "ok": True,
    "contents": {"movie": {"size": 4 << 20, "chunks": 16}},
    "distribution": {"movie": {"seconds": 6.0, "lower_bound_seconds": 2.5, "efficiency": 0.42,
                               "client_server_bound_seconds": 9.0, "fetchers": 2, "verified": 2,
                               "utilisation": [0.0, 0.5, 0.9, 0.8]}},
    "nodes": {
        "seeders-0": {"group": "seeders", "fetches": {}},
        "leechers-0": {"group": "leechers", "fetches": {"movie": {
            "verified": True, "complete": True, "seconds": 4.0, "wasted": 1 << 20,
            "bytes_from": {"seeders-0": 3 << 20, "leechers-1": 1 << 20}}}},
        "leechers-1": {"group": "leechers", "fetches": {"movie": {
            "verified": True, "complete": True, "seconds": 6.0,
            "bytes_from": {"seeders-0": 2 << 20, "leechers-0": 2 << 20}}}},
    },
}
SAMPLES = [
    {"t": float(t), "node": n, "contents": {"movie": {"have": min(16, t * k), "pieces": 16}}}
    for t in range(7)
    for n, k in (("leechers-0", 4), ("leechers-1", 3), ("seeders-0", 16))
]


def test_ticks_are_round_values_covering_the_data() -> None:
    assert htmlreport.nice_ticks(17.0) == [0, 5, 10, 15, 20]
    assert htmlreport.nice_ticks(100.0) == [0, 20, 40, 60, 80, 100]
    assert htmlreport.nice_ticks(0.9) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert htmlreport.nice_ticks(0.0) == [0.0, 1.0]


def test_series_from_samples() -> None:
    comp = htmlreport.completion_series(SAMPLES, "movie", ["leechers-0", "leechers-1"])
    assert set(comp) == {"leechers-0", "leechers-1"}  # the seeder's flat 100 % is not a fetch
    assert comp["leechers-0"][-1] == (6.0, 100.0)
    assert comp["leechers-1"][1] == (1.0, 3 / 16 * 100)
    rep = htmlreport.replication_series(SAMPLES, "movie")
    assert rep["mean copies per chunk"][-1] == (6, 3.0)
    assert rep["nodes with a full copy"][1] == (1, 1.0)


def test_cdf_per_group_and_bytes_split_by_kind_of_source() -> None:
    cdf = htmlreport.cdf_series(REPORT, "movie")
    assert cdf == {"leechers (2)": [(0.0, 0.0), (4.0, 50.0), (6.0, 100.0)]}
    bars = htmlreport.bytes_by_source(REPORT, "movie")
    assert bars["leechers-0"] == {"from seeders": 3.0, "from other fetchers": 1.0}


def test_progress_per_group_from_16_fetchers_on() -> None:
    nodes = {f"g{i % 2}-{i}": {"group": f"g{i % 2}", "fetches": {"movie": {
        "verified": True, "complete": True, "seconds": 1.0 + i, "bytes_from": {"s-0": 1}}}} for i in range(16)}
    rep = dict(REPORT, nodes=nodes)
    samples = [{"t": 1.0, "node": n, "contents": {"movie": {"have": 8, "pieces": 16}}} for n in nodes]
    page = htmlreport.render(rep, samples)
    assert "mean per group" in page
    names = re.findall(r'class="series" data-name="([^"]+)"', page)
    assert "g0" in names and "g1" in names and "g0-0" not in names
    assert "g0 (8)" in names and "all fetchers (16)" in names  # the CDF


def test_render_has_charts_with_data_and_markers() -> None:
    page = htmlreport.render(REPORT, SAMPLES)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # self-contained and static
    svgs = page.split("<svg")[1:]
    assert len(svgs) == 5  # CDF, per node, utilisation, replication, bytes
    for chunk in svgs:
        el = ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed
        assert el.get("viewBox") and el.get("width") is None  # scales with the window
    markers = re.findall(r'class="marker" data-name="([^"]+)"', page)
    assert markers == ["lower bound", "client-server bound"]
    assert page.count('class="seg"') == 4
    assert page.count("<tr><td>leechers-") == 2  # the per-node table, fetchers only
    assert "1.00</td>" in page  # leechers-0 wasted 1 MiB
    ticks = re.findall(r'class="tick"[^>]*>([^<]+)<', page)
    assert "5.7" not in ticks and "100%" in ticks


def test_render_escapes_names() -> None:
    rep = dict(REPORT, name="<x>")
    assert "<x>" not in htmlreport.render(rep, [])
