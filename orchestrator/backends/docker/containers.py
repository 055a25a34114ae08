"""Containers and their data volumes: one container per node, one named volume per node.

Blocking docker SDK calls only (the backend runs them in its thread pool). The low-level API
is used on purpose: create + put token + start is three requests per node, no reloads.
The data dir is a named volume (labelled with the mesh), so a killed container keeps its
verified chunks, `start` resumes, and it works with a remote daemon too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from orchestrator.dockerlib import labels
from orchestrator.dockerlib.files import DATA_DIR, put_file  # noqa: F401 - the docker backend's

STOP_TIMEOUT = 10  # seconds between SIGTERM and SIGKILL on a graceful stop


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    args: list[str]  # the agent's arguments (after the image's ENTRYPOINT)
    network: str  # docker network to attach to, or "none" (the backend plugs a veth in)
    ip: str
    volume: str
    labels: dict[str, str]
    nano_cpus: Optional[int] = None
    mem_limit: Optional[int] = None
    env: dict[str, str] = field(default_factory=dict)
    token_file: str = ""  # host path of the mesh token, mounted read-only at TOKEN_PATH


def volume_name(mesh: str, node: str) -> str:
    return f"meshbed-{mesh}-{node}-data"



TOKEN_PATH = "/run/meshbed/token"  # outside the data dir: /share cannot reach it


def create_and_start(client: Any, spec: ContainerSpec, clean: bool = True) -> str:
    """Create the node's volume and container and start it; the container id.

    ``clean``: first remove a container/volume of the same name (a crashed run's); the
    backend skips it when prepare() already swept the mesh's leftovers by label.
    """
    import docker.types

    api = client.api
    if clean:
        remove(client, spec.name)
        remove_volume(client, spec.volume)  # fresh data dir on deploy
    api.create_volume(spec.volume, driver="local", labels=spec.labels)
    binds = {spec.volume: {"bind": DATA_DIR, "mode": "rw"}}
    if spec.token_file:
        binds[spec.token_file] = {"bind": TOKEN_PATH, "mode": "ro"}
    host_config = api.create_host_config(
        binds=binds,
        network_mode=spec.network,
        nano_cpus=spec.nano_cpus,
        mem_limit=spec.mem_limit,
        # bounded logs: a chatty agent must not fill the disk
        log_config=docker.types.LogConfig(
            type="json-file", config={"max-size": "2m", "max-file": "1"}
        ),
    )
    networking = None
    if spec.network != "none":
        networking = api.create_networking_config(
            {spec.network: api.create_endpoint_config(ipv4_address=spec.ip)}
        )
    created = api.create_container(
        spec.image,
        command=spec.args,
        name=spec.name,
        labels=spec.labels,
        host_config=host_config,
        networking_config=networking,
        # the token comes from a read-only bind of a 0600 host file: not in argv, not in
        # the environment (`docker inspect` shows both), not in the data dir
        environment={"PYTHONUNBUFFERED": "1", "HOME": DATA_DIR, **spec.env},
        working_dir=DATA_DIR,
        stop_signal="SIGTERM",
        detach=True,
    )
    cid: str = created["Id"]
    api.start(cid)
    return cid


def pid(client: Any, name: str) -> Optional[int]:
    """The container's init PID on the host, None when it is not running (or gone)."""
    import docker.errors

    try:
        state = client.api.inspect_container(name)["State"]
    except docker.errors.NotFound:
        return None
    if not state.get("Running"):
        return None
    p = int(state.get("Pid") or 0)
    return p or None


def kill(client: Any, name: str) -> None:
    import docker.errors

    try:
        client.api.kill(name, signal="SIGKILL")
    except docker.errors.APIError as exc:
        if "is not running" not in str(exc) and not isinstance(exc, docker.errors.NotFound):
            raise
    wait_stopped(client, name)


def stop(client: Any, name: str, timeout: int = STOP_TIMEOUT) -> None:
    import docker.errors

    try:
        client.api.stop(name, timeout=timeout)
    except docker.errors.NotFound:
        pass


def wait_stopped(client: Any, name: str, timeout: float = 10.0) -> None:
    """docker kill returns before the container is reaped; start on it would then fail."""
    import docker.errors

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not client.api.inspect_container(name)["State"].get("Running"):
                return
        except docker.errors.NotFound:
            return
        time.sleep(0.05)


def start(client: Any, name: str) -> None:
    client.api.start(name)


def remove(client: Any, name_or_id: str) -> bool:
    """Force-remove a container (and its anonymous volumes); False when it was not there."""
    import docker.errors

    try:
        client.api.remove_container(name_or_id, force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if "already in progress" in str(exc):
            return True
        raise
    return True


def remove_volume(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.api.remove_volume(name, force=True)
    except docker.errors.NotFound:
        return False
    return True


def find(client: Any, mesh: str) -> list[dict[str, Any]]:
    """Every container of the mesh, running or not, found by label."""
    return list(client.api.containers(all=True, filters=labels.mesh_filter(mesh)))


def find_volumes(client: Any, mesh: str) -> list[str]:
    found = client.api.volumes(filters=labels.mesh_filter(mesh)) or {}
    return [v["Name"] for v in found.get("Volumes") or []]


def logs(client: Any, name: str, tail: int = 200) -> str:
    import docker.errors

    try:
        out = client.api.logs(name, stdout=True, stderr=True, tail=tail)
    except docker.errors.NotFound:
        return ""
    return out.decode(errors="replace") if isinstance(out, bytes) else str(out)


def memory_bytes(cid: str) -> Optional[int]:
    """Memory charged to the container's cgroup (v1 or v2) minus inactive page cache (what
    `docker stats` shows), read from /sys: no slow stats call. None when not found."""
    for usage_f, stat_f, cache_key in (
        (f"/sys/fs/cgroup/memory/docker/{cid}/memory.usage_in_bytes",
         f"/sys/fs/cgroup/memory/docker/{cid}/memory.stat", "total_inactive_file"),
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.current",
         f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.stat", "inactive_file"),
    ):
        try:
            usage = int(Path(usage_f).read_text())
            stat = dict(line.split() for line in Path(stat_f).read_text().splitlines())
        except (OSError, ValueError):
            continue
        return usage - int(stat.get(cache_key, 0))
    return None


def meshes_present(client: Any) -> dict[str, list[str]]:
    """Mesh name -> its docker objects here ("container NAME", "network NAME", "volume NAME").
    A swarm mesh's objects are left out (its tasks, overlay and volumes are the swarm
    backend's, though they carry the same labels)."""
    found: dict[str, list[str]] = {}
    flt = labels.managed_filter()
    objs: list[tuple[dict[str, Any], str]] = [
        (c.get("Labels") or {}, "container " + str((c.get("Names") or ["?"])[0]).lstrip("/"))
        for c in client.api.containers(all=True, filters=flt)
        if "com.docker.swarm.service.id" not in (c.get("Labels") or {})
    ]
    objs += [(n.get("Labels") or {}, f"network {n.get('Name')}")
             for n in client.api.networks(filters=flt) if n.get("Driver") != "overlay"]
    objs += [(v.get("Labels") or {}, f"volume {v.get('Name')}")
             for v in (client.api.volumes(filters=flt) or {}).get("Volumes") or []
             if str(v.get("Name", "")).startswith("meshbed-")]
    for lab, what in objs:
        mesh = lab.get(labels.MESH)
        if mesh:
            found.setdefault(mesh, []).append(what)
    return found
