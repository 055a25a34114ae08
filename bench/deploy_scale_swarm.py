"""`bench/deploy_scale.py --backend swarm`: meshbed's swarm backend against `docker stack deploy`
of an equivalent compose file, on a 3-engine swarm lab (orchestrator/backends/swarm/lab.py).

Equivalent means what meshbed makes: one service per peer (replicas 1, restart none,
endpoint_mode dnsrr, a named volume for /data, the control API published in host mode), on one
attachable overlay. Ready = every agent answered GET /status on its engine's published port.
Down = services gone and every engine rid of the containers and volumes (`docker stack rm`
leaves volumes behind; removing them on each engine is counted in the baseline's time).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from orchestrator.backends.base import API_PORT, MeshContext
from orchestrator.backends.swarm import SwarmBackend, cluster
from orchestrator.backends.swarm import lab as swarm_lab
from orchestrator.loader import load_topology
from orchestrator.mesh import bounded

STACK_PORT_BASE = 23000


async def meshbed_run(n: int, home: Path, wait_all_ready: Any, timeout: float) -> dict[str, Any]:
    mesh = f"bsw-{n}-{os.getpid() % 10000}"
    path = home / f"{mesh}.yaml"
    path.write_text(yaml.safe_dump({
        "name": mesh, "backend": "swarm", "groups": {"peer": {"count": n}},
        "content": {"c": {"size": "1MiB", "seeders": ["peer[0]"]}},
    }))
    topo = load_topology(path)
    state: dict[str, Any] = {}
    ctx = MeshContext(mesh=mesh, token="bench-token", state_dir=home / mesh, state=state,
                      save=lambda: None, topology=topo, say=lambda _m: None)
    backend = SwarmBackend(ctx)
    t0 = time.monotonic()
    try:
        await backend.prepare(list(topo.nodes))
        eps = await bounded(16, (backend.deploy(nd) for nd in topo.nodes))  # as the engine does
        deployed = time.monotonic() - t0
        await wait_all_ready([e.api for e in eps], ctx.token, t0 + timeout)
        ready = time.monotonic() - t0
        hosts = sorted({e.site for e in eps})
    finally:
        t1 = time.monotonic()
        await backend.teardown()
        down = time.monotonic() - t1
    return {"ready": ready, "deployed": deployed, "down": down, "engines": len(hosts)}


def compose_text(n: int, image: str) -> str:
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for i in range(n):
        services[f"peer-{i}"] = {
            "image": image,
            "command": ["run", "--data-dir", "/data", "--api", f"0.0.0.0:{API_PORT}", "--listen", "0.0.0.0:6881",
                        "--node", f"peer-{i}", "--backend", "stack"],
            "hostname": f"peer-{i}",
            "networks": ["mesh"],
            "ports": [{"target": API_PORT, "published": STACK_PORT_BASE + i, "protocol": "tcp", "mode": "host"}],
            "volumes": [f"data-{i}:/data"],
            "deploy": {"endpoint_mode": "dnsrr", "replicas": 1, "restart_policy": {"condition": "none"}},
        }
        volumes[f"data-{i}"] = {}
    return yaml.safe_dump({"version": "3.8", "services": services, "volumes": volumes,
                           "networks": {"mesh": {"driver": "overlay", "attachable": True}}}, sort_keys=False)


def _docker(lab: swarm_lab.Lab, *args: str) -> None:
    subprocess.run(["docker", "-H", lab.docker_host, *args], check=True, capture_output=True, timeout=900)


def _stack_apis(lab: swarm_lab.Lab, stack: str, n: int, deadline: float) -> list[str]:
    """host:port of every peer once swarm placed its task (the node's address)."""
    cl = lab.client()
    addr = {nd["ID"]: nd["Status"]["Addr"] for nd in cl.api.nodes()}
    while time.monotonic() < deadline:
        tasks = cl.api.tasks(filters={"label": f"com.docker.stack.namespace={stack}", "desired-state": "running"})
        placed = {t["ServiceID"]: t for t in tasks if t.get("NodeID")}
        if len(placed) >= n:
            services = {s["ID"]: s["Spec"]["Name"] for s in cl.api.services(
                filters={"label": f"com.docker.stack.namespace={stack}"})}
            out = []
            for sid, t in placed.items():
                i = int(services[sid].rsplit("-", 1)[1])
                out.append(f"{addr[t['NodeID']]}:{STACK_PORT_BASE + i}")
            return out
        time.sleep(0.2)
    raise RuntimeError("stack tasks were not all placed in time")


def _stack_remove(lab: swarm_lab.Lab, stack: str) -> None:
    _docker(lab, "stack", "rm", stack)
    flt = {"label": [f"com.docker.stack.namespace={stack}"]}
    for e in lab.engines:  # containers first (they hold the volumes), then the volumes
        cl = lab.client(e.role)
        while cl.api.containers(all=True, filters=flt):
            time.sleep(0.2)
        for v in cl.api.volumes(filters=flt).get("Volumes") or []:
            cl.api.remove_volume(v["Name"], force=True)
    cl = lab.client()
    while cl.api.networks(filters=flt):
        time.sleep(0.2)


async def stack_run(n: int, image: str, workdir: Path, lab: swarm_lab.Lab, wait_all_ready: Any,
                    timeout: float) -> dict[str, Any]:
    stack = f"mbst{n}x{os.getpid() % 10000}"
    compose = workdir / f"{stack}.yaml"
    compose.write_text(compose_text(n, image))
    t0 = time.monotonic()
    try:
        await asyncio.to_thread(_docker, lab, "stack", "deploy", "--resolve-image", "never", "-c", str(compose), stack)
        apis = await asyncio.to_thread(_stack_apis, lab, stack, n, t0 + timeout)
        await wait_all_ready(apis, None, t0 + timeout)
        ready = time.monotonic() - t0
        engines = len({a.rsplit(":", 1)[0] for a in apis})
    finally:
        t1 = time.monotonic()
        await asyncio.to_thread(_stack_remove, lab, stack)
        down = time.monotonic() - t1
    return {"ready": ready, "down": down, "engines": engines}


def run_all(counts: list[int], workers: int, stack: bool, wait_all_ready: Any, timeout: float,
            tmp: Path) -> dict[int, dict[str, Any]]:
    """Bring a lab up, measure each N (meshbed then stack), take the lab down."""
    lab = swarm_lab.up(workers=workers, say=print)
    saved = os.environ.get(cluster.SWARM_HOST_ENV)
    os.environ[cluster.SWARM_HOST_ENV] = lab.docker_host
    results: dict[int, dict[str, Any]] = {}
    try:
        print(f"lab {lab.lab_id}: {len(lab.engines)} engines, image {lab.image}, {os.cpu_count()} cpus")
        for n in counts:
            results[n] = {"meshbed": asyncio.run(meshbed_run(n, tmp, wait_all_ready, timeout))}
            if stack:
                results[n]["compose"] = asyncio.run(stack_run(n, lab.image, tmp, lab, wait_all_ready, timeout))
            print(f"n={n}: {results[n]}", flush=True)
    finally:
        if saved is None:
            os.environ.pop(cluster.SWARM_HOST_ENV, None)
        else:
            os.environ[cluster.SWARM_HOST_ENV] = saved
        left = swarm_lab.down(lab, say=print)
        if left:
            print(f"lab left: {left}")
    return results
