"""`backend: swarm`: the same topology spread over a Docker Swarm cluster.

One attachable overlay network per mesh; one service per node (replicas 1, restart policy none,
a named volume per deploy for its data dir) so kill/start act on one peer and a restarted peer resumes;
`endpoint_mode: dnsrr` (no IPVS needed); peers find each other by service name on the overlay.
The orchestrator reaches each control API on a host-mode published port of the host running the
task (no ingress mesh: that needs IPVS). Links are emulated by the agents; partitions use the
agents' blocklists. The mesh token reaches the agents as a swarm secret, never in the spec.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Optional

from orchestrator.backends.base import (
    Backend,
    Capability,
    Endpoint,
    HasState,
    MeshContext,
    Orphan,
    agent_args,
)
from orchestrator.backends.swarm import cluster, placement, services
from orchestrator.backends.swarm import teardown as swarm_teardown
from orchestrator.errors import DeployError
from orchestrator.model import Node, Topology
from orchestrator.options import GroupOption, parse_word, parse_word_list


def check_placement(topology: Topology, cl: Any = None) -> dict[str, str]:
    """Node name -> swarm node id for the topology's swarm nodes; InputError (FILE:LINE)
    for a placement constraint no ready node meets. Empty when the swarm is unreachable
    (`validate` then only warns; `up` refuses on availability first)."""
    try:
        cl = cl or cluster.client(timeout=5)
        nodes = [placement.SwarmNode.from_api(n) for n in cl.api.nodes()]
    except Exception:  # noqa: BLE001 - no swarm here: nothing to check against
        return {}
    return placement.check_topology(topology, nodes)


class SwarmBackend(Backend):
    name: ClassVar[str] = "swarm"
    capabilities: ClassVar[Capability] = Capability.REACHABLE | Capability.RESOURCES
    group_options = (
        GroupOption("image", "the agent image for this group's services (default: built "
                    "from this checkout and pushed to the swarm)", parse_word("image", "an image name")),
        GroupOption("placement", "swarm placement constraints, e.g. [node.role==worker]",
                    parse_word_list("placement"), default=()),
    )

    def __init__(self, ctx: MeshContext) -> None:
        super().__init__(ctx)
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._said_emulation = False

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        return cluster.unavailable_reason()

    @classmethod
    def conflict(cls, mesh: str) -> Optional[str]:
        try:
            found = cluster.client(timeout=5).services.list(filters=cluster.mesh_filter(mesh))
        except Exception:  # noqa: BLE001 - unreachable engine: unavailable_reason says so
            return None
        if not found:
            return None
        return (
            f"swarm services of a mesh named {mesh!r} already exist (another MESHBED_HOME?): "
            f"`meshbed down {mesh}` there, or pick another name"
        )

    @classmethod
    def find_orphans(cls, has_state: HasState) -> list[Orphan]:
        """Labelled services, overlays and secrets of meshes without state, and overlay
        subnets the host-wide ledger still holds for such meshes."""
        from orchestrator.hostnet import subnets

        present = cluster.meshes_present(cluster.client(timeout=30))
        for r in subnets.reservations():
            if r.kind == "swarm":
                present.setdefault(r.mesh, []).append(f"reserved subnet {r.subnet}")
        return [Orphan(cls.name, mesh, tuple(things)) for mesh, things in sorted(present.items())
                if not has_state(mesh, None)]

    @classmethod
    def remove_orphan(cls, orphan: Orphan) -> list[str]:
        """Services, task volumes on every engine, secrets and the overlay (teardown finds
        them all by label); then the mesh's ledger entries."""
        cl = cluster.client()
        try:
            left = swarm_teardown.run(cl, orphan.mesh, {})
        finally:
            cl.close()
        if not any(w.startswith("network ") for w in left):
            cluster.release_subnets_of(orphan.mesh)
        return left

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = cluster.client()
        return self._client

    def _nodes_state(self) -> dict[str, Any]:
        nodes: dict[str, Any] = self.ctx.state.setdefault("nodes", {})
        return nodes

    # --- lifecycle ----------------------------------------------------------------------
    async def prepare(self, nodes: Sequence[Node]) -> None:
        from orchestrator.dockerlib import images
        from orchestrator.pyz import ensure_pyz

        st = self.ctx.state
        topo = self.ctx.topology
        # before anything is created: a constraint no node meets is bad input (exit 2)
        plan = await asyncio.to_thread(check_placement, topo, self.client) if topo else {}
        st["mesh"] = self.ctx.mesh
        st.setdefault("run", uuid.uuid4().hex[:8])  # names this deploy's volumes
        st["network"] = cluster.network_name(self.ctx.mesh)
        st["secret"] = cluster.secret_name(self.ctx.mesh)
        self.ctx.save()
        topo = self.ctx.topology
        wanted = {g.options["image"] for g in topo.groups if g.options.get("image")} if topo else set()
        if wanted:
            st["image"] = sorted(wanted)[0]  # groups naming a registry image use it as is
        else:
            pyz = await asyncio.to_thread(ensure_pyz)
            st["image"] = await asyncio.to_thread(images.ensure_peer_image, self.client, pyz, None, None, self.ctx.say)
        # recorded before the network exists: `down` releases the subnet even after a crash
        st["subnet_owner"] = cluster.subnet_owner(self.ctx.mesh, str(st["run"]))
        self.ctx.save()
        st["network_id"], st["subnet"] = await asyncio.to_thread(
            cluster.ensure_network, self.client, self.ctx.mesh, st["subnet_owner"])
        self.ctx.save()
        st["secret_id"] = await asyncio.to_thread(cluster.ensure_secret, self.client, self.ctx.mesh, self.ctx.token)
        taken = frozenset(int(v["api_port"]) for v in self._nodes_state().values() if "api_port" in v)
        ports = await asyncio.to_thread(services.free_ports, len(nodes), 21000, taken)
        for node, port in zip(nodes, ports):
            rec: dict[str, Any] = {"api_port": port, "service": cluster.service_name(self.ctx.mesh, node.name)}
            if node.name in plan:
                rec["node_id"] = plan[node.name]  # dealt over the eligible engines; `start` keeps it
            self._nodes_state()[node.name] = rec
        self.ctx.save()
        self.ctx.say(
            f"swarm: {len(nodes)} services on overlay {st['network']} ({st['subnet']}); links and partitions "
            "are emulated by the agents (no tc inside swarm tasks)"
        )

    def _image_for(self, node: Node) -> str:
        topo = self.ctx.topology
        if topo is not None:
            img = topo.group(node.group).options.get("image")
            if img:
                return img
        return str(self.ctx.state["image"])

    async def deploy(self, node: Node) -> Endpoint:
        rec = self._nodes_state().get(node.name)
        if rec is None:  # deploy without prepare for this node (a late node)
            async with self._lock:
                ports = await asyncio.to_thread(
                    services.free_ports, 1, 21000,
                    frozenset(int(v["api_port"]) for v in self._nodes_state().values()),
                )
                rec = {"api_port": ports[0], "service": cluster.service_name(self.ctx.mesh, node.name)}
                self._nodes_state()[node.name] = rec
                self.ctx.save()
        args = agent_args(
            node,
            mesh=self.ctx.mesh,
            data_dir=services.DATA_DIR,
            api="0.0.0.0:7000",
            wire="0.0.0.0:6881",
            token_file=services.TOKEN_FILE,
            link=node.link,
            backend="swarm",
        )
        topo = self.ctx.topology
        if rec.get("node_id"):
            constraints = [f"node.id=={rec['node_id']}"]
        else:
            constraints = list(topo.group(node.group).options.get("placement", ())) if topo else []
        res = node.resources
        try:
            await asyncio.to_thread(
                services.create,
                self.client,
                mesh=self.ctx.mesh,
                node=node.name,
                group=node.group,
                image=self._image_for(node),
                args=args,
                api_port=int(rec["api_port"]),
                volume=services.volume_name(self.ctx.mesh, node.name, str(self.ctx.state.setdefault("run", "0"))),
                secret_id=str(self.ctx.state["secret_id"]),
                constraints=constraints,
                nano_cpus=int(res.cpus * 1e9) if res.cpus else None,
                mem_bytes=res.memory_bytes,
            )
        except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds
            raise DeployError(f"swarm: creating the service of {node.name} failed: {exc}") from exc
        return await self._endpoint(node, pin=True)

    async def _endpoint(self, node: Node, pin: bool = False) -> Endpoint:
        rec = self._nodes_state()[node.name]
        svc = await asyncio.to_thread(services.get, self.client, self.ctx.mesh, node.name)
        if svc is None:
            raise DeployError(f"swarm: the service of {node.name} is gone")
        try:
            task = await asyncio.to_thread(services.running_task, svc)
        except RuntimeError as exc:
            raise DeployError(f"swarm: {node.name} did not start: {exc}") from exc
        host, hostname = await asyncio.to_thread(services.node_address, self.client, task["NodeID"])
        if pin and "node_id" not in rec:
            # remember the host holding its volume: `start` pins the task there to resume
            # (changing placement now would restart the running task)
            rec["node_id"] = task["NodeID"]
        rec["host"] = host
        self.ctx.save()
        return Endpoint(api=f"{host}:{rec['api_port']}", wire=services.wire_endpoint(self.ctx.mesh, node.name),
                        site=hostname)

    async def kill(self, node: Node) -> None:
        svc = await asyncio.to_thread(services.get, self.client, self.ctx.mesh, node.name)
        if svc is None:
            return
        task = await asyncio.to_thread(services.current_task, svc)
        if task is not None:
            await asyncio.to_thread(self._sigkill, task)
        await asyncio.to_thread(services.scale, svc, 0)

    def _sigkill(self, task: dict[str, Any]) -> None:
        """SIGKILL the task's container on whichever engine runs it (the manager's own, or a
        worker's through its `meshbed.engine` label); without one, scaling to 0 stops it
        (SIGTERM first)."""
        import docker.errors

        cid = (task.get("Status") or {}).get("ContainerStatus", {}).get("ContainerID")
        if not cid:
            return
        try:
            ref = swarm_teardown.engine_of(self.client, str(task.get("NodeID")))
        except docker.errors.APIError:
            return  # the node left the swarm: nothing to kill there
        if ref.client is None:
            return
        try:
            ref.client.api.kill(cid, "SIGKILL")
        except docker.errors.APIError:
            pass  # already gone
        finally:
            if ref.client is not self.client:
                ref.client.close()

    async def stop(self, node: Node) -> None:
        svc = await asyncio.to_thread(services.get, self.client, self.ctx.mesh, node.name)
        if svc is not None:
            await asyncio.to_thread(services.scale, svc, 0)  # swarm sends SIGTERM, then SIGKILL

    async def start(self, node: Node) -> Endpoint:
        svc = await asyncio.to_thread(services.get, self.client, self.ctx.mesh, node.name)
        if svc is None:
            raise DeployError(f"swarm: the service of {node.name} is gone")
        node_id = self._nodes_state()[node.name].get("node_id")
        if node_id:
            await asyncio.to_thread(self._scale_pinned, svc, str(node_id))
        else:
            await asyncio.to_thread(services.scale, svc, 1)
        return await self._endpoint(node)

    def _scale_pinned(self, svc: Any, node_id: str) -> None:
        from docker.types import ServiceMode

        svc.reload()
        spec = svc.attrs["Spec"]
        constraints = list((spec.get("TaskTemplate", {}).get("Placement") or {}).get("Constraints") or [])
        pin = f"node.id=={node_id}"
        if pin not in constraints:
            constraints.append(pin)
        svc.update(mode=ServiceMode("replicated", replicas=1), constraints=constraints)

    async def teardown(self) -> None:
        await asyncio.to_thread(self._teardown_sync)

    def _teardown_sync(self) -> None:
        st = self.ctx.state
        try:
            cl = self.client
            cl.ping()
        except Exception as exc:  # noqa: BLE001
            if st.get("nodes"):
                raise DeployError(f"swarm: cannot reach the Docker engine to tear down: {exc}") from exc
            return
        expected: dict[str, list[str]] = {}
        run = str(st.get("run", "0"))
        for node, rec in self._nodes_state().items():
            if rec.get("node_id"):
                expected.setdefault(str(rec["node_id"]), []).append(services.volume_name(self.ctx.mesh, node, run))
        left = swarm_teardown.run(cl, self.ctx.mesh, expected)
        if st.get("subnet_owner") and not any(w.startswith("network ") for w in left):
            cluster.release_subnet(str(st["subnet_owner"]))  # the overlay is gone everywhere
            del st["subnet_owner"]
            self.ctx.save()
        if left:
            st["left"] = left  # `down` again (once the engine is back) retries from here
            self.ctx.save()
            raise DeployError("could not remove " + "; ".join(left))
        st.clear()
        self.ctx.save()

    # --- node loss ----------------------------------------------------------------------
    async def why_lost(self, node: Node) -> Optional[str]:
        """Why ``node`` stopped answering when its host or task is gone; None when swarm
        still sees it running (merely slow: keep waiting)."""
        return await asyncio.to_thread(self._why_lost, node)

    def _why_lost(self, node: Node) -> Optional[str]:
        rec = self._nodes_state().get(node.name) or {}
        try:
            cl = self.client
            svc = services.get(cl, self.ctx.mesh, node.name)
            nid = rec.get("node_id")
            if nid:
                info = cl.api.inspect_node(str(nid))
                host = info.get("Description", {}).get("Hostname") or str(nid)[:12]
                status = info.get("Status") or {}
                if status.get("State") != "ready":
                    msg = status.get("Message")
                    return f"swarm node {host} is {status.get('State')}" + (f" ({msg})" if msg else "")
                url = (info.get("Spec", {}).get("Labels") or {}).get(swarm_teardown.ENGINE_LABEL)
                if url:
                    try:
                        swarm_teardown.engine_client(url, timeout=3).ping()
                    except Exception:  # noqa: BLE001 - any failure: that engine is gone
                        return f"the engine of swarm node {host} ({url}) does not answer"
            if svc is None:
                return "its swarm service is gone"
            task = services.current_task(svc)
            if task is None:
                return "its swarm task is no longer running"
            st = task.get("Status") or {}
            if st.get("State") not in ("running", "starting", "preparing", "assigned", "pending", "new"):
                return f"its swarm task is {st.get('State')}" + (f": {st['Err']}" if st.get("Err") else "")
        except Exception as exc:  # noqa: BLE001 - the manager itself does not answer: cannot tell
            self.ctx.say(f"swarm: cannot ask the manager about {node.name}: {str(exc)[:80]}")
        return None

    # --- files and logs -------------------------------------------------------------------
    async def put_file(self, node: Node, src: Path, name: str) -> str:
        from orchestrator.dockerlib import files as containers

        svc = await asyncio.to_thread(services.get, self.client, self.ctx.mesh, node.name)
        task = await asyncio.to_thread(services.current_task, svc) if svc else None
        container = await asyncio.to_thread(services.local_container, self.client, task) if task else None
        if container is None:
            raise DeployError(
                f"swarm: {node.name} runs on another host; put real files on a shared path or use synthetic content"
            )
        return await asyncio.to_thread(containers.put_file, self.client, container.id, src, name)

    async def logs(self, node: Node) -> str:
        svc = await asyncio.to_thread(services.get, self.client, self.ctx.mesh, node.name)
        if svc is None:
            return ""
        try:
            out = await asyncio.to_thread(lambda: b"".join(svc.logs(stdout=True, stderr=True, tail=100)))
        except Exception:  # noqa: BLE001
            return ""
        return out.decode(errors="replace")
