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
  - {at: 5s, kill: "leechers[0:2]"}
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
