"""One user-defined bridge network per mesh, on a subnet that collides with nothing.

The subnet is a /22 from the docker pool of ``orchestrator.hostnet.subnets`` (disjoint from
the other backends' pools) that overlaps no docker network and no host route or address;
it is picked and created under the host-wide subnet lock, and a race with a foreign docker
network ("Pool overlaps") just moves on to the next candidate.
The bridge gets a fixed name (``labels.bridge_name``) so shaping and partitions can find it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
import time
from typing import Any

from orchestrator import settings
from orchestrator.dockerlib import labels
from orchestrator.dockerlib.subnets import engine_subnets
from orchestrator.errors import DeployError
from orchestrator.hostnet import subnets

POOL = subnets.DOCKER_POOL[0]
PREFIX = 22
MAX_TRIES = 8
REMOVE_TRIES = 12  # ~20 s in all


def free_subnets(client: Any, mesh: str) -> list[ipaddress.IPv4Network]:
    """Candidate subnets in preference order, none overlapping anything in use now."""
    used = engine_subnets(client) + subnets.host_networks()
    return subnets.free(subnets.DOCKER_POOL, PREFIX, subnets.start_for(mesh), used)


def find(client: Any, mesh: str) -> list[dict[str, Any]]:
    return list(client.api.networks(filters=labels.mesh_filter(mesh)))


def create(client: Any, mesh: str) -> dict[str, str]:
    """Create the mesh network; returns {"name","id","subnet","gateway","bridge"}."""

    name = labels.network_name(mesh)
    bridge = labels.bridge_name(mesh)
    for existing in find(client, mesh):  # a leftover from a crash: reuse nothing, start clean
        remove(client, existing["Id"])
    with subnets.host_lock():  # until the network (and its route) exists
        return _create_locked(client, mesh, name, bridge)


def _create_locked(client: Any, mesh: str, name: str, bridge: str) -> dict[str, str]:
    import docker.errors
    import docker.types

    last: Exception = DeployError("no free subnet")
    for subnet in free_subnets(client, mesh)[:MAX_TRIES]:
        gateway = str(next(subnet.hosts()))
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)]
        )
        try:
            net = client.api.create_network(
                name, driver="bridge", ipam=ipam, labels=labels.mesh_labels(mesh),
                check_duplicate=True,
                # internal: no route out of the mesh (peers talk only to each other and
                # to the host, which reaches them through the bridge)
                internal=True,
                options={
                    "com.docker.network.bridge.name": bridge,
                    "com.docker.network.bridge.enable_ip_masquerade": "false",
                    "com.docker.network.bridge.enable_icc": "true",
                },
            )
        except docker.errors.APIError as exc:
            last = exc
            if "overlap" in str(exc).lower():
                continue
            raise DeployError(f"backend docker: cannot create network {name}: {exc}") from exc
        return {"name": name, "id": net["Id"], "subnet": str(subnet), "gateway": gateway,
                "bridge": bridge}
    raise DeployError(f"backend docker: no free subnet for network {name}: {last}")


def node_addresses(subnet: str, count: int) -> list[str]:
    """Static addresses for ``count`` nodes (after the gateway); static so a restarted
    container keeps its address and the other peers still find it."""
    net = ipaddress.ip_network(subnet)
    hosts = net.hosts()
    next(hosts)  # gateway
    out: list[str] = []
    for _ in range(count):
        try:
            out.append(str(next(hosts)))
        except StopIteration:
            raise DeployError(
                f"backend docker: {count} nodes do not fit in {subnet}"
            ) from None
    return out


def remove(client: Any, name_or_id: str) -> bool:
    """Remove a network (disconnecting whatever is still attached); False when absent."""
    import docker.errors

    try:
        info = client.api.inspect_network(name_or_id)
    except docker.errors.NotFound:
        return False
    for cid in (info.get("Containers") or {}):
        try:
            client.api.disconnect_container_from_network(cid, name_or_id, force=True)
        except docker.errors.APIError:
            pass
    # dockerd releases endpoints of just-removed containers asynchronously: retry "active
    # endpoints" a bounded number of times
    for attempt in range(REMOVE_TRIES):
        try:
            client.api.remove_network(name_or_id)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc):
                raise
            if attempt == REMOVE_TRIES - 1:
                raise DeployError(
                    f"backend docker: network {name_or_id} still counts endpoints though no "
                    "container is attached (dockerd's bookkeeping; restarting dockerd releases "
                    "it); run `meshbed down` again after that"
                ) from exc
            time.sleep(0.25 * (attempt + 1))
    return True


# --- fast attach: our own veth into a container started with network "none" --------------
# Docker attaching a container to a user-defined network also sets up its embedded DNS (a
# re-exec of dockerd + iptables inside the container): half the cost of a container start.
# The agents need no DNS, so with root and a local daemon the backend starts containers
# with network "none" and plugs a veth into the mesh's bridge itself (two `ip` calls).


def veth_prefix(mesh: str) -> str:
    """What every host-side veth of the mesh starts with (leftover checks find them by it)."""
    return "mbv" + hashlib.sha1(mesh.encode()).hexdigest()[:5]


def veth_name(mesh: str, node: str) -> str:
    """Host-side veth of a node (15 bytes, the Linux maximum)."""
    return veth_prefix(mesh) + hashlib.sha1(node.encode()).hexdigest()[:7]


def veth_attach_available(client: Any) -> bool:
    """Root, iproute2 + nsenter here, and the daemon on this host (its PIDs are ours)."""
    import os
    import shutil

    if settings.docker_attach() == "docker":
        return False
    base_url = str(getattr(client.api, "base_url", ""))
    local = base_url.startswith(("http+docker://localhost", "http+docker://localunixsocket"))
    return (os.geteuid() == 0 and local and shutil.which("ip") is not None
            and shutil.which("nsenter") is not None)


async def attach_veth(pid: int, host_dev: str, bridge: str, ip: str, prefixlen: int) -> None:
    """Plug the container (init ``pid``, network "none") into ``bridge`` as ``ip``/prefix."""
    import os

    from orchestrator.backends import tc

    if os.path.exists(f"/sys/class/net/{host_dev}"):  # the old end, if its netns lingers
        await tc.run(["ip", "link", "del", host_dev], check=False)
    # the MAC follows from the address (as docker's own): a restarted container keeps it, so
    # its neighbours' ARP caches stay right (a new MAC left them sending to the old one for
    # up to ~30 s, until the entry went stale: every connection to a restarted node waited)
    mac = "02:42:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))
    host = (f"link add {host_dev} type veth peer name eth0 address {mac} netns {pid}\n"
            f"link set {host_dev} master {bridge} up\n")
    await tc.run(["ip", "-batch", "-"], input=host.encode())
    inside = f"addr add {ip}/{prefixlen} dev eth0\nlink set eth0 up\n"
    await tc.run(["nsenter", "-t", str(pid), "-n", "ip", "-batch", "-"], input=inside.encode())


def mesh_veths(mesh: str) -> list[str]:
    import os

    prefix = veth_prefix(mesh)
    try:
        return sorted(d for d in os.listdir("/sys/class/net") if d.startswith(prefix))
    except OSError:
        return []


def delete_veths(mesh: str) -> None:
    """Remove host veths of the mesh still there (normally they go with the containers)."""
    for dev in mesh_veths(mesh):
        subprocess.run(["ip", "link", "del", dev], capture_output=True, timeout=10)
