"""orchestrator.graph: SVG parses as XML, DOT and Mermaid name every node."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.cli import main as cli_main
from orchestrator.graph import render
from orchestrator.loader import load_topology, load_topology_text

pytestmark = pytest.mark.timeout(60)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SVG = "{http://www.w3.org/2000/svg}"

TOPO = """
name: g
defaults: {link: {up: 10mbit, down: 50mbit}}
groups:
  seeders: {count: 1, link: {up: 40mbit}}
  leechers: {count: COUNT, link: {latency: 20ms, loss: 1%}}
  idle: {count: 0}
content:
  movie: {size: 16MiB, seeders: [seeders]}
scenario:
  - {at: 0s, fetch: {content: movie, by: leechers}}
  - {at: 5s, kill: "leechers[0]"}
"""


def topo(count: int):  # type: ignore[no-untyped-def]
    return load_topology_text(TOPO.replace("COUNT", str(count)))


@pytest.mark.parametrize("count", [1, 16, 60, 299])
def test_svg_is_well_formed_with_every_node(count: int) -> None:
    t = topo(count)
    root = ET.fromstring(render(t, "svg"))
    assert root.tag == f"{SVG}svg"
    circles = [c for c in root.iter(f"{SVG}circle")]
    titles = {el.text for el in root.iter(f"{SVG}title")}
    assert {n.name for n in t.nodes} <= titles
    assert len(circles) >= len(t.nodes)  # nodes plus legend dots
    colors = [
        c.get("fill")
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "node"
        for c in g.iter(f"{SVG}circle")
    ]
    assert colors.count("#f5a623") == 1  # the one seeder is highlighted
    text = " ".join(el.text or "" for el in root.iter(f"{SVG}text"))
    assert "up 10mbit / down 50mbit" in text and "latency 20ms" in text
    assert "lower bound" in text
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    for c in circles:  # everything is on the canvas
        assert 0 < float(c.get("cx", -1)) < width and 0 < float(c.get("cy", -1)) < height


def test_dot_has_every_node_and_clusters() -> None:
    t = topo(12)
    dot = render(t, "dot")
    assert dot.startswith('digraph "g" {') and dot.rstrip().endswith("}")
    for n in t.nodes:
        assert re.search(rf'^\s*"{n.name}" \[', dot, re.M), n.name
    for g in ("seeders", "leechers", "idle"):
        assert f'subgraph "cluster_{g}"' in dot
    assert '"seeders-0" -> "leechers-0" [label="movie", lhead="cluster_leechers"]' in dot
    assert dot.count("{") == dot.count("}")


def test_mermaid_has_every_node() -> None:
    t = topo(5)
    mm = render(t, "mermaid")
    assert mm.startswith("flowchart LR\n")
    for n in t.nodes:
        assert f'(("{n.name}"))' in mm
    assert 'n_seeders_0 -- "movie" --> grp_leechers' in mm
    assert mm.count("subgraph ") == mm.count("  end\n") == 3


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown graph format"):
        render(topo(1), "png")


def test_graph_command_by_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(EXAMPLES / "quickstart.yaml")
    for suffix, check in (
        (".svg", "<svg"),
        (".dot", "digraph"),
        (".gv", "digraph"),
        (".mmd", "flowchart LR"),
        (".md", "```mermaid"),
    ):
        out = tmp_path / f"q{suffix}"
        assert cli_main(["graph", src, "-o", str(out)]) == 0
        assert check in out.read_text()
    assert cli_main(["graph", src]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")
    assert cli_main(["graph", src, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph")
    assert cli_main(["graph", src, "-o", str(tmp_path / "q.png")]) == 2
    assert "use a suffix .svg" in capsys.readouterr().err
    ET.parse(tmp_path / "q.svg")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_renders(path: Path) -> None:
    t = load_topology(path)
    ET.fromstring(render(t, "svg"))
    assert all(n.name in render(t, "dot") for n in t.nodes)


def test_svg_draws_each_content_from_its_seeders_to_the_fetching_groups() -> None:
    root = ET.fromstring(render(topo(5), "svg"))
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "content-edge"]
    assert [e.get("data-content") for e in edges] == ["movie"]
    assert [ln.get("data-group") for ln in edges[0].iter(f"{SVG}line") if ln.get("class") == "to"] == ["leechers"]
    names = {el.text for el in root.iter(f"{SVG}text")}
    assert {"seeders-0", "leechers-4"} <= names  # the same names as DOT and Mermaid


REPORT = {
    "name": "g",
    "nodes": {
        "seeders-0": {"fetches": {}},
        "leechers-0": {"fetches": {"movie": {"verified": True, "seconds": 4.0,
                                             "bytes_from": {"seeders-0": 12 << 20, "leechers-1": 4 << 20}}}},
        "leechers-1": {"fetches": {"movie": {"verified": True, "seconds": 8.0,
                                             "bytes_from": {"seeders-0": 8 << 20, "leechers-0": 8 << 20}}}},
        "leechers-2": {"fetches": {"movie": {"verified": False, "seconds": None,
                                             "bytes_from": {"leechers-0": 1 << 20}}}},
    },
}


def test_flow_graph_edges_by_bytes_and_nodes_by_completion_time() -> None:
    from orchestrator import graph_flow

    t = topo(3)
    root = ET.fromstring(graph_flow.render_flow(t, REPORT, "svg"))
    paths = {(p.get("data-from"), p.get("data-to")): p for p in root.iter(f"{SVG}path") if p.get("class") == "flow"}
    assert set(paths) == {("seeders-0", "leechers-0"), ("leechers-1", "leechers-0"), ("seeders-0", "leechers-1"),
                          ("leechers-0", "leechers-1"), ("leechers-0", "leechers-2")}
    widths = {k: float(p.get("stroke-width", 0)) for k, p in paths.items()}
    assert widths[("seeders-0", "leechers-0")] > widths[("leechers-1", "leechers-0")] > widths[("leechers-0", "leechers-2")]
    fills = {g.find(f"{SVG}title").text: g.find(f"{SVG}circle").get("fill")  # type: ignore[union-attr]
             for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert fills["leechers-0 (4.0 s)"] == "#2ca02c" and fills["leechers-1 (8.0 s)"] == "#3b2c8c"
    assert fills["leechers-2 (incomplete)"] == graph_flow.UNFINISHED
    assert fills["seeders-0 (seeder)"] == graph_flow.SEEDER
    dot = graph_flow.render_flow(t, REPORT, "dot")
    mm = graph_flow.render_flow(t, REPORT, "mermaid")
    for name in ("seeders-0", "leechers-0", "leechers-2"):  # one set of names in every format
        assert f'"{name}" [label="{name}"' in dot and f'(("{name}"))' in mm
    assert '"seeders-0" -> "leechers-0" [penwidth=8.00, label="12.0 MiB"]' in dot
    assert 'n_seeders_0 -- "12.0 MiB" --> n_leechers_0' in mm


def test_graph_files_get_the_umask_and_a_report_of_another_mesh_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import os

    topo_file = tmp_path / "g.yaml"
    topo_file.write_text(TOPO.replace("COUNT", "3"))
    rep = tmp_path / "r.json"
    rep.write_text(json.dumps(REPORT))
    old = os.umask(0o022)
    try:
        out = tmp_path / "flow.svg"
        assert cli_main(["graph", str(topo_file), "--report", str(rep), "-o", str(out)]) == 0
        assert out.stat().st_mode & 0o777 == 0o644
        ET.parse(out)
    finally:
        os.umask(old)
    capsys.readouterr()
    rep.write_text(json.dumps(dict(REPORT, name="other")))
    assert cli_main(["graph", str(topo_file), "--report", str(rep)]) == 2
    err = capsys.readouterr().err
    assert "report of mesh 'other', not of 'g'" in err and err.count("\n") == 1
