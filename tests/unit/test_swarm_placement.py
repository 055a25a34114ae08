"""Swarm placement: constraint parsing and matching, dealing groups over engines, and the
FILE:LINE refusal of a constraint no node meets (pure logic: nodes are API-shaped dicts)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from orchestrator.backends.swarm import placement
from orchestrator.errors import InputError
from orchestrator.loader import load_topology


def node(nid: str, host: str, role: str = "worker", state: str = "ready", **labels: str) -> placement.SwarmNode:
    return placement.SwarmNode.from_api({
        "ID": nid,
        "Description": {"Hostname": host, "Platform": {"OS": "linux", "Architecture": "x86_64"}},
        "Spec": {"Role": role, "Availability": "active", "Labels": labels},
        "Status": {"State": state},
    })


NODES = [node("a", "m", role="manager", zone="x"), node("b", "w1", zone="y"), node("c", "w2", zone="y")]


def test_parse_accepts_swarm_syntax_and_rejects_the_rest() -> None:
    assert placement.parse("node.labels.zone == y") == placement.Constraint("node.labels.zone", "==", "y")
    assert placement.parse("node.role!=manager").op == "!="
    with pytest.raises(ValueError, match="not KEY == VALUE"):
        placement.parse("node.labels.zone = y")
    with pytest.raises(ValueError, match="unknown key 'node.colour'"):
        placement.parse("node.colour == red")


def test_matching_labels_roles_and_negation() -> None:
    y = [placement.parse("node.labels.zone == y")]
    assert [n.hostname for n in placement.eligible(NODES, y)] == ["w1", "w2"]
    not_mgr = [placement.parse("node.role != manager"), placement.parse("node.hostname != w2")]
    assert [n.hostname for n in placement.eligible(NODES, not_mgr)] == ["w1"]
    down = [node("d", "w3", state="down", zone="y")]
    assert placement.eligible(down, y) == []


def test_deal_spreads_each_group_evenly_and_groups_continue_round() -> None:
    seeders = ["seeders-0"]
    leechers = [f"leechers-{i}" for i in range(8)]
    plan = placement.deal([("seeders", seeders, NODES), ("leechers", leechers, NODES)])
    per_engine = Counter(plan[m] for m in leechers)
    assert max(per_engine.values()) - min(per_engine.values()) <= 1 and len(per_engine) == 3
    total = Counter(plan.values())
    assert max(total.values()) - min(total.values()) <= 0  # 9 nodes: 3 per engine


def _topo(tmp_path: Path, constraint: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: pl\nbackend: swarm\ngroups:\n  seeders: {count: 1}\n  leechers:\n    count: 4\n"
        f"    placement:\n      - node.role == worker\n      - {constraint}\n"
        "content:\n  c: {size: 1MiB, seeders: [seeders]}\n"
    )
    return path


def test_pinned_group_lands_only_on_matching_engines(tmp_path: Path) -> None:
    topo = load_topology(_topo(tmp_path, "node.labels.zone == y"))
    plan = placement.check_topology(topo, NODES)
    assert {plan[f"leechers-{i}"] for i in range(4)} == {"b", "c"}
    assert Counter(plan[f"leechers-{i}"] for i in range(4)) == {"b": 2, "c": 2}


def test_constraint_no_node_meets_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _topo(tmp_path, "node.labels.zone == mars")
    with pytest.raises(InputError) as err:
        placement.check_topology(load_topology(path), NODES)
    assert err.value.line == 9 and err.value.file == str(path)
    assert "node.labels.zone == mars" in err.value.message


def test_bad_constraint_syntax_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _topo(tmp_path, "zone=y")
    with pytest.raises(InputError) as err:
        placement.check_topology(load_topology(path), NODES)
    assert err.value.line == 9 and "not KEY == VALUE" in err.value.message
