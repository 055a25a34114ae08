"""Contract-suite harness for `backend: docker` (needs a reachable dockerd; root for tc).

``setup()`` builds the peer image offline once per session (no registry here), so the
tests' deploy times do not include an image build.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from orchestrator.backends.docker import (
    DockerBackend,
    client,
    containers,
    images,
    labels,
    networks,
)
from orchestrator.hostnet import iptables


def skip_reason() -> Optional[str]:
    """Why the docker suite cannot run here (the conftest fails instead under CI=true)."""
    return DockerBackend.unavailable_reason()


def setup() -> None:
    from orchestrator import pyz

    c = client()
    try:
        images.ensure_peer_image(c, pyz.ensure_pyz(), offline=True, say=lambda _: None)
    finally:
        c.close()


def topology_fields(n_nodes: int) -> dict[str, Any]:
    return {"backend": "docker"}


def _mesh_name(mesh: Any) -> str:
    return mesh if isinstance(mesh, str) else str(mesh.name)


def leftovers(mesh: Any) -> list[str]:
    """Containers, networks, volumes with the mesh label; the mesh's bridge and veths
    attached to it (their qdiscs go with them); iptables rules or chains of the mesh."""
    name = _mesh_name(mesh)
    bridge = labels.bridge_name(name)
    found: list[str] = []
    c = client(timeout=30)
    try:
        found += [f"container {x['Names'][0].lstrip('/')} ({x['State']})"
                  for x in containers.find(c, name)]
        found += [f"network {n['Name']}"
                  for n in c.api.networks(filters=labels.mesh_filter(name))]
        found += [f"volume {v}" for v in containers.find_volumes(c, name)]
    finally:
        c.close()
    if os.path.exists(f"/sys/class/net/{bridge}"):
        found.append(f"bridge {bridge}")
        try:
            ports = os.listdir(f"/sys/class/net/{bridge}/brif")
        except OSError:
            ports = []
        found += [f"veth {p} (on {bridge})" for p in ports]
    found += [f"veth {v}" for v in networks.mesh_veths(name)]
    found += [f"iptables {r}" for r in iptables.rules_mentioning([bridge,
                                                                   labels.chain_name(name)])]
    return found
