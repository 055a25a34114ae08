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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from orchestrator.model import Link, Node, Topology

API_PORT = 7000  # control API + /metrics, where a node has its own address
WIRE_PORT = 6881  # BitTorrent wire, where a node has its own address


class Capability(enum.Flag):
    NONE = 0
    KERNEL_RATE = enum.auto()  # up/down shaped in the kernel (tc)
    KERNEL_DELAY = enum.auto()  # latency/jitter/loss in the kernel (netem)
    KERNEL_PARTITION = enum.auto()  # partition/heal without the agents' help
    RESOURCES = enum.auto()  # cpus/memory limits
    DETACHED = enum.auto()  # agents outlive the orchestrator, so `up` can return
    OWN_ADDRESS = enum.auto()  # every node has its own IP address


@dataclass(frozen=True)
class Endpoint:
    """Where a node is reachable.

    ``api``: host:port of the control API (and /metrics) as the orchestrator reaches it.
    ``wire``: host:port of the BitTorrent listener as *other peers* reach it.
    """

    api: str
    wire: str

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

    def __init__(self, ctx: MeshContext) -> None:
        self.ctx = ctx

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

    async def heal(self) -> bool:
        """Undo `partition`; return False when the agents' blocklists are to be cleared."""
        return False

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
