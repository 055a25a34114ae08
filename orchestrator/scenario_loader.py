"""The ``scenario:`` timeline of a topology file -> model events (sorted by ``at``).

Each entry is a mapping with ``at`` (default 0s) and exactly one action:
``fetch: {content, by}``, ``kill: SEL``, ``stop: SEL``, ``start: SEL``,
``link: {nodes: SEL, up?, down?, latency?, jitter?, loss?}``,
``partition: [SEL, SEL, ...]`` (two or more disjoint sides), ``heal: true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

from orchestrator.errors import InputError
from orchestrator.fields import Reader, did_you_mean, kind
from orchestrator.model import (
    Content,
    Event,
    FetchEvent,
    Group,
    HealEvent,
    KillEvent,
    LinkChange,
    LinkEvent,
    Node,
    PartitionEvent,
    StartEvent,
    StopEvent,
)
from orchestrator.selectors import SelectorError, resolve
from orchestrator.units import format_duration, parse_duration
from orchestrator.yamlsrc import YMap, YSeq

ACTIONS = ("fetch", "kill", "stop", "start", "link", "partition", "heal")
LinkReader = Callable[..., LinkChange]


def group_map(groups: Sequence[Group], nodes: Sequence[Node]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {g.name: [] for g in groups}
    for n in nodes:
        out[n.group].append(n.name)
    return out


def select(
    r: Reader, value: Any, line: int, groups: Sequence[Group], nodes: Sequence[Node], what: str
) -> tuple[str, ...]:
    """Resolve a selector (string or list) with errors at the line of the bad item."""
    where = group_map(groups, nodes)
    if value is None:
        raise r.error(f"{what}: no nodes given (a group, a node or a slice like group[0:4])", line)
    try:
        if isinstance(value, YSeq):
            if not value:
                raise r.error(f"{what}: empty list: name at least one group or node", line)
            out: list[str] = []
            for i, item in enumerate(value):
                try:
                    picked = resolve([item] if isinstance(item, str) else item, where)
                except SelectorError as exc:
                    raise r.error(f"{what}: {exc.message}", value.item_line(i)) from None
                out.extend(n for n in picked if n not in out)
            return tuple(out)
        return resolve(value if isinstance(value, str) else _plain(value), where)
    except SelectorError as exc:
        raise r.error(f"{what}: {exc.message}", line) from None


def _plain(value: Any) -> Any:
    """Non-string, non-list selector values: let ``resolve`` describe them."""
    return value


def load_scenario(
    r: Reader,
    top: YMap,
    groups: Sequence[Group],
    nodes: Sequence[Node],
    contents: Sequence[Content],
    timeout: float,
    link_change: LinkReader,
) -> tuple[Event, ...]:
    if top.get("scenario") is None:
        return ()
    seq = r.sequence(top["scenario"], "'scenario'", top.value_line("scenario"))
    events: list[Event] = []
    for i, item in enumerate(seq):
        line = seq.item_line(i)
        where = f"scenario entry {i + 1}"
        m = r.mapping(item, where, line, empty_ok=False)
        r.check_keys(m, ("at",) + ACTIONS, where)
        actions = [k for k in m if k in ACTIONS]
        if not actions:
            raise r.error(f"{where} has no action (one of {', '.join(ACTIONS)})", m.line)
        if len(actions) > 1:
            raise r.error(
                f"{where}: one action per entry, found {actions[0]!r} and {actions[1]!r}",
                m.key_line(actions[1]),
            )
        at = r.get_unit(m, "at", f"{where}: at", parse_duration) or 0.0
        if at >= timeout:
            raise r.error(
                f"{where}: at {format_duration(at)} is not before the timeout "
                f"({format_duration(timeout)}); raise 'timeout:'",
                m.value_line("at"),
            )
        events.append(_event(r, m, actions[0], at, groups, nodes, contents, link_change))
    events.sort(key=lambda ev: ev.at)  # stable: same-time entries keep file order
    return tuple(events)


def _event(
    r: Reader,
    m: YMap,
    action: str,
    at: float,
    groups: Sequence[Group],
    nodes: Sequence[Node],
    contents: Sequence[Content],
    link_change: LinkReader,
) -> Event:
    value = m[action]
    line = m.value_line(action)
    if action in ("kill", "stop", "start"):
        sel = select(r, value, line, groups, nodes, action)
        if action == "kill":
            return KillEvent(at=at, nodes=sel)
        if action == "stop":
            return StopEvent(at=at, nodes=sel)
        return StartEvent(at=at, nodes=sel)
    if action == "fetch":
        return _fetch(r, value, line, groups, nodes, contents, at)
    if action == "link":
        spec = r.mapping(value, "link", line, empty_ok=False)
        if spec.get("nodes") is None:
            raise r.error("link needs 'nodes' (which nodes' links change)", spec.line)
        sel = select(r, spec["nodes"], spec.value_line("nodes"), groups, nodes, "link: nodes")
        change = link_change(m, "link event", "link", ("nodes",))
        if not change.fields:
            raise r.error(
                "link event changes nothing: give up, down, latency, jitter or loss", spec.line
            )
        return LinkEvent(at=at, nodes=sel, change=change)
    if action == "partition":
        return _partition(r, value, line, groups, nodes, at)
    if value is not True:
        raise r.error(f"heal takes true (heal: true), got {kind(value)}", line)
    return HealEvent(at=at)


def _fetch(
    r: Reader,
    value: Any,
    line: int,
    groups: Sequence[Group],
    nodes: Sequence[Node],
    contents: Sequence[Content],
    at: float,
) -> FetchEvent:
    spec = r.mapping(value, "fetch", line, empty_ok=False)
    r.check_keys(spec, ("content", "by"), "fetch", required=("content", "by"))
    name = spec["content"]
    names = [c.name for c in contents]
    if not isinstance(name, str) or name not in names:
        shown = repr(name) if isinstance(name, str) else kind(name)
        hint = did_you_mean(name, names) if isinstance(name, str) else ""
        known = f" (contents: {', '.join(names)})" if names and not hint else ""
        if not names:
            known = " (the topology has no 'content:')"
        raise r.error(f"fetch: unknown content {shown}{hint}{known}", spec.value_line("content"))
    by = select(r, spec["by"], spec.value_line("by"), groups, nodes, "fetch: by")
    seeders = next(c.seeders for c in contents if c.name == name)
    both = [n for n in by if n in seeders]
    if both:
        raise r.error(
            f"fetch: {both[0]!r} already seeds {name!r}, fetching it does nothing; "
            "leave it out of 'by'",
            spec.value_line("by"),
        )
    return FetchEvent(at=at, content=name, nodes=by)


def _partition(
    r: Reader, value: Any, line: int, groups: Sequence[Group], nodes: Sequence[Node], at: float
) -> PartitionEvent:
    seq = r.sequence(value, "partition", line)
    if len(seq) < 2:
        raise r.error(
            "partition needs two or more sides, e.g. partition: [[seeders], [leechers]]", line
        )
    sides: list[tuple[str, ...]] = []
    owner: dict[str, int] = {}
    for i, side_value in enumerate(seq):
        side_line = seq.item_line(i)
        side = select(r, side_value, side_line, groups, nodes, f"partition side {i + 1}")
        for n in side:
            if n in owner:
                raise r.error(
                    f"partition sides overlap: {n!r} is in side {owner[n] + 1} and side {i + 1}",
                    side_line,
                )
            owner[n] = i
        sides.append(side)
    return PartitionEvent(at=at, sides=tuple(sides))


__all__ = ["ACTIONS", "InputError", "load_scenario", "select"]
