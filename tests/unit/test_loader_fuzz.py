"""Property tests: whatever the text, the loaders raise InputError or return a Topology.

Three sources of input: arbitrary text, arbitrary YAML-ish nested data dumped to YAML
(keys drawn mostly from the real field names so the deep paths run), and valid files
with one line damaged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.graph import render
from orchestrator.inventory import load_inventory_text
from orchestrator.loader import load_topology_text
from orchestrator.model import Topology

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "data" / "valid" / "fuzz.yaml"  # relative paths resolve under valid/
# MESHBED_FUZZ_EXAMPLES=3000 for a long run by hand; the default keeps the suite quick
FUZZ = settings(
    max_examples=int(os.environ.get("MESHBED_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

WORDS = [
    "name",
    "backend",
    "chunk_size",
    "seed",
    "strategy",
    "defaults",
    "groups",
    "inventory",
    "content",
    "scenario",
    "expect",
    "monitoring",
    "timeout",
    "link",
    "up",
    "down",
    "latency",
    "jitter",
    "loss",
    "count",
    "resources",
    "cpus",
    "memory",
    "devices",
    "placement",
    "image",
    "size",
    "path",
    "seeders",
    "at",
    "fetch",
    "kill",
    "stop",
    "start",
    "partition",
    "heal",
    "by",
    "nodes",
    "all_complete_within",
    "min_efficiency",
    "a",
    "b",
    "leechers",
    "seeders-0",
    "movie",
    "host",
    "port",
    "user",
    "key",
    "tags",
    "password",
]
VALUES = [
    "10mbit",
    "5s",
    "-1s",
    "2%",
    "300%",
    "16MiB",
    "1.5B",
    "leechers",
    "leechers[0:2]",
    "leechers[9]",
    "a-0",
    "a[-1]",
    "b[::0]",
    "local",
    "docker",
    "ssh",
    "swarm",
    "client-server",
    "files/paper.txt",
    "./nope",
    "unlimited",
    "80ms",
    "1e400B",
    "0x10",
    "",
    "~",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(VALUES),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=8))
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


def check_topology(text: str) -> None:
    try:
        topology = load_topology_text(text, SOURCE)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert exc.line is None or exc.line >= 1
        return
    assert isinstance(topology, Topology)
    render(topology, "svg")  # whatever loads also draws
    render(topology, "dot")


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check_topology(text)


@FUZZ
@given(st.dictionaries(keys, nested, max_size=8))
def test_arbitrary_yaml_data(data: dict[str, Any]) -> None:
    check_topology(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(
    groups=st.dictionaries(
        st.sampled_from(["a", "b", "leechers", "seeders", "Bad", "a-0"]),
        st.fixed_dictionaries(
            {},
            optional={
                "count": st.integers(-2, 6),
                "link": nested,
                "backend": st.sampled_from(["local", "docker", "x"]),
            },
        ),
        min_size=1,
        max_size=3,
    ),
    content=st.dictionaries(st.sampled_from(["movie", "x"]), nested, max_size=2),
    scenario=st.lists(st.dictionaries(keys, nested, max_size=3), max_size=4),
)
def test_near_valid_topologies(groups: Any, content: Any, scenario: Any) -> None:
    doc = {"name": "fuzz", "groups": groups, "content": content, "scenario": scenario}
    check_topology(yaml.safe_dump(doc))


VALID_TEXTS = [p.read_text() for p in sorted((ROOT / "tests" / "data" / "valid").glob("*.yaml"))]


@FUZZ
@given(
    which=st.integers(0, len(VALID_TEXTS) - 1),
    line=st.integers(0, 40),
    replacement=st.one_of(st.text(max_size=30), st.sampled_from(VALUES)),
)
def test_damaged_valid_files(which: int, line: int, replacement: str) -> None:
    lines = VALID_TEXTS[which].splitlines()
    lines[line % len(lines)] = replacement
    check_topology("\n".join(lines))


@FUZZ
@given(
    st.one_of(st.text(max_size=200), st.dictionaries(keys, nested, max_size=6).map(yaml.safe_dump))
)
def test_inventory_text(text: str) -> None:
    try:
        load_inventory_text(text, ROOT / "tests" / "data" / "inventories" / "fuzz.yaml")
    except InputError as exc:
        assert "\n" not in str(exc)


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    bomb += "name: t\ngroups: {g: {}}\n"
    with pytest.raises(InputError, match="document too large"):
        load_topology_text(bomb)


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    text = "name: t\ngroups: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(InputError) as info:
        load_topology_text(text)
    assert "nesting" in info.value.message or "YAML" in info.value.message
