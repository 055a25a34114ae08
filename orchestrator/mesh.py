"""A deployed mesh, backend-neutral: deploy a topology, seed it, play it, poll it, tear it
down (the timeline itself is ``orchestrator.scenario``).

``Mesh`` is the Python API the CLI, the contract suite and the benches use::

    mesh = Mesh(topology, home=tmp)
    await mesh.up()          # deploy + wait ready + links + seed (rolls back on failure)
    result = await mesh.play()   # the timeline, polling every node about once a second
    report = mesh.report()
    await mesh.down()

``Mesh.attach(name)`` reloads a running mesh from ``$MESHBED_HOME/<name>/state.json`` for
`status`, `watch` and `down` from another shell (or after a crash). Backends only place
agents and shape links; everything else goes over the agents' control API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from orchestrator import backends as registry
from orchestrator import monitor
from orchestrator import state as statemod
from orchestrator.backends.base import Backend, Capability, Endpoint
from orchestrator.clients import client_of
from orchestrator.errors import BackendUnavailable, DeployError, InputError, MeshbedError
from orchestrator.model import OPENTRACKER, Link, Node, Topology
from orchestrator.peerclient import ConnectionPool, PeerClient, PeerError
from orchestrator.seeding import SeededContent, prepare_content, seed_content

DEPLOY_POOL = 16  # concurrent deploys
READY_TIMEOUT = 60.0  # per node: GET /status must answer within this after deploy
STATUS_TIMEOUT = 2.0  # per poll
STATUS_CONCURRENCY = 64  # GET /status in flight at once (and so connections being opened)
LOST_AFTER_MISSES = 3  # polls a node may miss before its backend is asked whether it is lost

T = TypeVar("T")
Say = Callable[[str], None]
LINK_FIELDS = ("up_bps", "down_bps", "latency_ms", "jitter_ms", "loss")


def _quiet(_: str) -> None:
    pass


async def bounded(limit: int, jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``jobs`` with at most ``limit`` running at once; first error wins (after all end)."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with sem:
            return await job

    results = await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


class Mesh:
    """A deployed (or to-be-deployed) mesh."""

    def __init__(self, topology: Optional[Topology], home: Optional[Path] = None, say: Say = _quiet) -> None:
        self.topology = topology
        self.home = statemod.home(home)
        self.say = say
        self.state: Optional[statemod.MeshState] = None
        self.backends: dict[str, Backend] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.links: dict[str, Link] = {}
        self.contents: dict[str, SeededContent] = {}
        self.dead: set[str] = set()  # killed/stopped by the scenario: poll failures expected
        self.lost: dict[str, str] = {}  # node -> why: gone without the scenario asking (host lost)
        self._misses: dict[str, int] = {}
        self.partition_sides: Optional[tuple[tuple[str, ...], ...]] = None
        self.kernel_partition = False
        self.deploy_seconds: Optional[float] = None
        self.result: Any = None  # scenario.PlayResult after play()
        self._is_down = False
        self._pool: Optional[tuple[asyncio.AbstractEventLoop, ConnectionPool]] = None

    # --- names --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self.topology is not None:
            return self.topology.name
        assert self.state is not None
        return self.state.mesh

    def node(self, name: str) -> Node:
        assert self.topology is not None
        return self.topology.node(name)

    def backend_of(self, name: str) -> Backend:
        if self.topology is not None:
            return self.backends[self.topology.node(name).backend]
        assert self.state is not None
        return self.backends[self.state.nodes[name]["backend"]]

    def client(self, name: str, timeout: float = 5.0) -> PeerClient:
        assert self.state is not None
        api = self.state.nodes[name]["api"]
        return PeerClient(api, self.state.token, timeout=timeout)

    def node_names(self) -> list[str]:
        if self.topology is not None:
            return [n.name for n in self.topology.nodes]
        assert self.state is not None
        return list(self.state.nodes)

    # --- up -----------------------------------------------------------------------------
    def check_available(self) -> None:
        assert self.topology is not None
        for name in self.topology.backends_used():
            cls = registry.get(name)
            reason = cls.unavailable_reason()
            if reason:
                if not reason.startswith("backend "):
                    reason = f"backend {name}: {reason}"
                raise BackendUnavailable(reason, self.topology.source)
        if not (self.home / self.topology.name / statemod.STATE_FILE).exists():
            for name in self.topology.backends_used():
                clash = registry.get(name).conflict(self.topology.name)
                if clash:
                    raise InputError(clash, self.topology.source)

    async def up(self) -> None:
        """Deploy, wait until every agent answers, apply links, seed. On failure everything
        created is torn down and DeployError is raised (InputError stays InputError)."""
        topo = self.topology
        assert topo is not None, "up() needs a topology"
        self.check_available()
        started = time.monotonic()
        self.state = statemod.MeshState.create(topo, self.home)
        try:
            for bname in topo.backends_used():
                cls = registry.get(bname)
                self.backends[bname] = cls(self.state.context(bname, topo, self.say))
            self.state.save()
            self.links = {n.name: n.link for n in topo.nodes}
            self.say(f"deploying {len(topo.nodes)} nodes ({', '.join(topo.backends_used())})")
            prep = asyncio.create_task(self._prepare_contents())
            try:
                await self._deploy_all()
            finally:
                if not prep.done():
                    await asyncio.wait([prep])
            self.contents = prep.result()
            if topo.tracker:
                url = await self._start_tracker(topo.tracker)
                self.contents = {k: c.with_tracker(url) for k, c in self.contents.items()}
                self.say(f"tracker: {url}")
            await self._wait_all_ready()
            await bounded(DEPLOY_POOL, (self.apply_link(n) for n in self.node_names()))
            for content in topo.contents:
                await seed_content(self, content, self.contents[content.name])
                self.say(f"{content.name}: the magnet link of {content.magnet_of}, held by "
                         f"{', '.join(content.seeders)}" if content.magnet_of else
                         f"seeded {content.name} on {', '.join(content.seeders)}")
            self.state.data["phase"] = "up"
            self.deploy_seconds = time.monotonic() - started
            self.state.data["deploy_seconds"] = round(self.deploy_seconds, 3)
            self.state.save()
            await self._publish_targets(start_monitor=topo.monitoring)
        except BaseException as exc:
            interrupted = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))
            self.say(("interrupted" if interrupted else f"deploy failed: {_first_line(exc)}") + "; rolling back")
            await asyncio.shield(self.down())
            if isinstance(exc, (MeshbedError, asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            raise DeployError(f"deploy of {topo.name} failed: {exc}") from exc

    async def _start_tracker(self, tracker: str) -> str:
        """The announce URL: given, or that of the opentracker a backend starts beside the mesh."""
        if tracker != OPENTRACKER:
            return tracker
        runs = [b for b in self.backends.values() if b.capabilities & Capability.TRACKER]
        if not runs:  # the loader refuses this; a topology built in code may not
            raise DeployError(f"tracker: {OPENTRACKER}: no backend of this mesh runs it")
        # a `magnet: "@NAME"` content shares NAME's infohash: each once
        return await runs[0].start_tracker(list(dict.fromkeys(c.infohash for c in self.contents.values())))

    async def _publish_targets(self, start_monitor: bool = False) -> None:
        """Prometheus file_sd targets for this mesh (labels mesh/node/group/backend); with
        `monitoring: true` also start Prometheus (and Grafana where it can run)."""
        assert self.state is not None
        if start_monitor:  # starts processes and waits for readiness: off the event loop
            await asyncio.to_thread(monitor.up, say=self.say)
        monitor.write_targets(self.name, self.state.nodes, self.home)

    async def _prepare_contents(self) -> dict[str, SeededContent]:
        assert self.topology is not None
        out: dict[str, SeededContent] = {}
        for content in self.topology.contents:
            if content.magnet_of is None:
                out[content.name] = await prepare_content(self.topology, content, self.home / "cache")
        for content in self.topology.contents:  # after: they name a content prepared above
            if content.magnet_of is not None:
                out[content.name] = out[content.magnet_of].as_magnet(content.name)
        return out

    async def _deploy_all(self) -> None:
        assert self.topology is not None and self.state is not None
        topo = self.topology
        for bname, backend in self.backends.items():
            await backend.prepare([n for n in topo.nodes if n.backend == bname])
        ready = 0

        async def deploy(node: Node) -> None:
            nonlocal ready
            ep = await self.backends[node.backend].deploy(node)
            self._record_endpoint(node, ep)
            ready += 1

        await bounded(DEPLOY_POOL, (deploy(n) for n in topo.nodes))
        self.say(f"{ready}/{len(topo.nodes)} agents started")

    def _record_endpoint(self, node: Node, ep: Endpoint) -> None:
        assert self.state is not None
        self.endpoints[node.name] = ep
        self.state.nodes[node.name] = {
            "backend": node.backend, "api": ep.api, "wire": ep.wire, "group": node.group,
            "client": client_of(node.options),
        }
        if ep.site:
            self.state.nodes[node.name]["site"] = ep.site
        self.state.save()

    async def _wait_all_ready(self) -> None:
        await bounded(64, (self.wait_ready(n) for n in self.node_names()))
        self.say(f"{len(self.node_names())} nodes ready")

    async def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Poll GET /status until it answers; DeployError naming the node and its log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = ""
        while loop.time() < deadline:
            try:
                return await self.client(name).status(timeout=STATUS_TIMEOUT)
            except PeerError as exc:
                last = str(exc)
            await asyncio.sleep(0.2)
        logs = await self.backend_of(name).logs(self.node(name)) if self.topology else ""
        raise DeployError(
            f"{name}: control API did not answer within {timeout:.0f}s ({last})\n--- log of {name} ---\n{logs}"
        )

    # --- links --------------------------------------------------------------------------
    async def apply_link(self, name: str) -> None:
        """Kernel part through the backend, the rest through the agent's own emulation."""
        assert self.state is not None
        link = self.links[name]
        kernel = await self.backend_of(name).set_link(self.node(name), link)
        body: dict[str, Any] = {}
        for f in LINK_FIELDS:
            if f in kernel:  # the kernel shapes it: the agent must not shape it twice
                body[f] = None if f.endswith("_bps") else 0
            else:
                body[f] = getattr(link, f)
        await self.client(name).link(body)
        self.state.data["links"][name] = {f: getattr(link, f) for f in LINK_FIELDS}

    # --- partitions ---------------------------------------------------------------------
    async def partition(self, sides: Sequence[Sequence[str]]) -> None:
        self.partition_sides = tuple(tuple(s) for s in sides)
        self.kernel_partition = False
        if len(self.backends) == 1:
            self.kernel_partition = await next(iter(self.backends.values())).partition(sides)
        if not self.kernel_partition:
            await self.apply_blocklists()

    async def heal(self) -> None:
        if self.kernel_partition:
            for b in self.backends.values():
                await b.heal()
        sides, self.partition_sides = self.partition_sides, None
        if not self.kernel_partition and sides is not None:
            await self.apply_blocklists()
        self.kernel_partition = False

    def blocklist(self, name: str) -> tuple[list[str], list[str]]:
        """Names and wire addresses node ``name`` must not talk to under the partition."""
        assert self.state is not None
        if not self.partition_sides:
            return [], []
        mine = [i for i, side in enumerate(self.partition_sides) if name in side]
        if not mine:
            return [], []
        others = [n for i, side in enumerate(self.partition_sides) if i not in mine for n in side]
        others = [n for n in dict.fromkeys(others) if n != name]
        addrs = [self.state.nodes[n]["wire"] for n in others if n in self.state.nodes]
        return others, addrs

    async def apply_blocklists(self, names: Optional[Iterable[str]] = None) -> None:
        async def one(n: str) -> None:
            nodes, addrs = self.blocklist(n)
            await self.client(n).block(nodes, addrs)

        targets = [n for n in (names or self.node_names()) if n not in self.dead]
        await bounded(DEPLOY_POOL, (one(n) for n in targets))

    # --- process control ----------------------------------------------------------------
    async def kill(self, names: Sequence[str], graceful: bool = False) -> None:
        self.dead.update(names)

        async def one(n: str) -> None:
            b = self.backend_of(n)
            await (b.stop(self.node(n)) if graceful else b.kill(self.node(n)))

        await bounded(DEPLOY_POOL, (one(n) for n in names))

    async def start(self, names: Sequence[str], refetch: Callable[[str], Awaitable[None]]) -> None:
        """Start agents again on their data dirs, wait, re-apply link + blocklist, resume."""

        async def one(n: str) -> None:
            ep = await self.backend_of(n).start(self.node(n))
            moved = ep != self.endpoints.get(n)
            self._record_endpoint(self.node(n), ep)
            await self.wait_ready(n)
            await self.apply_link(n)
            self.dead.discard(n)
            for content in self.contents.values():
                await content.reshare_if_missing(self, n)
            if self.partition_sides is not None and not self.kernel_partition:
                await self.apply_blocklists(self.node_names() if moved else [n])
            await refetch(n)

        await bounded(DEPLOY_POOL, (one(n) for n in names))

    # --- polling ------------------------------------------------------------------------
    def status_pool(self) -> ConnectionPool:
        """Kept-alive connections for polling, one pool per event loop."""
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool[0] is not loop:
            self._pool = (loop, ConnectionPool(STATUS_CONCURRENCY))
        return self._pool[1]

    async def close_connections(self) -> None:
        if self._pool is not None and self._pool[0] is asyncio.get_running_loop():
            await self._pool[1].close()
        self._pool = None

    async def statuses(
        self, timeout: float = STATUS_TIMEOUT, keep: bool = False
    ) -> dict[str, Optional[dict[str, Any]]]:
        """GET /status of every node, at most STATUS_CONCURRENCY at once; None where it did
        not answer. ``keep``: leave the connections open for the next poll (the player polls
        every second; `close_connections()` ends them)."""
        names = self.node_names()
        assert self.state is not None
        token, nodes = self.state.token, self.state.nodes
        pool = self.status_pool() if keep else ConnectionPool(STATUS_CONCURRENCY)

        async def one(n: str) -> Optional[dict[str, Any]]:
            try:
                return await PeerClient(nodes[n]["api"], token, pool=pool).status(timeout=timeout)
            except PeerError:
                return None

        try:
            results = await asyncio.gather(*(one(n) for n in names))
        finally:
            if not keep:
                await pool.close()
        return dict(zip(names, results))

    async def notice_lost(self, statuses: dict[str, Optional[dict[str, Any]]]) -> list[str]:
        """Nodes that stopped answering and whose backend says why (``why_lost``, e.g. a
        swarm host down): they count as dead from now on. The newly lost ones."""
        newly: list[str] = []
        for n, st in statuses.items():
            if st is not None or n in self.dead:
                self._misses.pop(n, None)
                continue
            self._misses[n] = self._misses.get(n, 0) + 1
            if self._misses[n] < LOST_AFTER_MISSES or self.topology is None:
                continue
            why_lost = getattr(self.backends.get(self.node(n).backend), "why_lost", None)
            if why_lost is None:
                continue
            reason = await why_lost(self.node(n))
            if reason:
                self.dead.add(n)
                self.lost[n] = reason
                newly.append(n)
                self.say(f"lost {n}: {reason}")
        return newly

    # --- scenario / report --------------------------------------------------------------
    async def play(self, on_sample: Optional[Callable[[Any], None]] = None) -> Any:
        from orchestrator.scenario import Player

        assert self.topology is not None and self.state is not None
        self.state.data["phase"] = "running"
        self.state.save()
        try:
            self.result = await Player(self, on_sample=on_sample).run()
        finally:
            await self.close_connections()
        self.state.data["phase"] = "done"
        self.state.save()
        return self.result

    def report(self) -> dict[str, Any]:
        from orchestrator.report import build_report

        return build_report(self)

    # --- down / attach ------------------------------------------------------------------
    async def down(self) -> None:
        """Tear down every backend from state, then delete the mesh folder. Idempotent."""
        if self.state is None or self._is_down:
            return
        from orchestrator import player  # a detached scenario must not start agents again

        if await player.stop(self.state.dir):
            self.say("stopped the scenario that was playing")
        await self.close_connections()
        errors: list[str] = []
        for bname in list(self.state.data.get("backends", {})):
            backend = self.backends.get(bname)
            if backend is None:
                try:
                    cls = registry.get(bname)
                except InputError as exc:
                    errors.append(str(exc))
                    continue
                backend = cls(self.state.context(bname, self.topology, self.say))
            try:
                await backend.teardown()
            except Exception as exc:  # keep going: remove what the other backends made
                errors.append(f"{bname}: {exc}")
        if errors:
            self.state.save()
            raise DeployError("teardown incomplete: " + "; ".join(errors))
        self.state.remove()
        monitor.remove_targets(self.name, self.home)
        self._is_down = True
        self.say(f"mesh {self.name} is down")

    @classmethod
    def attach(cls, name: Optional[str], home: Optional[Path] = None, say: Say = _quiet) -> Mesh:
        """A running mesh from its state (``name`` may be None when only one exists)."""
        home_dir = statemod.home(home)
        mesh_dir = statemod.resolve(name, home_dir)
        mesh = cls(None, home=home_dir, say=say)
        try:
            mesh.state = statemod.MeshState.load(mesh_dir)
        except InputError as exc:
            # Without its state no backend can tell what it made; guessing one would delete
            # the folder and leave the others' namespaces/containers running.
            raise StateUnreadable(mesh_dir, exc.message) from None
        mesh.contents = {
            k: SeededContent.from_state(k, v) for k, v in mesh.state.data.get("contents", {}).items()
        }
        for n, entry in mesh.state.nodes.items():
            mesh.endpoints[n] = Endpoint(api=entry["api"], wire=entry["wire"], site=entry.get("site", ""))
        return mesh


class StateUnreadable(MeshbedError):
    """A mesh folder whose state.json cannot be read: nothing can be identified in it."""

    def __init__(self, mesh_dir: Path, reason: str) -> None:
        subdirs = sorted(p.name for p in mesh_dir.iterdir() if p.is_dir()) if mesh_dir.is_dir() else []
        found = f" (it holds folders {', '.join(subdirs)})" if subdirs else ""
        super().__init__(
            f"mesh {mesh_dir.name}: {reason}; cannot tell which backends created what{found}, "
            f"so `down` removes nothing and leaves {mesh_dir} as it is: remove the mesh's "
            "agents, namespaces or containers by hand, then that folder"
        )
        self.mesh_dir = mesh_dir


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
