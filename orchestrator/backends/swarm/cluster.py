"""The swarm itself: membership checks, `meshbed swarm init|leave`, the mesh's overlay network
and token secret. Blocking docker SDK calls only (the backend runs them in threads)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any, Optional

# the same labels and names as the docker backend: one scheme for every docker object
from orchestrator.dockerlib.labels import (  # noqa: F401 - re-exported
    GROUP,
    MANAGED,
    MESH,
    NODE,
    mesh_filter,
    mesh_labels,
    network_name,
)

SWARM_HOST_ENV = "MESHBED_SWARM_HOST"  # the manager, when it is not DOCKER_HOST's engine


def client(timeout: int = 10) -> Any:
    """The swarm manager: $MESHBED_SWARM_HOST if set (so a docker-backend mesh on the local
    engine and a swarm elsewhere can coexist), else the Docker environment (DOCKER_HOST ...)."""
    import docker

    url = os.environ.get(SWARM_HOST_ENV)
    if url:
        return docker.DockerClient(base_url=url, timeout=timeout, use_ssh_client=url.startswith("ssh://"))
    return docker.from_env(timeout=timeout)


def swarm_state(cl: Any) -> tuple[str, bool]:
    """(LocalNodeState, is manager) of the engine we talk to."""
    info = cl.info().get("Swarm") or {}
    return str(info.get("LocalNodeState", "inactive")), bool(info.get("ControlAvailable"))


def unavailable_reason() -> Optional[str]:
    try:
        cl = client(timeout=3)
        cl.ping()
    except Exception as exc:  # noqa: BLE001 - any failure: the engine is not reachable
        return f"backend swarm: cannot reach the Docker engine ({str(exc)[:100]}); start dockerd"
    state, manager = swarm_state(cl)
    if state != "active":
        return "backend swarm: this Docker engine is not in a swarm; run `meshbed swarm init` (single node) or join one"
    if not manager:
        return "backend swarm: this Docker engine is a swarm worker; run meshbed against a manager"
    return None


def init(advertise_addr: str = "127.0.0.1") -> bool:
    """Make this engine a single-node swarm manager; False when it already was in a swarm."""
    cl = client()
    state, _ = swarm_state(cl)
    if state == "active":
        return False
    cl.swarm.init(advertise_addr=advertise_addr, listen_addr=f"{advertise_addr}:2377")
    return True


def leave() -> bool:
    """Remove every meshbed service/network/secret, then leave the swarm (force)."""
    cl = client()
    state, _ = swarm_state(cl)
    if state != "active":
        return False
    flt = {"label": [f"{MANAGED}=1"]}
    for svc in cl.services.list(filters=flt):
        svc.remove()
    for net in cl.networks.list(filters=flt):
        try:
            net.remove()
        except Exception:  # noqa: BLE001 - still draining; leave takes it down anyway
            pass
    for sec in cl.secrets.list(filters=flt):
        try:
            sec.remove()
        except Exception:  # noqa: BLE001
            pass
    cl.swarm.leave(force=True)
    return True


def secret_name(mesh: str) -> str:
    # secrets are immutable: a new token gets a new name
    return f"meshbed-{mesh}-token"


def service_name(mesh: str, node: str) -> str:
    """Service names are DNS labels (<= 63 chars): long names get a digest suffix."""
    name = f"mb-{mesh}-{node}"
    if len(name) > 63:
        name = name[:50] + "-" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


OVERLAY_PREFIX = 22  # 1,022 addresses: a task takes one, each engine's endpoint one more
OVERLAY_TRIES = 8


def subnet_owner(mesh: str, run: str) -> str:
    """The ledger owner of one deploy's overlay subnet (``run``: the deploy's id)."""
    return f"swarm:{mesh}:{run}"


def ensure_network(cl: Any, mesh: str, owner: str) -> tuple[str, str]:
    """The mesh's attachable overlay (id, subnet). Its subnet comes from the host-wide swarm
    pool, entered in the ledger for ``owner`` and picked under the host lock until the
    network exists: no other mesh of any backend, nor any network the manager knows, shares
    it. A leftover of the same name (a crashed deploy) is reused with its subnet."""
    import docker.errors
    import docker.types

    from orchestrator.dockerlib.subnets import engine_subnets
    from orchestrator.hostnet import subnets

    name = network_name(mesh)
    with subnets.host_lock():
        for found in cl.api.networks(names=[name]):
            if found.get("Name") == name:
                cfg = (found.get("IPAM") or {}).get("Config") or [{}]
                subnet = str(cfg[0].get("Subnet", ""))
                with contextlib.suppress(ValueError):  # this deploy now owns its ledger entry
                    subnets.claim("swarm", mesh, owner, subnets.Net(subnet))
                return str(found["Id"]), subnet
        used = engine_subnets(cl) + subnets.host_networks()
        last: Exception = RuntimeError("no free subnet")
        for _ in range(OVERLAY_TRIES):
            net = subnets.reserve("swarm", mesh, owner, OVERLAY_PREFIX, used)
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(net))])
            try:
                made = cl.api.create_network(name, driver="overlay", attachable=True, ipam=ipam,
                                             labels=mesh_labels(mesh), check_duplicate=True)
            except docker.errors.APIError as exc:
                subnets.release(owner)
                if "overlap" not in str(exc).lower():
                    raise
                last = exc  # a network this host cannot see (another engine's): next one
                used.append(net)
                continue
            return str(made["Id"]), str(net)
    raise RuntimeError(f"no free overlay subnet for {name}: {last}")


def release_subnet(owner: str) -> None:
    """Give the overlay's subnet back to the pool (its network is gone)."""
    from orchestrator.hostnet import subnets

    with subnets.host_lock():
        subnets.release(owner)


def ensure_secret(cl: Any, mesh: str, token: str) -> str:
    name = secret_name(mesh)
    for s in cl.secrets.list(filters={"name": name}):
        if s.name == name:
            s.remove()  # a stale secret of an earlier mesh with the same name
    sec = cl.secrets.create(name=name, data=token.encode(), labels=mesh_labels(mesh))
    return str(sec.id)


def meshes_present(cl: Any) -> dict[str, list[str]]:
    """Mesh name -> its swarm objects (services, overlay networks, secrets), by label."""
    flt = {"label": [f"{MANAGED}=1"]}
    found: dict[str, list[str]] = {}
    objs = [((s.get("Spec") or {}).get("Labels") or {}, f"service {s['Spec']['Name']}")
            for s in cl.api.services(filters=flt)]
    objs += [(n.get("Labels") or {}, f"network {n.get('Name')}")
             for n in cl.api.networks(filters=flt) if n.get("Driver") == "overlay"]
    objs += [((s.get("Spec") or {}).get("Labels") or {}, f"secret {s['Spec']['Name']}")
             for s in cl.api.secrets(filters=flt)]
    for labels, what in objs:
        if labels.get(MESH):
            found.setdefault(labels[MESH], []).append(what)
    return found


def release_subnets_of(mesh: str) -> None:
    """Every overlay subnet the ledger holds for ``mesh`` (its state, with the owner's
    name, is lost: only the mesh name is known)."""
    from orchestrator.hostnet import subnets

    with subnets.host_lock():
        for r in subnets.reservations():
            if r.kind == "swarm" and r.mesh == mesh:
                subnets.release(r.owner)
