"""Backend-neutral topology model: frozen dataclasses, no backend handles.

The loader (``orchestrator.loader``) turns YAML into these; backends and the scenario
engine only read them. Units: sizes in bytes, rates in bits/s, times in seconds,
latency/jitter in milliseconds, loss as a fraction 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

STRATEGIES = ("swarm", "client-server")
# DESIGN.md: a topology that names no backend runs its agents as local processes. The
# only backend name outside the backends' own packages (they come from entry points).
DEFAULT_BACKEND = "local"
OPENTRACKER = "opentracker"  # `tracker: opentracker`: Debian's opentracker beside the mesh


@dataclass(frozen=True)
class Link:
    """A node's access link. ``None`` rate means uncapped."""

    up_bps: Optional[int] = None
    down_bps: Optional[int] = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # fraction 0..1

    def merged(self, change: LinkChange) -> Link:
        return replace(
            self,
            **{k: v for k, v in change.__dict__.items() if k != "fields" and k in change.fields},
        )


@dataclass(frozen=True)
class LinkChange:
    """A partial link: only the names in ``fields`` were given (a `link:` event, a group override)."""

    fields: frozenset[str] = frozenset()
    up_bps: Optional[int] = None
    down_bps: Optional[int] = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0


@dataclass(frozen=True)
class Resources:
    cpus: Optional[float] = None
    memory_bytes: Optional[int] = None


@dataclass(frozen=True)
class Device:
    """A physical device from the inventory (ssh backend)."""

    name: str
    host: str
    port: int = 22
    user: Optional[str] = None
    key: Optional[str] = None
    known_hosts: Optional[str] = None
    profile: str = "generic-linux"
    tags: tuple[str, ...] = ()
    jump: Optional[str] = None
    python: Optional[str] = None
    trust_on_first_use: bool = False


@dataclass(frozen=True)
class Inventory:
    path: Path
    devices: tuple[Device, ...] = ()

    def get(self, name: str) -> Device:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)


@dataclass(frozen=True)
class Group:
    name: str
    count: int
    backend: str
    link: Link
    resources: Resources = Resources()
    # the backend's own group options (its ``group_options``), parsed; read by that backend
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    line: Optional[int] = field(default=None, compare=False)  # where its mapping starts (errors)


@dataclass(frozen=True)
class Node:
    name: str  # GROUP-INDEX
    group: str
    index: int
    backend: str
    link: Link
    resources: Resources = Resources()
    # what the backend's ``plan_nodes`` put on this node (e.g. the device it runs on)
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    access: str = "mesh"  # who may use its wire: "mesh" (proven members) or "open"


@dataclass(frozen=True)
class Content:
    name: str
    seeders: tuple[str, ...]  # node names
    chunk_size: int  # bytes, power of two
    size: Optional[int] = None  # synthetic: bytes, deterministic from the topology seed
    path: Optional[Path] = None  # real file (absolute)
    # `magnet: "@NAME"`: fetched by magnet link (BEP 9) of content NAME of the same topology;
    # size and chunk_size are NAME's, its seeders are among NAME's (nodes that hold it)
    magnet_of: Optional[str] = None

    @property
    def synthetic(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class FetchEvent:
    at: float
    content: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class KillEvent:
    """SIGKILL the agents (no goodbye); they keep their data dir."""

    at: float
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class StopEvent:
    """Graceful stop (SIGTERM)."""

    at: float
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class StartEvent:
    """Start killed/stopped agents again; they resume from their verified chunks."""

    at: float
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class LinkEvent:
    at: float
    nodes: tuple[str, ...]
    change: LinkChange


@dataclass(frozen=True)
class PartitionEvent:
    """Nodes in different sides cannot talk; nodes in no side keep talking to everyone."""

    at: float
    sides: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class HealEvent:
    at: float


Event = Union[FetchEvent, KillEvent, StopEvent, StartEvent, LinkEvent, PartitionEvent, HealEvent]


@dataclass(frozen=True)
class Expect:
    all_complete_within: Optional[float] = None  # seconds from scenario start
    min_efficiency: Optional[float] = None


@dataclass(frozen=True)
class Topology:
    name: str
    source: Optional[Path]  # the YAML file (None when built in code)
    backend: str = DEFAULT_BACKEND
    seed: int = 0
    strategy: str = "swarm"
    chunk_size: Optional[int] = None
    defaults_link: Link = Link()
    groups: tuple[Group, ...] = ()
    nodes: tuple[Node, ...] = ()
    contents: tuple[Content, ...] = ()
    scenario: tuple[Event, ...] = ()  # sorted by `at`
    expect: Expect = Expect()
    inventory: Optional[Inventory] = None
    monitoring: bool = False
    # `tracker:` "opentracker" (run beside the mesh by a backend with Capability.TRACKER) or
    # an announce URL; torrents made for the mesh carry it
    tracker: Optional[str] = None
    tracker_line: Optional[int] = field(default=None, compare=False)
    timeout: float = 600.0  # hard stop of `run` when nothing is expected sooner
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def content(self, name: str) -> Content:
        for c in self.contents:
            if c.name == name:
                return c
        raise KeyError(name)

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def backends_used(self) -> tuple[str, ...]:
        seen: list[str] = []
        for n in self.nodes:
            if n.backend not in seen:
                seen.append(n.backend)
        return tuple(seen)

    def fetchers(self, content: str) -> tuple[str, ...]:
        out: list[str] = []
        for ev in self.scenario:
            if isinstance(ev, FetchEvent) and ev.content == content:
                out.extend(n for n in ev.nodes if n not in out)
        return tuple(out)
