"""Removing a mesh from every engine of the swarm. Blocking SDK calls only.

A manager removes services, secrets and overlay networks cluster-wide, but a task's named
volume lives on the engine that ran it: the worker engines are reached through their node
label ``meshbed.engine`` (the address of that node's Docker API: ``unix://...``, ``tcp://...``,
``ssh://...``). Everything is listed with single API calls (never "list, then fetch each"),
because swarm removes task containers while we work. Whatever cannot be removed is returned,
so the backend keeps it in its state and `down` says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from orchestrator.backends.swarm import cluster

ENGINE_LABEL = "meshbed.engine"
DRAIN_TIMEOUT = 30.0


@dataclass
class EngineRef:
    node_id: str
    hostname: str
    client: Optional[Any]  # None: this engine cannot be reached from here
    why: str = ""  # when client is None


@dataclass
class Outcome:
    left: list[str] = field(default_factory=list)  # "volume NAME on HOST (why)" ...

    def add(self, what: str) -> None:
        self.left.append(what)


def engine_client(url: str, timeout: int = 10) -> Any:
    """A client of one node's engine; ``ssh://`` goes through the ssh binary (no paramiko)."""
    import docker

    return docker.DockerClient(base_url=url, timeout=timeout, use_ssh_client=url.startswith("ssh://"))


def engines(cl: Any) -> list[EngineRef]:
    """One reference per swarm node: the manager we talk to, the others by their label."""
    own = str((cl.info().get("Swarm") or {}).get("NodeID") or "")
    return [_ref(cl, node, own) for node in cl.api.nodes()]


def engine_of(cl: Any, node_id: str) -> EngineRef:
    """The engine of one swarm node."""
    own = str((cl.info().get("Swarm") or {}).get("NodeID") or "")
    return _ref(cl, cl.api.inspect_node(node_id), own)


def _ref(cl: Any, node: dict[str, Any], own: str) -> EngineRef:
    nid = str(node["ID"])
    host = str(node.get("Description", {}).get("Hostname") or nid[:12])
    if nid == own:
        return EngineRef(nid, host, cl)
    url = (node.get("Spec", {}).get("Labels") or {}).get(ENGINE_LABEL)
    if not url:
        return EngineRef(nid, host, None, f"node label {ENGINE_LABEL} not set")
    state = str(node.get("Status", {}).get("State") or "")
    try:
        other = engine_client(url)
        other.ping()
        return EngineRef(nid, host, other)
    except Exception as exc:  # noqa: BLE001 - a lost host: say why
        return EngineRef(nid, host, None, f"its engine {url} is unreachable, node {state}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = str(exc)
    for known in ("Connection refused", "No such file", "timed out", "Name or service not known"):
        if known.lower() in text.lower():
            return known.lower()
    return text[:80]


def mesh_containers(cl: Any, mesh: str) -> list[str]:
    """Ids of the mesh's containers on one engine: one call, no per-container fetch."""
    return [str(c["Id"]) for c in cl.api.containers(all=True, filters=cluster.mesh_filter(mesh))]


def remove_services(cl: Any, mesh: str, out: Outcome) -> None:
    import docker.errors

    for svc in cl.api.services(filters=cluster.mesh_filter(mesh)):
        try:
            cl.api.remove_service(svc["ID"])
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            out.add(f"service {svc['Spec']['Name']} ({str(exc)[:80]})")


def drain_and_remove_volumes(refs: list[EngineRef], mesh: str, expected: dict[str, list[str]],
                             out: Outcome) -> None:
    """Wait for the mesh's task containers to go on every reachable engine, then remove its
    volumes there. ``expected``: volume names by swarm node id, from state, so volumes on an
    unreachable engine are still named in what is left."""
    import docker.errors

    reachable = [r for r in refs if r.client is not None]
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        busy = []
        for r in reachable:
            c: Any = r.client
            try:
                ids = mesh_containers(c, mesh)
            except docker.errors.APIError:
                ids = []
            for cid in ids:  # swarm removes them lazily; a stopped task container holds its volume
                try:
                    c.api.remove_container(cid, force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError:
                    busy.append(cid)
            if ids:
                busy += ids
        if not busy:
            break
        time.sleep(0.3)
    for r in refs:
        if r.client is None:
            for name in expected.get(r.node_id, []):
                out.add(f"volume {name} on {r.hostname} ({r.why})")
            continue
        try:
            vols = r.client.api.volumes(filters=cluster.mesh_filter(mesh)).get("Volumes") or []
        except docker.errors.APIError as exc:
            out.add(f"volumes on {r.hostname} ({str(exc)[:80]})")
            continue
        for v in vols:
            try:
                r.client.api.remove_volume(v["Name"], force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                out.add(f"volume {v['Name']} on {r.hostname} ({str(exc)[:80]})")
    known = {r.node_id for r in refs}
    for nid, names in expected.items():  # a node removed from the swarm meanwhile
        if nid not in known:
            out.left += [f"volume {n} on node {nid[:12]} (no longer in the swarm)" for n in names]


def remove_secrets_and_networks(cl: Any, mesh: str, out: Outcome) -> None:
    import docker.errors

    flt = cluster.mesh_filter(mesh)
    for s in cl.api.secrets(filters=flt):
        try:
            cl.api.remove_secret(s["ID"])
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            out.add(f"secret {s['Spec']['Name']} ({str(exc)[:80]})")
    nets: list[dict[str, Any]] = []
    for _ in range(20):  # the overlay is busy until the last task detached
        nets = cl.api.networks(filters=flt)
        for n in nets:
            try:
                cl.api.remove_network(n["Id"])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                pass
        nets = cl.api.networks(filters=flt)
        if not nets:
            return
        time.sleep(0.5)
    out.left += [f"network {n['Name']} (still in use)" for n in nets]


def wait_networks_gone(refs: list[EngineRef], mesh: str, out: Outcome) -> None:
    """A worker drops its copy of the overlay only when the manager's removal reaches it:
    `down` returns once every reachable engine has."""
    import docker.errors

    deadline = time.monotonic() + DRAIN_TIMEOUT
    for r in refs:
        c: Any = r.client
        if c is None:
            continue
        while True:
            try:
                nets = c.api.networks(filters=cluster.mesh_filter(mesh))
            except docker.errors.APIError:
                nets = []
            if not nets:
                break
            if time.monotonic() > deadline:
                out.left += [f"network {n['Name']} on {r.hostname} (not released)" for n in nets]
                break
            time.sleep(0.2)


def run(cl: Any, mesh: str, expected: dict[str, list[str]]) -> list[str]:
    """Remove the mesh everywhere; what is left (empty: all gone)."""
    out = Outcome()
    refs = engines(cl)
    remove_services(cl, mesh, out)
    drain_and_remove_volumes(refs, mesh, expected, out)
    remove_secrets_and_networks(cl, mesh, out)
    if not out.left:
        wait_networks_gone(refs, mesh, out)
    for r in refs:
        if r.client is not None and r.client is not cl:
            r.client.close()
    return out.left
