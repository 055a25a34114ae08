"""Docker backend: one container per node on one bridge network per mesh.

Containers are ``meshbed-MESH-NODE`` with labels meshbed.managed/mesh/node/group, static
addresses on the mesh's own subnet, the agent on API 7000 / wire 6881, and a labelled named
volume as data dir. The orchestrator reaches them at their address (the host routes to
docker bridges). Links: tbf from the host (see ``shaping``); partitions: iptables scoped to
the mesh's bridge. Every SDK call runs in this backend's own bounded thread pool.

State section (``ctx.state``)::

    {"network": {"name","id","subnet","gateway","bridge"}, "image": TAG,
     "nodes": {NODE: {"container","ip","volume","group"}},
     "links": {NODE: {"up_bps","down_bps","latency_ms","jitter_ms","loss"}},
     "partition": {"chains": [...]}}
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, TypeVar

from orchestrator.backends import tc
from orchestrator.backends.base import (
    API_PORT,
    WIRE_PORT,
    Backend,
    Capability,
    Description,
    Endpoint,
    HasState,
    MeshContext,
    Orphan,
    agent_args,
)
from orchestrator.backends.docker import containers, networks, shaping
from orchestrator.clients import MESHBED, client_of, client_option
from orchestrator.clients import image as client_image
from orchestrator.dockerlib import images, labels
from orchestrator.errors import DeployError, InputError
from orchestrator.hostnet.files import write_token_file
from orchestrator.model import Link, Node, Topology
from orchestrator.options import GroupInput, GroupOption, parse_word

T = TypeVar("T")
POOL_SIZE = 16  # concurrent SDK calls: dockerd serialises much of the work anyway
PING_TIMEOUT = 3.0
RATE_FIELDS = frozenset({"up_bps", "down_bps"})
DELAY_FIELDS = frozenset({"latency_ms", "jitter_ms", "loss"})


def client(timeout: float = 120.0) -> Any:
    """A docker SDK client from the environment (DOCKER_HOST ...), pooled for our threads."""
    import docker

    return docker.from_env(timeout=int(timeout), max_pool_size=POOL_SIZE + 4)


def ping_error(timeout: float = PING_TIMEOUT) -> Optional[str]:
    """Why the Docker engine cannot be reached (quickly), or None."""
    try:
        import docker
    except ImportError:
        return "the docker Python SDK is not installed (pip install docker)"
    try:
        c = docker.from_env(timeout=max(1, int(timeout)))
        try:
            c.ping()
        finally:
            c.close()
    except Exception as exc:  # the SDK raises several kinds: all mean "not reachable"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return text[:200]
    return None


def client_problem(kind: str) -> Optional[str]:
    """Why a `client: KIND` group cannot run on docker here, or None."""
    if os.geteuid() != 0:  # the agent's link emulation does not exist in a real client
        return (f"client {kind} on docker needs root: its links and partitions are applied "
                f"in the kernel from the host")
    return client_image.image_problem(kind)


def pyz_path() -> Path:
    """The agent zipapp (built and cached by ``orchestrator.pyz``)."""
    from orchestrator import pyz

    return Path(pyz.ensure_pyz())


class DockerBackend(Backend):
    name: ClassVar[str] = "docker"
    capabilities: ClassVar[Capability] = Capability.RESOURCES | Capability.REACHABLE
    group_options = (
        GroupOption("image", "the agent image for this group's containers (default: built "
                    "from this checkout)", parse_word("image", "an image name")),
        # real clients (docs/clients.md): images built offline from this host's packages
        client_option(check=client_problem),
    )

    @classmethod
    def plan_nodes(cls, group: GroupInput, options: dict[str, Any]) -> list[dict[str, Any]]:
        client = client_of(options)
        return [{} if client == MESHBED else {"client": client} for _ in range(group.count())]

    @classmethod
    def validate(cls, topology: Topology) -> None:
        """`image:` and `client:` do not go together (the client image is meshbed's own)."""
        for group in topology.groups:
            kind = client_of(group.options)
            if group.backend != cls.name or kind == MESHBED:
                continue
            if group.options.get("image"):
                raise InputError(f"group {group.name!r}: image and client cannot go together "
                                 f"(client nodes run meshbed's {kind} image)",
                                 topology.source, group.line)

    @classmethod
    def describe(cls) -> Description:
        return tc.describe_kernel_shaping()

    def __init__(self, ctx: MeshContext) -> None:
        super().__init__(ctx)
        self._client: Any = None
        self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="meshbed-docker")
        self._told_delay = False
        self._deploy_started: Optional[float] = None
        self._deployed = 0
        self._lock = asyncio.Lock()

    # --- plumbing ---------------------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        err = ping_error()
        if err is None:
            return None
        return f"cannot reach the Docker engine ({err}); start dockerd or use backend: local"

    @classmethod
    def conflict(cls, mesh: str) -> Optional[str]:
        try:
            cl = client()
            found = containers.find(cl, mesh) or networks.find(cl, mesh)
        except Exception:  # noqa: BLE001 - unreachable engine: unavailable_reason says so
            return None
        if not found:
            return None
        return (
            f"docker objects of a mesh named {mesh!r} already exist on this host (another "
            f"MESHBED_HOME, or a crash without state): `meshbed down {mesh}` there, "
            f"`meshbed doctor --clean-orphans {mesh}`, or pick another name"
        )

    @classmethod
    def find_orphans(cls, has_state: HasState) -> list[Orphan]:
        """Labelled containers, networks and volumes of meshes without state (the labels
        name the mesh, not its state folder)."""
        c = client(timeout=30)
        try:
            present = containers.meshes_present(c)
        finally:
            c.close()
        return [Orphan(cls.name, mesh, tuple(things)) for mesh, things in sorted(present.items())
                if not has_state(mesh, None)]

    @classmethod
    def remove_orphan(cls, orphan: Orphan) -> list[str]:
        """The mesh's teardown from an empty state: it finds everything by label and name."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            ctx = MeshContext(mesh=orphan.mesh, token="", state_dir=Path(tmp), state={},
                              save=lambda: None, say=lambda _: None)
            try:
                asyncio.run(cls(ctx).teardown())
            except DeployError as exc:
                return [str(exc)]
        return []

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client()
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _say(self, text: str) -> None:
        self.ctx.say(text)

    @property
    def _nodes(self) -> dict[str, dict[str, Any]]:
        nodes: dict[str, dict[str, Any]] = self.ctx.state.setdefault("nodes", {})
        return nodes

    def _entry(self, node: Node) -> dict[str, Any]:
        entry = self._nodes.get(node.name)
        if entry is None:
            raise DeployError(f"backend docker: node {node.name} was not prepared")
        return entry

    def _endpoint(self, node: Node) -> Endpoint:
        ip = self._entry(node)["ip"]
        return Endpoint(api=f"{ip}:{API_PORT}", wire=f"{ip}:{WIRE_PORT}")

    # --- lifecycle --------------------------------------------------------------------------
    async def prepare(self, nodes: Sequence[Node]) -> None:
        """Image, network and the plan (names, addresses) of every node, saved before any
        container exists."""
        mesh = self.ctx.mesh
        t0 = time.monotonic()
        await tc.probe_async()  # cached from here on: shaping reads it synchronously
        pyz = await asyncio.to_thread(pyz_path)
        notes: list[str] = []  # said from this thread: the UI need not be thread-safe
        image = await self._call(images.ensure_peer_image, self.client, pyz, None, None,
                                 notes.append)
        for note in notes:
            self._say(note)
        self.ctx.state["image"] = image
        kinds = sorted({client_of(n.options) for n in nodes} - {MESHBED})
        if kinds:
            built: list[str] = []
            self.ctx.state["client_images"] = await self._call(
                client_image.ensure_client_images, self.client, kinds, built.append)
            for note in built:
                self._say(note)
        await asyncio.to_thread(write_token_file, self._token_file(), self.ctx.token)
        self.ctx.state["network"] = {"name": labels.network_name(mesh),
                                     "bridge": labels.bridge_name(mesh)}
        self.ctx.save()
        # leftovers of a crashed run of the same mesh would hold names, addresses, data
        await self._remove_containers()
        await self._remove_volumes()
        net = await self._call(networks.create, self.client, mesh)
        self.ctx.state["network"] = net
        self.ctx.state["attach"] = (
            "veth" if networks.veth_attach_available(self.client) else "docker"
        )
        addrs = networks.node_addresses(net["subnet"], len(nodes))
        for node, ip in zip(nodes, addrs):
            self._nodes[node.name] = self._plan(node, ip)
            self._nodes[node.name]["swept"] = True  # prepare swept leftovers: no per-node sweep
        self.ctx.save()
        self._deploy_started = time.monotonic()
        self._deployed = 0
        self._say(f"docker: image {image}, network {net['name']} ({net['subnet']}) ready in "
                  f"{time.monotonic() - t0:.1f} s")

    def _token_file(self) -> Path:
        """The mesh token for the containers (0600, in the mesh's state folder)."""
        return self.ctx.state_dir / "docker" / "token"

    def _plan_extra(self, node: Node) -> None:
        """A node deploy() sees without prepare() having planned it: the next free address."""
        used = {e["ip"] for e in self._nodes.values()}
        count = len(used) + 1
        ip = next(a for a in networks.node_addresses(self.ctx.state["network"]["subnet"], count)
                  if a not in used)
        self._nodes[node.name] = self._plan(node, ip)
        self.ctx.save()

    def _plan(self, node: Node, ip: str) -> dict[str, Any]:
        mesh = self.ctx.mesh
        entry: dict[str, Any] = {
            "container": labels.container_name(mesh, node.name),
            "volume": containers.volume_name(mesh, node.name),
            "ip": ip,
            "group": node.group,
        }
        if self.ctx.state.get("attach") == "veth":
            entry["veth"] = networks.veth_name(mesh, node.name)
        return entry

    async def _attach(self, node: Node) -> None:
        """Veth mode: plug the (re)started container into the mesh bridge."""
        entry = self._entry(node)
        if not entry.get("veth"):
            return
        pid = await self._call(containers.pid, self.client, entry["container"])
        if pid is None:
            logs = await self.logs(node)
            raise DeployError(f"backend docker: {entry['container']} exited at once:\n{logs}")
        net = self.ctx.state["network"]
        await networks.attach_veth(pid, entry["veth"], net["bridge"], entry["ip"],
                                   int(net["subnet"].split("/")[1]))

    def _spec(self, node: Node) -> containers.ContainerSpec:
        entry = self._entry(node)
        topo = self.ctx.topology
        image = str(self.ctx.state["image"])
        if topo is not None:
            try:
                image = topo.group(node.group).options.get("image") or image
            except KeyError:
                pass
        kind = client_of(node.options)
        if kind != MESHBED:  # the translator + the client (entry point names the client)
            image = self._client_image(kind)
        args = agent_args(
            node, mesh=self.ctx.mesh, data_dir=containers.DATA_DIR,
            api=f"0.0.0.0:{API_PORT}", wire=f"0.0.0.0:{WIRE_PORT}",
            backend=self.name, token_file=containers.TOKEN_PATH,
        )
        res = node.resources
        return containers.ContainerSpec(
            name=entry["container"], image=image, args=args,
            network="none" if entry.get("veth") else self.ctx.state["network"]["name"],
            ip=entry["ip"], volume=entry["volume"],
            labels=labels.node_labels(self.ctx.mesh, node.name, node.group),
            nano_cpus=int(res.cpus * 1e9) if res.cpus else None,
            mem_limit=res.memory_bytes or None,
            token_file=str(self._token_file()),
        )

    def _client_image(self, kind: str) -> str:
        tags: dict[str, str] = self.ctx.state.get("client_images") or {}
        return tags[kind]

    async def _ensure_client_image(self, kind: str) -> None:
        """A client node deploy() sees without prepare() having built its image."""
        tags: dict[str, str] = self.ctx.state.setdefault("client_images", {})
        if kind == MESHBED or kind in tags:
            return
        built: list[str] = []
        tags.update(await self._call(client_image.ensure_client_images, self.client, [kind],
                                     built.append))
        for note in built:
            self._say(note)

    async def deploy(self, node: Node) -> Endpoint:
        if "subnet" not in self.ctx.state.get("network", {}):
            await self.prepare([node])
        elif node.name not in self._nodes:
            self._plan_extra(node)
        clean = not self._nodes[node.name].pop("swept", False)
        await self._ensure_client_image(client_of(node.options))
        spec = self._spec(node)
        try:
            await self._call(containers.create_and_start, self.client, spec, clean)
            await self._attach(node)
        except DeployError:
            raise
        except Exception as exc:
            raise DeployError(f"backend docker: starting {spec.name} failed: {exc}") from exc
        async with self._lock:
            self._deployed += 1
            if self._deployed == len(self._nodes) and self._deploy_started is not None:
                self._say(f"docker: {self._deployed} containers started in "
                          f"{time.monotonic() - self._deploy_started:.1f} s")
        return self._endpoint(node)

    async def kill(self, node: Node) -> None:
        await self._call(containers.kill, self.client, self._entry(node)["container"])

    async def stop(self, node: Node) -> None:
        await self._call(containers.stop, self.client, self._entry(node)["container"])

    async def start(self, node: Node) -> Endpoint:
        name = self._entry(node)["container"]
        await self._call(containers.start, self.client, name)
        await self._attach(node)
        # the new veth pair has no qdisc yet: put the node's last link back
        last = self.ctx.state.get("links", {}).get(node.name)
        if last:
            await self.set_link(node, Link(**last))
        return self._endpoint(node)

    async def teardown(self) -> None:
        """Containers, volumes, partition rules, network: found by label and by state.
        Whatever could not be removed stays in state (the next `down` tries again)."""
        t0 = time.monotonic()
        mesh = self.ctx.mesh
        n, bad_containers = await self._remove_containers()
        vols, bad_volumes = await self._remove_volumes()
        failed = [f"container {c}: {e}" for c, e in bad_containers.items()]
        failed += [f"volume {v}: {e}" for v, e in bad_volumes.items()]
        bridge = self.ctx.state.get("network", {}).get("bridge") or labels.bridge_name(mesh)
        chains_left = await shaping.remove_partition(mesh, bridge)
        if chains_left:
            failed.append(f"iptables chains {', '.join(chains_left)}")
        else:
            self.ctx.state.pop("partition", None)
        await asyncio.to_thread(networks.delete_veths, mesh)
        nets = {net["Id"] for net in await self._call(networks.find, self.client, mesh)}
        if self.ctx.state.get("network", {}).get("name"):
            nets.add(self.ctx.state["network"]["name"])
        results = await asyncio.gather(
            *(self._call(networks.remove, self.client, i) for i in sorted(nets)),
            return_exceptions=True,
        )
        failed += [f"network {i}: {r}" for i, r in zip(sorted(nets), results)
                   if isinstance(r, Exception)]
        keep = {name: e for name, e in self._nodes.items()
                if e.get("container") in bad_containers or e.get("volume") in bad_volumes}
        self.ctx.state["nodes"] = keep
        if not any(f.startswith("network ") for f in failed):
            self.ctx.state.pop("network", None)
        if not keep:
            self.ctx.state.pop("nodes", None)
            self.ctx.state.pop("links", None)
        self.ctx.save()
        self._pool.shutdown(wait=False)
        if failed:
            raise DeployError("docker: could not remove " + "; ".join(failed)
                              + " (kept in state: run `meshbed down` again)")
        self._say(f"docker: removed {n} containers, {vols} volumes in "
                  f"{time.monotonic() - t0:.1f} s")

    async def _remove_containers(self) -> tuple[int, dict[str, str]]:
        """(containers removed, {name or id: error} of those that could not be)."""
        found = await self._call(containers.find, self.client, self.ctx.mesh)
        name_of = {c["Id"]: c["Names"][0].lstrip("/") for c in found if c.get("Names")}
        ids = {c["Id"] for c in found}
        ids |= {e["container"] for e in self._nodes.values() if e.get("container")} - set(
            name_of.values())
        order = sorted(ids)
        results = await asyncio.gather(
            *(self._call(containers.remove, self.client, i) for i in order), return_exceptions=True
        )
        bad = {name_of.get(i, i): str(r) for i, r in zip(order, results) if isinstance(r, Exception)}
        return sum(1 for r in results if r is True), bad

    async def _remove_volumes(self) -> tuple[int, dict[str, str]]:
        names = {e.get("volume") for e in self._nodes.values()} - {None}
        found = await self._call(containers.find_volumes, self.client, self.ctx.mesh)
        vols = sorted(set(found) | {str(v) for v in names})
        results = await asyncio.gather(
            *(self._call(containers.remove_volume, self.client, v) for v in vols),
            return_exceptions=True,
        )
        bad = {v: str(r) for v, r in zip(vols, results) if isinstance(r, Exception)}
        return sum(1 for r in results if r is True), bad

    # --- links ------------------------------------------------------------------------------
    async def set_link(self, node: Node, link: Link) -> frozenset[str]:
        links = self.ctx.state.setdefault("links", {})
        before = links.get(node.name)
        # kept for start() (a new veth needs it again); saved with the next state save, as
        # one fsync per node per link change would cost more than the shaping itself
        links[node.name] = {
            "up_bps": link.up_bps, "down_bps": link.down_bps, "latency_ms": link.latency_ms,
            "jitter_ms": link.jitter_ms, "loss": link.loss,
        }
        if not shaping.kernel_rate_available():
            self._tell_once("docker: no root or no tbf here: links are emulated by the agents")
            return frozenset()
        pid = await self._call(containers.pid, self.client, self._entry(node)["container"])
        if pid is None:  # not running: start() applies the recorded link
            return RATE_FIELDS
        uncapped = link.up_bps is None and link.down_bps is None
        never_capped = before is None or (before["up_bps"] is None and before["down_bps"] is None)
        if not (uncapped and never_capped):  # a fresh veth has no qdisc to remove
            await shaping.shape(pid, link.up_bps, link.down_bps, self._entry(node).get("veth"))
        applied = set(RATE_FIELDS)
        if shaping.kernel_delay_available():
            await shaping.delay(pid, link.latency_ms, link.jitter_ms, link.loss)
            applied |= DELAY_FIELDS
        elif link.latency_ms or link.jitter_ms or link.loss:
            self._tell_once("docker: this kernel has no netem: latency/jitter/loss are "
                            "emulated by the agents")
        return frozenset(applied)

    def _tell_once(self, text: str) -> None:
        if not self._told_delay:
            self._told_delay = True
            self._say(text)

    async def partition(self, sides: Sequence[Sequence[str]]) -> bool:
        if not await asyncio.to_thread(shaping.partition_available):
            return False
        ip_of = {n: e["ip"] for n, e in self._nodes.items()}
        if any(n not in ip_of for side in sides for n in side):
            return False  # a node of another backend: let the agents do it
        bridge = self.ctx.state["network"]["bridge"]
        await shaping.remove_partition(self.ctx.mesh, bridge)
        chains, text = shaping.partition_rules(self.ctx.mesh, bridge, sides, ip_of)
        self.ctx.state["partition"] = {"chains": chains}
        self.ctx.save()
        await shaping.apply_partition(text)
        return True

    async def heal(self) -> None:
        if "partition" not in self.ctx.state:
            return
        bridge = self.ctx.state["network"]["bridge"]
        await shaping.remove_partition(self.ctx.mesh, bridge)
        self.ctx.state.pop("partition", None)
        self.ctx.save()

    # --- files ------------------------------------------------------------------------------
    async def put_file(self, node: Node, src: Path, name: str) -> str:
        return await self._call(containers.put_file, self.client,
                                self._entry(node)["container"], src, name)

    async def logs(self, node: Node) -> str:
        entry = self._nodes.get(node.name)
        if entry is None:
            return ""
        return await self._call(containers.logs, self.client, entry["container"])
