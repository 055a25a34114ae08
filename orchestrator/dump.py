"""``Topology`` -> topology YAML that loads back to an equal ``Topology``.

Everything is spelled out (links in full, selectors as node names, sizes in bytes, times
in seconds) so the text is a canonical form: handy in state files and reports, and the
loader's round-trip tests use it.
"""

from __future__ import annotations

from typing import Any, Optional

import yaml

from orchestrator import backends as registry
from orchestrator.model import (
    Event,
    FetchEvent,
    HealEvent,
    KillEvent,
    Link,
    LinkChange,
    LinkEvent,
    PartitionEvent,
    Resources,
    StartEvent,
    StopEvent,
    Topology,
)


def _rate(bps: Optional[int]) -> str:
    return "unlimited" if bps is None else f"{bps}bit"


def _ms(value: float) -> str:
    return f"{value!r}ms"


def link_dict(link: Link) -> dict[str, Any]:
    return {
        "up": _rate(link.up_bps),
        "down": _rate(link.down_bps),
        "latency": _ms(link.latency_ms),
        "jitter": _ms(link.jitter_ms),
        "loss": link.loss,
    }


def change_dict(change: LinkChange) -> dict[str, Any]:
    full = {
        "up_bps": ("up", _rate(change.up_bps)),
        "down_bps": ("down", _rate(change.down_bps)),
        "latency_ms": ("latency", _ms(change.latency_ms)),
        "jitter_ms": ("jitter", _ms(change.jitter_ms)),
        "loss": ("loss", change.loss),
    }
    return dict(v for k, v in full.items() if k in change.fields)


def _resources(res: Resources) -> Optional[dict[str, Any]]:
    out: dict[str, Any] = {}
    if res.cpus is not None:
        out["cpus"] = res.cpus
    if res.memory_bytes is not None:
        out["memory"] = res.memory_bytes
    return out or None


def event_dict(ev: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"at": ev.at}
    if isinstance(ev, FetchEvent):
        out["fetch"] = {"content": ev.content, "by": list(ev.nodes)}
    elif isinstance(ev, (KillEvent, StopEvent, StartEvent)):
        action = {KillEvent: "kill", StopEvent: "stop", StartEvent: "start"}[type(ev)]
        out[action] = list(ev.nodes)
    elif isinstance(ev, LinkEvent):
        out["link"] = {"nodes": list(ev.nodes), **change_dict(ev.change)}
    elif isinstance(ev, PartitionEvent):
        out["partition"] = [list(side) for side in ev.sides]
    elif isinstance(ev, HealEvent):
        out["heal"] = True
    return out


def topology_to_dict(topology: Topology) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": topology.name,
        "backend": topology.backend,
        "seed": topology.seed,
        "strategy": topology.strategy,
    }
    if topology.chunk_size is not None:
        out["chunk_size"] = topology.chunk_size
    out["monitoring"] = topology.monitoring
    out["timeout"] = topology.timeout
    if topology.tracker is not None:
        out["tracker"] = topology.tracker
    out["defaults"] = {"link": link_dict(topology.defaults_link)}
    if topology.inventory is not None:
        out["inventory"] = str(topology.inventory.path)
    groups: dict[str, Any] = {}
    for g in topology.groups:
        spec: dict[str, Any] = {"backend": g.backend, "count": g.count}
        spec["link"] = link_dict(g.link)
        resources = _resources(g.resources)
        if resources:
            spec["resources"] = resources
        # the backend's own options, as given (a value equal to the default was not)
        declared = {o.key: o for o in registry.get(g.backend).group_options}
        for key, value in g.options.items():
            opt = declared.get(key)
            if opt is not None and value != opt.default:
                spec[key] = opt.dump(value)
        groups[g.name] = spec
    out["groups"] = groups
    contents: dict[str, Any] = {}
    for c in topology.contents:
        if c.magnet_of is not None:
            spec = {"magnet": f"@{c.magnet_of}", "seeders": list(c.seeders)}
        else:
            spec = {"path": str(c.path)} if c.path is not None else {"size": c.size}
            spec["seeders"] = list(c.seeders)
            spec["chunk_size"] = c.chunk_size
        contents[c.name] = spec
    if contents:
        out["content"] = contents
    if topology.scenario:
        out["scenario"] = [event_dict(ev) for ev in topology.scenario]
    expect: dict[str, Any] = {}
    if topology.expect.all_complete_within is not None:
        expect["all_complete_within"] = topology.expect.all_complete_within
    if topology.expect.min_efficiency is not None:
        expect["min_efficiency"] = topology.expect.min_efficiency
    if expect:
        out["expect"] = expect
    return out


def topology_to_yaml(topology: Topology) -> str:
    return yaml.safe_dump(topology_to_dict(topology), sort_keys=False, default_flow_style=None)
