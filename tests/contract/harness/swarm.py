"""Contract harness of the `swarm` backend: a single-node swarm on the local Docker engine
(`docker swarm init --advertise-addr 127.0.0.1`), left again at the end if this run made it."""

from __future__ import annotations

from typing import Any, Optional

_made_swarm = False


def skip_reason() -> Optional[str]:
    try:
        from orchestrator.backends.swarm import cluster

        cl = cluster.client(timeout=3)
        cl.ping()
    except Exception as exc:  # noqa: BLE001
        return f"no Docker engine reachable ({str(exc)[:80]})"
    return None


def setup() -> None:
    global _made_swarm
    from orchestrator.backends.swarm import cluster
    from orchestrator.dockerlib import images
    from orchestrator.pyz import ensure_pyz

    _made_swarm = cluster.init("127.0.0.1")
    images.ensure_peer_image(cluster.client(), ensure_pyz(), None, True, lambda _m: None)


def teardown() -> None:
    from orchestrator.backends.swarm import cluster

    if _made_swarm:
        cluster.leave()


def topology_fields(n_nodes: int) -> dict[str, Any]:
    return {"backend": "swarm"}


def leftovers(mesh_name: str) -> list[str]:
    from orchestrator import state
    from orchestrator.backends.swarm import cluster

    cl = cluster.client()
    flt = cluster.mesh_filter(mesh_name)
    out = [f"service {s.name}" for s in cl.services.list(filters=flt)]
    out += [f"container {c.name}" for c in cl.containers.list(all=True, filters=flt)]
    out += [f"volume {v.name}" for v in cl.volumes.list(filters=flt)]
    out += [f"network {n.name}" for n in cl.networks.list(filters=flt)]
    out += [f"secret {s.name}" for s in cl.secrets.list(filters=flt)]
    mesh_dir = state.home() / mesh_name
    if mesh_dir.exists():
        out.append(f"directory {mesh_dir}")
    return out
