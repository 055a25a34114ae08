"""Where each node of a swarm mesh runs: a group's ``placement:`` constraints (swarm syntax,
``node.labels.KEY == VALUE`` ...) pick the engines it may use, and the group is dealt over
those engines in turn, so it is spread evenly (swarm's own scheduler only balances task
counts, and per-node services make that uneven under concurrent creation).

Parsing and matching are pure functions (kept here, beside the backend, so they can move into
the swarm backend's option schema); ``check_topology`` reads the swarm's nodes and refuses a
constraint no node meets with ``FILE:LINE: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from orchestrator.errors import InputError

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*$")
_FIELDS = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")
_LABEL_PREFIXES = ("node.labels.", "engine.labels.")


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str  # == or !=
    value: str

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value}"


@dataclass(frozen=True)
class SwarmNode:
    """What a constraint can be matched against, from the Docker API's node object."""

    id: str
    hostname: str
    role: str
    os: str
    arch: str
    labels: dict[str, str]
    engine_labels: dict[str, str]
    ready: bool = True

    @classmethod
    def from_api(cls, n: dict[str, Any]) -> SwarmNode:
        desc = n.get("Description") or {}
        plat = desc.get("Platform") or {}
        spec = n.get("Spec") or {}
        return cls(
            id=str(n["ID"]), hostname=str(desc.get("Hostname") or ""), role=str(spec.get("Role") or ""),
            os=str(plat.get("OS") or "").lower(), arch=str(plat.get("Architecture") or ""),
            labels=dict(spec.get("Labels") or {}),
            engine_labels=dict((desc.get("Engine") or {}).get("Labels") or {}),
            ready=(n.get("Status") or {}).get("State") == "ready" and spec.get("Availability", "active") == "active",
        )

    def value(self, key: str) -> Optional[str]:
        if key.startswith("node.labels."):
            return self.labels.get(key[len("node.labels."):])
        if key.startswith("engine.labels."):
            return self.engine_labels.get(key[len("engine.labels."):])
        return {"node.id": self.id, "node.hostname": self.hostname, "node.role": self.role,
                "node.platform.os": self.os, "node.platform.arch": self.arch}.get(key)


def parse(text: str) -> Constraint:
    """One constraint in swarm syntax; ValueError saying what is wrong."""
    m = _CONSTRAINT.match(text)
    if not m:
        raise ValueError(f"placement {text!r} is not KEY == VALUE or KEY != VALUE")
    key, op, value = m.groups()
    if not (key in _FIELDS or any(key.startswith(p) and len(key) > len(p) for p in _LABEL_PREFIXES)):
        raise ValueError(
            f"placement {text!r}: unknown key {key!r} (use node.labels.KEY, engine.labels.KEY, "
            + ", ".join(_FIELDS) + ")"
        )
    if not value:
        raise ValueError(f"placement {text!r}: no value")
    return Constraint(key, op, value)


def matches(node: SwarmNode, constraints: Sequence[Constraint]) -> bool:
    for c in constraints:
        have = node.value(c.key)
        if c.key == "node.role" or c.key.startswith("node.platform"):
            equal = have is not None and have.lower() == c.value.lower()
        else:
            equal = have == c.value
        if equal != (c.op == "=="):
            return False
    return True


def eligible(nodes: Sequence[SwarmNode], constraints: Sequence[Constraint]) -> list[SwarmNode]:
    """Ready, active nodes meeting every constraint, in a stable order (hostname, id)."""
    return sorted((n for n in nodes if n.ready and matches(n, constraints)), key=lambda n: (n.hostname, n.id))


def deal(groups: Sequence[tuple[str, Sequence[str], Sequence[SwarmNode]]]) -> dict[str, str]:
    """Node name -> swarm node id: each group's members dealt in turn over its eligible
    engines. A group starts where the previous one stopped, so a mesh of many one-node groups
    spreads too. ``groups``: (group, member names, eligible nodes)."""
    out: dict[str, str] = {}
    load: dict[str, int] = {}
    for _group, members, nodes in groups:
        if not nodes:
            continue
        # start at the least loaded eligible engine, then go round
        start = min(range(len(nodes)), key=lambda i: (load.get(nodes[i].id, 0), i))
        for k, member in enumerate(members):
            n = nodes[(start + k) % len(nodes)]
            out[member] = n.id
            load[n.id] = load.get(n.id, 0) + 1
    return out


def group_constraints(topology: Any, group: str) -> list[Constraint]:
    """The group's parsed constraints; InputError naming the file and line of a bad one."""
    g = topology.group(group)
    out = []
    for text in g.options.get("placement", ()):
        try:
            out.append(parse(text))
        except ValueError as exc:
            raise InputError(f"group {group}: {exc}", topology.source, placement_line(topology, group, text)) from exc
    return out


def placement_line(topology: Any, group: str, text: str) -> Optional[int]:
    """Line of ``text`` in the group's ``placement:`` list (the model keeps no lines: re-read)."""
    src = getattr(topology, "source", None)
    if src is None:
        return None
    try:
        from orchestrator.yamlsrc import parse_yaml

        doc = parse_yaml(src.read_text(), src)
        spec = doc["groups"][group]
        items = spec["placement"]
        for i, item in enumerate(items):
            if item == text:
                return int(items.item_line(i))
        return int(spec.key_line("placement"))
    except Exception:  # noqa: BLE001 - a line number is a courtesy
        return None


def check_topology(topology: Any, nodes: Sequence[SwarmNode]) -> dict[str, str]:
    """The placement of every swarm node of ``topology`` over ``nodes``; InputError (with
    FILE:LINE) naming a constraint that no ready node meets."""
    plan = []
    for g in topology.groups:
        if g.backend != "swarm":
            continue
        cons = group_constraints(topology, g.name)
        ok = eligible(nodes, cons)
        if not ok and not cons:
            raise InputError(f"group {g.name}: the swarm has no ready, active node", topology.source)
        if not ok:
            # name the first constraint that rules out every node, else the set of them
            culprit = next((c for c in cons if not eligible(nodes, [c])), None)
            what = str(culprit) if culprit else " and ".join(str(c) for c in cons)
            have = ", ".join(n.hostname for n in nodes if n.ready) or "none"
            raise InputError(
                f"group {g.name}: no ready swarm node meets placement {what!r} (nodes: {have})",
                topology.source,
                placement_line(topology, g.name, next(t for t in g.options.get("placement", ()) if parse(t) == (culprit or cons[0]))),
            )
        members = [n.name for n in topology.nodes if n.group == g.name]
        plan.append((g.name, members, ok))
    return deal(plan)
