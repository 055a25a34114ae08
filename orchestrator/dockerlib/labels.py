"""Names and labels of everything the docker backend creates.

Every container, network and volume carries ``meshbed.managed=1`` and ``meshbed.mesh=MESH``
so `down` and orphan cleanup find them by label even when the state file is gone.
"""

from __future__ import annotations

import hashlib

MANAGED = "meshbed.managed"
MESH = "meshbed.mesh"
NODE = "meshbed.node"
GROUP = "meshbed.group"


def container_name(mesh: str, node: str) -> str:
    return f"meshbed-{mesh}-{node}"


def network_name(mesh: str) -> str:
    return f"meshbed-{mesh}"


def bridge_name(mesh: str) -> str:
    """Linux interface names are at most 15 bytes: a short digest of the mesh name."""
    return "mbd" + hashlib.sha1(mesh.encode()).hexdigest()[:10]


def chain_name(mesh: str) -> str:
    """The iptables chain holding this mesh's partition rules (<= 28 chars)."""
    return "MESHBED-" + hashlib.sha1(mesh.encode()).hexdigest()[:12]


def mesh_labels(mesh: str) -> dict[str, str]:
    return {MANAGED: "1", MESH: mesh}


def node_labels(mesh: str, node: str, group: str) -> dict[str, str]:
    return {MANAGED: "1", MESH: mesh, NODE: node, GROUP: group}


def mesh_filter(mesh: str) -> dict[str, list[str]]:
    """Docker API ``filters`` selecting the mesh's objects."""
    return {"label": [f"{MANAGED}=1", f"{MESH}={mesh}"]}


def managed_filter() -> dict[str, list[str]]:
    return {"label": [f"{MANAGED}=1"]}
