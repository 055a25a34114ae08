"""The one small abstract base every backend implements.

A backend places agents somewhere (processes, namespaces, containers, devices, swarm tasks)
and shapes their links when it can. Everything else (seeding, fetching, polling, reports)
the scenario engine does over the network through the agents' control API, the same way
for every backend. Mixed meshes hold one backend instance per backend name.

Rules every backend keeps:
- record what it is about to create in ``ctx.state`` (and ``save()``) *before* creating it,
  so ``meshbed down`` from another shell, after a crash, can find and remove it;
- ``teardown()`` works from that persisted state alone (``ctx.topology`` may be None) and is
  idempotent;
- blocking SDKs (docker) are called through ``asyncio.to_thread`` or a bounded pool.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from orchestrator.model import Link, Node, Topology
from orchestrator.options import GroupInput, GroupOption

API_PORT = 7000  # control API + /metrics, where a node has its own address
WIRE_PORT = 6881  # BitTorrent wire, where a node has its own address


class Capability(enum.Flag):
    """What the engine and `validate` decide from. (Kernel shaping is not a capability:
    ``set_link`` and ``partition`` say per call what the kernel took.)"""

    NONE = 0
    RESOURCES = enum.auto()  # honours cpus/memory limits (`validate` warns otherwise)
    # agents listen on an address agents of other backends can dial, not the host's
    # loopback (the engine asks peers that cannot dial such a node to be dialled instead)
    REACHABLE = enum.auto()
    # runs `tracker: opentracker` beside its mesh (``start_tracker``)
    TRACKER = enum.auto()


@dataclass(frozen=True)
class Description:
    """How a backend runs on this host, for `meshbed doctor`."""

    rate: str = "agent"  # who caps up/down rates
    delay: str = "agent"  # who adds latency/jitter/loss
    partition: str = "agent blocklists"  # who cuts traffic between sides


@dataclass(frozen=True)
class Orphan:
    """What a backend created on this host for a mesh that no state names any more (its
    folder was lost, or its orchestrator crashed before recording it)."""

    backend: str
    mesh: str  # the mesh's name; the resources' own tag when they no longer say it
    things: tuple[str, ...]  # one line each, for the user: "namespace mb-1a2b3c-0"
    # what the backend needs to remove them (names, ids, a reconstructed state)
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


# Whether a mesh still has state, so its resources are no orphans: (mesh name, the state
# folder the resources record, when they record one) -> True when that state exists.
HasState = Callable[[str, Optional[Path]], bool]


@dataclass(frozen=True)
class Endpoint:
    """Where a node is reachable.

    ``api``: host:port of the control API (and /metrics) as the orchestrator reaches it.
    ``wire``: host:port of the BitTorrent listener as *other peers* reach it.
    """

    api: str
    wire: str
    site: str = ""  # the engine/host running it where a backend spans several (Prometheus label `engine`)

    @property
    def metrics_url(self) -> str:
        return f"http://{self.api}/metrics"


@dataclass
class MeshContext:
    """What a backend gets from the orchestrator."""

    mesh: str
    token: str  # bearer token for the agents' mutating calls; never log it
    state_dir: Path  # $MESHBED_HOME/<mesh>; the backend may keep files under state_dir/<backend>
    state: dict[str, Any]  # this backend's persisted section of the mesh state
    save: Callable[[], None]  # persist ``state`` atomically (call after every change)
    topology: Optional[Topology] = None  # None during `down` from state
    say: Callable[[str], None] = print  # one-line progress/info messages for the user


class Backend(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[Capability] = Capability.NONE
    # the extra keys a group on this backend accepts (see orchestrator/options.py)
    group_options: ClassVar[tuple[GroupOption, ...]] = ()

    def __init__(self, ctx: MeshContext) -> None:
        self.ctx = ctx

    # --- topology -----------------------------------------------------------------------
    @classmethod
    def plan_nodes(cls, group: GroupInput, options: dict[str, Any]) -> list[dict[str, Any]]:
        """The group's nodes, one entry each: the ``Node.options`` the backend wants on it.
        ``options``: the group's parsed ``group_options``. Default: ``count`` plain nodes."""
        return [{} for _ in range(group.count())]

    @classmethod  # noqa: B027 - optional hook
    def validate(cls, topology: Topology) -> None:
        """Checks across the whole topology for this backend's groups; raise
        ``InputError(message, topology.source, group.line)`` on bad input."""

    @classmethod
    def describe(cls) -> Description:
        """How this backend shapes links on this host (may probe it), for `doctor`."""
        return Description()

    # --- availability -------------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        """Why this backend cannot run on this host (no root, no dockerd ...), or None.

        Cheap and synchronous; `validate`/`up` turn a reason into exit 2 before deploying.
        """
        return None

    @classmethod
    def conflict(cls, mesh: str) -> Optional[str]:
        """Why a mesh of this name cannot be deployed because host-wide resources of that name
        already exist (a mesh of another $MESHBED_HOME, or a crashed one without state), or None.

        Checked before anything is created, so a refused `up` touches nothing of the other mesh.
        """
        return None

    # --- orphans (`meshbed doctor --clean-orphans`): blocking, called from the CLI --------
    @classmethod
    def find_orphans(cls, has_state: HasState) -> list[Orphan]:
        """This backend's resources on this host (or its cluster) of meshes for which
        ``has_state`` is False; only things carrying meshbed's names, labels or marks."""
        return []

    @classmethod
    def remove_orphan(cls, orphan: Orphan) -> list[str]:
        """Remove what ``find_orphans`` found; return what could not be removed."""
        return list(orphan.things)

    # --- lifecycle ----------------------------------------------------------------------
    async def prepare(self, nodes: Sequence[Node]) -> None:  # noqa: B027 - optional hook
        """Create shared resources (bridge, network, image, pushed files) for ``nodes``."""

    @abstractmethod
    async def deploy(self, node: Node) -> Endpoint:
        """Start the node's agent (fresh data dir) and return where it listens.

        Need not wait for the control API to answer: the engine polls ``GET /status``.
        """

    @abstractmethod
    async def kill(self, node: Node) -> None:
        """SIGKILL the agent; keep its data dir so `start` resumes."""

    async def stop(self, node: Node) -> None:
        """Graceful stop (SIGTERM); default: kill."""
        await self.kill(node)

    @abstractmethod
    async def start(self, node: Node) -> Endpoint:
        """Start a killed/stopped agent again on the same data dir."""

    @abstractmethod
    async def teardown(self) -> None:
        """Remove everything this backend created for the mesh, from ``ctx.state`` alone."""

    # --- links --------------------------------------------------------------------------
    async def set_link(self, node: Node, link: Link) -> frozenset[str]:
        """Apply what the kernel can of ``link``; return the field names applied there
        (``up_bps``, ``down_bps``, ``latency_ms``, ``jitter_ms``, ``loss``).
        The engine sends every other field to the agent's own emulation (POST /link)."""
        return frozenset()

    async def partition(self, sides: Sequence[Sequence[str]]) -> bool:
        """Cut traffic between sides in the kernel; return False to let the engine use the
        agents' blocklists (POST /block) instead."""
        return False

    async def heal(self) -> None:  # noqa: B027 - optional hook
        """Undo a `partition` that returned True (the engine clears agents' blocklists)."""

    # --- tracker ------------------------------------------------------------------------
    @classmethod
    def tracker_unavailable(cls) -> Optional[str]:
        """Why `tracker: opentracker` cannot run beside this backend's mesh here, or None."""
        return "this backend does not run opentracker"

    async def start_tracker(self, infohashes: Sequence[str]) -> str:
        """Start opentracker for ``infohashes`` beside the mesh (recorded in state first,
        removed by ``teardown``); return its announce URL. Capability.TRACKER backends only."""
        raise NotImplementedError

    # --- files --------------------------------------------------------------------------
    @abstractmethod
    async def put_file(self, node: Node, src: Path, name: str) -> str:
        """Place ``src`` in the node's data dir as ``inbox/<name>``; return that relative path
        (what POST /share {"file": ...} takes)."""

    async def logs(self, node: Node) -> str:
        """The agent's recent log output, for error messages."""
        return ""


def agent_args(
    node: Node,
    *,
    mesh: str,
    data_dir: str,
    api: str,
    wire: str,
    token_file: Optional[str] = None,
    ready_file: Optional[str] = None,
    link: Optional[Link] = None,
    backend: Optional[str] = None,
    log_file: Optional[str] = None,
) -> list[str]:
    """The `meshbed-peer run` arguments for a node (after the interpreter/entry point).

    The token goes through ``--token-file`` or the ``MESHBED_TOKEN`` environment variable,
    never on the command line (it would show in `ps`).
    """
    args = [
        "run",
        "--node", node.name,
        "--group", node.group,
        "--mesh", mesh,
        "--backend", backend or node.backend,
        "--data-dir", data_dir,
        "--api", api,
        "--listen", wire,
        "--access", node.access,
    ]
    if token_file:
        args += ["--token-file", token_file]
    if ready_file:
        args += ["--ready-file", ready_file]
    if log_file:
        args += ["--log-file", log_file]
    if link is not None:
        if link.up_bps:
            args += ["--up", f"{link.up_bps}bit"]
        if link.down_bps:
            args += ["--down", f"{link.down_bps}bit"]
        if link.latency_ms:
            args += ["--latency", str(link.latency_ms)]
        if link.jitter_ms:
            args += ["--jitter", str(link.jitter_ms)]
        if link.loss:
            args += ["--loss", str(link.loss * 100)]
    return args
