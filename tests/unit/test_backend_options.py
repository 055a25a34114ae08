"""Backends own their group options; the neutral layers name no backend; `down` does not
guess what made a mesh whose state it cannot read."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from orchestrator import backends as registry
from orchestrator.backends.base import Backend, Endpoint
from orchestrator.cli import main as cli_main
from orchestrator.errors import InputError
from orchestrator.loader import load_topology_text
from orchestrator.model import DEFAULT_BACKEND, Node, Topology
from orchestrator.options import GroupInput, GroupOption

ROOT = Path(__file__).resolve().parents[2]
NEUTRAL = ("model.py", "loader.py", "scenario.py", "mesh.py", "state.py", "options.py")


def test_registry_comes_from_entry_points_alone() -> None:
    from importlib.metadata import entry_points

    eps = entry_points()
    group = eps.select(group="meshbed.backends") if hasattr(eps, "select") else eps.get(
        "meshbed.backends", [])
    # a set: Python 3.9 lists an entry point once per copy of the metadata it finds
    assert registry.names() == sorted({ep.name for ep in group})
    assert DEFAULT_BACKEND in registry.names()


@pytest.mark.parametrize("module", NEUTRAL)
def test_neutral_modules_name_no_backend(module: str) -> None:
    """No string constant in the neutral layers is a backend name (but the documented
    default, and the strategy "swarm" of DESIGN.md), so a new backend needs no edit there."""
    tree = ast.parse((ROOT / "orchestrator" / module).read_text())
    exempt = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.Compare))
              and ("DEFAULT_BACKEND" in ast.unparse(n) or "strateg" in ast.unparse(n).lower())]
    allowed = {id(c) for n in exempt for c in ast.walk(n)}
    named = [(n.lineno, n.value) for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and n.value in registry.names() and id(n) not in allowed]
    assert named == [], f"orchestrator/{module} names backends: {named}"


class Toy(Backend):
    """A backend declaring one option that picks it and sets how many nodes a group has."""

    name: ClassVar[str] = "toy"
    group_options = (
        GroupOption("shelves", "shelves to put one node on each (picks this backend)",
                    lambda g: tuple(v for v, _ in g.reader.get_str_list(g.spec, "shelves", "s")),
                    default=(), selects_backend=True),
        GroupOption("colour", "a word", lambda g: g.reader.get_str(g.spec, "colour", "colour"),
                    default="grey"),
    )

    @classmethod
    def plan_nodes(cls, group: GroupInput, options: dict[str, Any]) -> list[dict[str, Any]]:
        if not options["shelves"]:
            raise group.error(f"{group.where} has no shelves", group.spec.line)
        return [{"shelf": s} for s in options["shelves"]]

    @classmethod
    def validate(cls, topology: Topology) -> None:
        seen: dict[str, str] = {}
        for g in topology.groups:
            for shelf in g.options.get("shelves", ()) if g.backend == "toy" else ():
                if shelf in seen:
                    raise InputError(f"group {g.name!r}: shelf {shelf!r} is taken by group "
                                     f"{seen[shelf]!r}", topology.source, g.line)
                seen[shelf] = g.name

    async def deploy(self, node: Node) -> Endpoint:
        raise NotImplementedError

    async def kill(self, node: Node) -> None:
        raise NotImplementedError

    async def start(self, node: Node) -> Endpoint:
        raise NotImplementedError

    async def teardown(self) -> None:
        raise NotImplementedError

    async def put_file(self, node: Node, src: Path, name: str) -> str:
        raise NotImplementedError


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = {**registry._targets(), "toy": "tests.unit.test_backend_options:Toy"}
    monkeypatch.setattr(registry, "_targets", lambda: targets)
    monkeypatch.setitem(registry._loaded, "toy", Toy)


def test_a_backends_options_reach_its_groups_and_nodes(toy: None) -> None:
    t = load_topology_text("name: t\ngroups:\n  a: {shelves: [x, y], colour: red}\n  b: {}\n")
    a = t.group("a")
    assert (a.backend, a.count, a.options) == ("toy", 2, {"shelves": ("x", "y"), "colour": "red"})
    assert [n.options for n in t.nodes if n.group == "a"] == [{"shelf": "x"}, {"shelf": "y"}]
    assert t.group("b").options == {} and t.group("b").backend == DEFAULT_BACKEND


@pytest.mark.parametrize(("text", "line", "message"), [
    ("name: t\ngroups:\n  a:\n    colour: red\n", 4,
     "group 'a': colour only applies to the toy backend, not 'local'"),
    ("name: t\ngroups:\n  a:\n    shelves: [x]\n    backend: local\n", 5,
     "group 'a': shelves need backend toy, not 'local'"),
    ("name: t\ngroups:\n  a:\n    backend: toy\n", 4, "group 'a' has no shelves"),
    ("name: t\ngroups:\n  a:\n    colur: red\n", 4,
     "unknown key 'colur' in group 'a' (did you mean 'colour'?)"),
    ("name: t\ngroups:\n  a: {shelves: [x]}\n  b:\n    shelves: [y, x]\n", 5,
     "group 'b': shelf 'x' is taken by group 'a'"),
])
def test_options_on_the_wrong_backend_say_file_and_line(
    toy: None, text: str, line: int, message: str
) -> None:
    with pytest.raises(InputError) as err:
        load_topology_text(text, Path("t.yaml"))
    assert (err.value.line, err.value.message) == (line, message)


def test_each_backend_describes_itself() -> None:
    # ssh shapes rates on the device at most: never kernel delay from this host's probe
    d = registry.get("ssh").describe()
    assert d.delay == "agent" and d.partition.startswith("agent blocklists")
    assert registry.get("local").describe().rate == "agent"
    keys = {o.key for name in registry.names() for o in registry.get(name).group_options}
    assert {"image", "placement", "devices"} <= keys


def test_down_leaves_a_mesh_whose_state_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path))
    mesh = tmp_path / "lost"
    (mesh / "netns").mkdir(parents=True)
    (mesh / "state.json").write_text("{not json")
    other = tmp_path / "fine"
    other.mkdir()
    (other / "state.json").write_text(json.dumps({"mesh": "fine", "token": "t"}))
    assert cli_main(["down", "--all"]) == 1
    err = capsys.readouterr().err
    assert "mesh lost:" in err and "cannot tell which backends" in err and "netns" in err
    assert (mesh / "state.json").read_text() == "{not json"  # left as it was
    assert not other.exists()  # the readable mesh went down all the same


def test_every_registered_backend_has_a_contract_harness() -> None:
    from tests.contract import harness

    assert harness.names() == registry.names()
    assert harness.missing() == []


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("TRUE", True), ("1", True),
                                           ("yes", True), ("", False), ("false", False)])
def test_ci_is_recognised_in_any_case(monkeypatch: pytest.MonkeyPatch, value: str, ci: bool) -> None:
    from tests.facilities import in_ci

    monkeypatch.setenv("CI", value)
    assert in_ci() is ci
