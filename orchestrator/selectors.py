"""Selectors: which nodes an event, a seeder list or a partition side means.

A selector is a group name (``leechers``), a node name (``leechers-3``), a slice of a group
with Python meaning (``leechers[0:4]``, ``leechers[2:]``, ``leechers[-1]``,
``leechers[::2]``), or a list of these. The result is a tuple of node names in the order
given, without duplicates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.model import Topology

GroupNodes = Mapping[str, Sequence[str]]

_SLICE = re.compile(
    r"^\s*([A-Za-z0-9_.-]+)\s*\[\s*([+-]?\d*)\s*(?:(:)\s*([+-]?\d*)\s*(?::\s*([+-]?\d*)\s*)?)?\]\s*$"
)
SYNTAX_HINT = "use GROUP, GROUP-INDEX, GROUP[i], GROUP[a:b] or a list of these"


class SelectorError(InputError):
    """A selector that names nothing, or names it badly. The loader adds file and line."""


def group_nodes(topology: Topology) -> dict[str, tuple[str, ...]]:
    """Group name -> its node names in index order."""
    out: dict[str, list[str]] = {g.name: [] for g in topology.groups}
    for node in sorted(topology.nodes, key=lambda n: (n.group, n.index)):
        out.setdefault(node.group, []).append(node.name)
    return {g: tuple(names) for g, names in out.items()}


def _as_mapping(where: Union[Topology, GroupNodes]) -> GroupNodes:
    if isinstance(where, Mapping):
        return where
    return group_nodes(where)


def _suggest(word: str, groups: GroupNodes) -> str:
    candidates = list(groups)
    for names in groups.values():
        candidates.extend(names)
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _int(text: str | None) -> int | None:
    return int(text) if text not in (None, "", "+", "-") else None


def _one(sel: str, groups: GroupNodes) -> tuple[str, ...]:
    name = sel.strip()
    if name in groups:
        members = tuple(groups[name])
        if not members:
            raise SelectorError(f"selector {sel!r}: group {name!r} has no nodes (count 0)")
        return members
    if any(name in group_members for group_members in groups.values()):
        return (name,)
    numbered = re.fullmatch(r"(.+)-(\d+)", name)
    if numbered and numbered.group(1) in groups:
        group, count = numbered.group(1), len(groups[numbered.group(1)])
        span = f" ({group}-0..{group}-{count - 1})" if count else ""
        raise SelectorError(f"node {name!r} does not exist: {group!r} has {count} nodes{span}")
    m = _SLICE.match(sel)
    if m is None:
        if re.fullmatch(r"[a-z0-9-]+", name):
            raise SelectorError(f"unknown group or node {name!r}{_suggest(name, groups)}")
        raise SelectorError(f"bad selector {sel!r} ({SYNTAX_HINT})")
    group, start, colon, stop, step = m.groups()
    if group not in groups:
        raise SelectorError(f"unknown group {group!r} in {sel!r}{_suggest(group, groups)}")
    members = tuple(groups[group])
    if colon is None:
        if start in ("", "+", "-"):
            raise SelectorError(f"bad selector {sel!r}: empty index ({SYNTAX_HINT})")
        index = int(start)
        if not -len(members) <= index < len(members):
            span = f"0..{len(members) - 1}" if members else "none"
            raise SelectorError(
                f"selector {sel!r} is out of range: {group!r} has {len(members)} nodes "
                f"(indexes {span})"
            )
        return (members[index],)
    step_value = _int(step)
    if step_value == 0:
        raise SelectorError(f"bad selector {sel!r}: slice step cannot be zero")
    for bound in (_int(start), _int(stop)):  # refused like an index, not silently clamped
        if bound is not None and not -len(members) <= bound <= len(members):
            raise SelectorError(
                f"selector {sel!r} is out of range: {group!r} has {len(members)} nodes "
                f"(slice bounds -{len(members)}..{len(members)})"
            )
    picked = members[slice(_int(start), _int(stop), step_value)]
    if not picked:
        raise SelectorError(
            f"selector {sel!r} selects no nodes: {group!r} has {len(members)} nodes"
        )
    return tuple(picked)


def resolve(sel: Any, where: Union[Topology, GroupNodes]) -> tuple[str, ...]:
    """Node names selected by ``sel`` (a string or a list of strings) in ``where`` (a
    Topology or a mapping group -> node names in index order). Raises SelectorError."""
    groups = _as_mapping(where)
    if isinstance(sel, str):
        return _one(sel, groups)
    if isinstance(sel, (list, tuple)):
        if not sel:
            raise SelectorError("empty selector list: name at least one group or node")
        out: list[str] = []
        for item in sel:
            if not isinstance(item, str):
                raise SelectorError(
                    f"a selector list holds names, got {_kind(item)} ({SYNTAX_HINT})"
                )
            for name in _one(item, groups):
                if name not in out:
                    out.append(name)
        return tuple(out)
    raise SelectorError(f"a selector is a name or a list of names, got {_kind(sel)}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def describe(names: Sequence[str], where: Union[Topology, GroupNodes]) -> str:
    """A short selector text for node names: whole groups by name, runs as slices
    (``leechers[0:4]``), the rest by node name; comma-separated."""
    groups = _as_mapping(where)
    remaining = list(names)
    parts: list[str] = []
    for group, members in groups.items():
        mine = [n for n in remaining if n in members]
        if not mine:
            continue
        indexes = sorted(list(members).index(n) for n in mine)
        if len(indexes) == len(members):
            parts.append(group)
        else:
            runs: list[list[int]] = []
            for i in indexes:
                if runs and i == runs[-1][-1] + 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            for run in runs:
                if len(run) == 1:
                    parts.append(members[run[0]])
                else:
                    parts.append(f"{group}[{run[0]}:{run[-1] + 1}]")
        remaining = [n for n in remaining if n not in mine]
    parts.extend(remaining)
    return ", ".join(parts) if parts else "-"
