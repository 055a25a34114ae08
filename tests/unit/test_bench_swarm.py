"""Pure parts of bench/swarm_vs_bittorrent.py: bounds against ANCHORS, charts, summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bench import svgchart
from bench.contestants import Outcome
from bench.contestants.meshbed import Plan, topology_yaml
from bench.swarm_vs_bittorrent import bounds, parse_args, summarize

MiB = 2**20


@pytest.mark.parametrize(("n", "size", "lower"), [(16, 64 * MiB, 42.95), (64, 32 * MiB, 25.26)])
def test_bounds_match_the_anchor_table(n: int, size: int, lower: float) -> None:
    lo, cs = bounds(n, size)
    assert lo == pytest.approx(lower, abs=0.01)
    assert cs == pytest.approx(n * size * 8 / 40e6)


def test_cdf_chart_is_valid_svg_with_one_line_per_contestant() -> None:
    svg = svgchart.cdf_chart({"meshbed": [40.0, 45.0], "libtorrent": [47.0, 49.4]},
                             leechers=2, bound=42.95, title="t <&>")
    root = ET.fromstring(svg)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3  # two contestants + the bound
    assert "t &lt;&amp;&gt;" in svg


def test_line_chart_skips_failed_points() -> None:
    rows = [{"leechers": 4, "lower_bound_seconds": 1.0, "client_server_bound_seconds": 2.0,
             "swarm": 1.2, "client-server": None},
            {"leechers": 8, "lower_bound_seconds": 1.5, "client_server_bound_seconds": 4.0,
             "swarm": 1.8, "client-server": 4.2}]
    root = ET.fromstring(svgchart.line_chart(rows, title="x"))
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 4


def test_summary_takes_the_median_and_efficiency() -> None:
    outs = [Outcome("x", True, 50.0, [40.0, 50.0], 2), Outcome("x", True, 60.0, [45.0, 60.0], 2),
            Outcome("x", False, None, [], 0, "timeout")]
    s = summarize(outs, 42.95)
    assert s["seconds"] == 55.0 and s["efficiency"] == round(42.95 / 55.0, 3)
    assert s["ok_runs"] == 2 and s["errors"] == ["timeout"]
    assert s["spread_seconds"] == 10.0


def test_cases_and_topology() -> None:
    large = parse_args(["--case", "large"])
    assert (large.leechers, large.size) == (64, 32 * MiB)
    default = parse_args([])
    assert (default.leechers, default.size, default.piece) == (16, 64 * MiB, 256 * 1024)
    text = topology_yaml(Plan(16, 64 * MiB, 262144, 40_000_000, 10_000_000, 50_000_000, 300),
                         "b")
    assert "backend: netns" in text and "count: 16" in text and "up: 40000000bit" in text


def test_meshbed_topology_loads_with_the_links_of_the_lab() -> None:
    from orchestrator.loader import load_topology_text

    topo = load_topology_text(topology_yaml(
        Plan(4, 8 * MiB, 262144, 40_000_000, 10_000_000, 50_000_000, 60, "client-server"), "b"))
    assert topo.backend == "netns" and topo.strategy == "client-server"
    seeder = topo.node("seeders-0")
    leecher = topo.node("leechers-3")
    assert seeder.link.up_bps == 40_000_000
    assert (leecher.link.up_bps, leecher.link.down_bps) == (10_000_000, 50_000_000)
    assert topo.content("movie").chunk_size == 262144


def test_hetero_case_has_two_link_classes_in_the_lab_and_the_topology() -> None:
    from bench.swarm_vs_bittorrent import bounds, leecher_classes
    from orchestrator.loader import load_topology_text

    args = parse_args(["--case", "hetero"])
    assert (args.leechers, args.size) == (16, 32 * MiB)
    classes = leecher_classes("hetero", 16)
    assert [(g, k) for g, k, _, _ in classes] == [("fast", 8), ("slow", 8)]
    topo = load_topology_text(topology_yaml(
        Plan(16, 32 * MiB, 262144, 40_000_000, 10_000_000, 50_000_000, 300, classes=classes), "b"))
    assert (topo.node("fast-7").link.up_bps, topo.node("fast-7").link.down_bps) == (20_000_000, 80_000_000)
    assert (topo.node("slow-0").link.up_bps, topo.node("slow-0").link.down_bps) == (4_000_000, 16_000_000)
    (fetch,) = topo.scenario
    assert set(fetch.nodes) == {n.name for n in topo.nodes if n.group in ("fast", "slow")}
    lo, _ = bounds(16, 32 * MiB, classes)
    # N*F/(u_s + sum u_i) = 16 * 268.4 Mbit / 232 mbit binds (F/d_min = 16.8 s)
    assert lo == pytest.approx(16 * 32 * MiB * 8 / 232e6, rel=1e-3)
