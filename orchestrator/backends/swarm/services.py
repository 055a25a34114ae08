"""One swarm service per node (replicas 0 or 1): per-node services let `kill`/`start` act on one
peer and keep its named volume, so a restarted peer resumes. Blocking SDK calls only."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Optional

from orchestrator.backends.base import API_PORT, WIRE_PORT
from orchestrator.backends.swarm import cluster

DATA_DIR = "/data"
TOKEN_FILE = "/run/secrets/meshbed-token"


def free_ports(count: int, start: int = 21000, taken: frozenset[int] = frozenset()) -> list[int]:
    """Host ports for the host-mode published control APIs (probed on this host)."""
    out: list[int] = []
    port = start
    while len(out) < count and port < 60000:
        if port not in taken:
            with socket.socket() as s:
                try:
                    s.bind(("0.0.0.0", port))
                    out.append(port)
                except OSError:
                    pass
        port += 1
    return out


def create(
    cl: Any,
    *,
    mesh: str,
    node: str,
    group: str,
    image: str,
    args: list[str],
    api_port: int,
    volume: str,
    secret_id: str,
    constraints: list[str],
    nano_cpus: Optional[int],
    mem_bytes: Optional[int],
) -> str:
    from docker.types import (
        EndpointSpec,
        Mount,
        Resources,
        RestartPolicy,
        SecretReference,
        ServiceMode,
    )

    name = cluster.service_name(mesh, node)
    labels = {**cluster.mesh_labels(mesh), cluster.NODE: node, cluster.GROUP: group}
    for old in cl.services.list(filters={"name": name}):
        if old.name == name:
            old.remove()  # a leftover of a crashed run holds the name
    svc = cl.services.create(
        image,
        args=args,
        name=name,
        hostname=name,
        labels=labels,
        container_labels=labels,
        networks=[cluster.network_name(mesh)],
        # dnsrr: no virtual IP, so no IPVS needed; peers dial the service name
        endpoint_spec=EndpointSpec(mode="dnsrr", ports={api_port: (API_PORT, "tcp", "host")}),
        mounts=[Mount(target=DATA_DIR, source=volume, type="volume", labels=labels)],
        secrets=[SecretReference(secret_id, cluster.secret_name(mesh), filename="meshbed-token")],
        restart_policy=RestartPolicy(condition="none"),
        mode=ServiceMode("replicated", replicas=1),
        constraints=constraints or None,
        resources=Resources(cpu_limit=nano_cpus, mem_limit=mem_bytes) if (nano_cpus or mem_bytes) else None,
        stop_grace_period=10_000_000_000,
        log_driver="json-file",
        log_driver_options={"max-size": "2m", "max-file": "1"},
    )
    return str(svc.id)


def volume_name(mesh: str, node: str, run: str) -> str:
    """The node's data volume: named per deploy (``run``), so a first deploy always starts
    empty even when an engine still holds a volume of an earlier mesh of the same name."""
    return f"{cluster.service_name(mesh, node)}-{run}-data"


def get(cl: Any, mesh: str, node: str) -> Any:
    import docker.errors

    try:
        return cl.services.get(cluster.service_name(mesh, node))
    except docker.errors.NotFound:
        return None


# How long a task may sit "starting" before it is replaced, and how often. dockerd sometimes
# fails to set up a restarted container's secrets mount ("unable to remount dir as readonly
# ... device or resource busy") and leaves its task "starting" or failed with that error; a
# new task of the same service starts cleanly.
STUCK_AFTER = 40.0
RETRIES = 2
_ENGINE_START_ERRORS = ("starting container failed", "resource busy", "unable to remount")


def running_task(
    svc: Any,
    timeout: float = 120.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Wait for the service's task to run; its task dict (raises RuntimeError with the reason).

    A task the engine failed to start (see STUCK_AFTER) is replaced by a forced update of the
    service, up to RETRIES times; each replacement gets the whole ``timeout`` again."""
    retries = 0
    replaced: set[str] = set()  # tasks already replaced: still listed as running for a moment
    deadline = clock() + timeout
    waiting_since = clock()
    last = "no task yet"
    while clock() < deadline:
        replace: Optional[tuple[str, str]] = None  # (task id, why)
        for t in svc.tasks(filters={"desired-state": "running"}):
            if t.get("ID") in replaced:
                continue
            state = t["Status"]["State"]
            err = str(t["Status"].get("Err") or "")
            if state == "running":
                return dict(t)
            if err and any(e in err for e in _ENGINE_START_ERRORS) and retries < RETRIES:
                replace = (str(t.get("ID")), err)
            elif state in ("failed", "rejected"):
                raise RuntimeError(err or state)
            elif state == "starting" and clock() - waiting_since > STUCK_AFTER and retries < RETRIES:
                # not "preparing": that is where a real cluster pulls the image
                replace = (str(t.get("ID")), f"starting for {clock() - waiting_since:.0f} s")
            last = state + (f" ({err})" if err else "")
        if replace is not None:
            retries += 1
            replaced.add(replace[0])
            try:
                svc.reload()
                svc.force_update()  # Swarm shuts the task down and schedules a new one
            except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds
                raise RuntimeError(f"{replace[1]}; replacing the task failed: {exc}") from exc
            deadline = clock() + timeout
            waiting_since = clock()
            last = f"replaced a task ({replace[1]})"
            continue
        sleep(0.3)
    seen = [f"{t['Status']['State']}/{t.get('DesiredState')} on {str(t.get('NodeID') or '-')[:12]}"
            f"{': ' + t['Status']['Err'] if t['Status'].get('Err') else ''}" for t in svc.tasks()]
    raise RuntimeError(f"task not running after {timeout:.0f} s (last state: {last}; "
                       f"replaced {retries} time(s); tasks: {seen or 'none'})")


def node_address(cl: Any, node_id: str) -> tuple[str, str]:
    """(address, hostname) of a swarm node: where its published ports are reached."""
    attrs = cl.api.inspect_node(node_id)
    addr = str(attrs.get("Status", {}).get("Addr") or "127.0.0.1")
    host = str(attrs.get("Description", {}).get("Hostname") or node_id[:12])
    return ("127.0.0.1" if addr in ("0.0.0.0", "") else addr), host


def scale(svc: Any, replicas: int) -> None:
    svc.reload()
    svc.scale(replicas)


def local_container(cl: Any, task: dict[str, Any]) -> Any:
    """The task's container when it runs on this engine, else None."""
    import docker.errors

    cid = (task.get("Status") or {}).get("ContainerStatus", {}).get("ContainerID")
    if not cid:
        return None
    try:
        return cl.containers.get(cid)
    except docker.errors.NotFound:
        return None


def current_task(svc: Any) -> Optional[dict[str, Any]]:
    for t in svc.tasks(filters={"desired-state": "running"}):
        return dict(t)
    return None


def wire_endpoint(mesh: str, node: str) -> str:
    """Peers on the overlay reach a node by its service name (swarm DNS)."""
    return f"{cluster.service_name(mesh, node)}:{WIRE_PORT}"
