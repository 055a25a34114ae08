"""The 3-engine swarm lab for tests: one manager and two workers, each a real dockerd in its
own network namespace (orchestrator/backends/swarm/lab.py), the peer image loaded on each.

``acquire()`` brings the lab up on first use in this process and points the swarm backend at
its manager (MESHBED_SWARM_HOST; DOCKER_HOST, so the docker backend, stays as it is);
``release()`` by the last user tears it down and asserts nothing is left
(processes, namespaces, veths, bridge, iptables rule, mounts, cgroups, data roots).
Needs root, dockerd, nsenter, unshare, ip and iptables.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

from orchestrator.backends.swarm import cluster
from orchestrator.backends.swarm import lab as swarm_lab

_lock = threading.Lock()
_lab: Optional[swarm_lab.Lab] = None
_users = 0
_saved_host: Optional[str] = None


def skip_reason() -> Optional[str]:
    return swarm_lab.unavailable_reason()


def acquire() -> swarm_lab.Lab:
    global _lab, _users, _saved_host
    with _lock:
        if _lab is None:
            _lab = swarm_lab.up(workers=2)
            _saved_host = os.environ.get(cluster.SWARM_HOST_ENV)
            os.environ[cluster.SWARM_HOST_ENV] = _lab.docker_host
        _users += 1
        return _lab


def release() -> None:
    global _lab, _users
    with _lock:
        _users -= 1
        if _users > 0 or _lab is None:
            return
        lab, _lab = _lab, None
        if _saved_host is None:
            os.environ.pop(cluster.SWARM_HOST_ENV, None)
        else:
            os.environ[cluster.SWARM_HOST_ENV] = _saved_host
        left = swarm_lab.down(lab)
        assert left == [], f"swarm lab {lab.lab_id} left: {left}"


def mesh_leftovers(lab: swarm_lab.Lab, mesh: str) -> list[str]:
    """Everything of ``mesh`` still on any engine of the lab (each listing is one API call)."""
    flt = cluster.mesh_filter(mesh)
    out: list[str] = []
    for e in lab.engines:
        cl: Any = lab.client(e.role)
        try:
            if e.role == "manager":
                out += [f"service {s['Spec']['Name']}" for s in cl.api.services(filters=flt)]
                out += [f"secret {s['Spec']['Name']}" for s in cl.api.secrets(filters=flt)]
            out += [f"container {c['Names'][0]} on {e.role}" for c in cl.api.containers(all=True, filters=flt)]
            out += [f"volume {v['Name']} on {e.role}"
                    for v in cl.api.volumes(filters=flt).get("Volumes") or []]
            out += [f"network {n['Name']} on {e.role}" for n in cl.api.networks(filters=flt)]
        finally:
            cl.close()
    return out
