"""Deploy speed at scale: meshbed's docker backend against `docker-compose up --scale`, or
its swarm backend against `docker stack deploy` on a 3-engine swarm lab.

    python3 bench/deploy_scale.py --backend docker -n 10,50,100
    python3 bench/deploy_scale.py --backend swarm -n 30,90    (root: builds its own lab)

For each N, in the same run and on the same peer image:
- meshbed: prepare + deploy N containers (the backend's bounded pool), seconds until every
  agent answers GET /status; seconds to tear down; memory per peer (cgroup, page cache
  excluded);
- baseline: a compose file with one `peer` service, `docker-compose up -d --scale peer=N`,
  same readiness check, `docker-compose down -v`.
Prints a table and the ratios (compose / meshbed: > 1 means meshbed is faster).
Goal: 100 peers ready in < 20 s on 2 cores, faster than compose.
Swarm: bench/deploy_scale_swarm.py says what the equivalent stack is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator import pyz  # noqa: E402
from orchestrator.backends.base import API_PORT, MeshContext  # noqa: E402
from orchestrator.backends.docker import DockerBackend, client, containers  # noqa: E402
from orchestrator.dockerlib import images  # noqa: E402
from orchestrator.mesh import bounded  # noqa: E402
from orchestrator.model import Link, Node  # noqa: E402
from orchestrator.peerclient import PeerClient, PeerError  # noqa: E402

READY_TIMEOUT = 180.0


async def wait_all_ready(apis: list[str], token: Optional[str], deadline: float) -> None:
    """Poll GET /status of every api until each answered once (bounded by ``deadline``)."""
    pending = set(apis)

    async def one(api: str) -> None:
        while time.monotonic() < deadline:
            try:
                await PeerClient(api, token, timeout=2.0).status(timeout=2.0)
                pending.discard(api)
                return
            except (PeerError, OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.2)

    await bounded(64, (one(a) for a in apis))
    if pending:
        raise RuntimeError(f"{len(pending)} agents never answered, e.g. {sorted(pending)[:3]}")


def memory_per_peer(cids: list[str]) -> Optional[float]:
    """Mean cgroup memory of the containers, page cache excluded (like `docker stats`)."""
    vals = [m for m in (containers.memory_bytes(cid) for cid in cids) if m is not None]
    return sum(vals) / len(vals) if vals else None


async def meshbed_run(n: int, home: Path) -> dict[str, Any]:
    mesh = f"bench-{n}-{os.getpid() % 10000}"
    state: dict[str, Any] = {}
    ctx = MeshContext(mesh=mesh, token="bench-token", state_dir=home / mesh, state=state,
                      save=lambda: None, say=lambda _m: None)
    backend = DockerBackend(ctx)
    nodes = [Node(name=f"peer-{i}", group="peer", index=i, backend="docker", link=Link())
             for i in range(n)]
    t0 = time.monotonic()
    try:
        await backend.prepare(nodes)
        eps = await bounded(16, (backend.deploy(nd) for nd in nodes))  # as the engine does
        t_deployed = time.monotonic() - t0
        await wait_all_ready([e.api for e in eps], ctx.token, t0 + READY_TIMEOUT)
        ready = time.monotonic() - t0
        c = client()
        try:
            cids = [c.api.inspect_container(e["container"])["Id"] for e in state["nodes"].values()]
        finally:
            c.close()
        await asyncio.sleep(2)  # let the agents settle before reading memory
        mem = memory_per_peer(cids)
    finally:
        t1 = time.monotonic()
        await backend.teardown()
        down = time.monotonic() - t1
    return {"ready": ready, "deployed": t_deployed, "down": down, "mem": mem}


COMPOSE = """\
version: "2.4"
services:
  peer:
    image: {image}
    command: ["run", "--data-dir", "/data", "--api", "0.0.0.0:{port}",
              "--listen", "0.0.0.0:6881", "--node", "peer", "--backend", "compose"]
    networks: [mesh]
networks:
  mesh:
    internal: true
"""


def _compose(project: str, workdir: Path, *args: str) -> None:
    subprocess.run(["docker-compose", "-p", project, "-f", str(workdir / "compose.yaml"), *args],
                   check=True, capture_output=True, timeout=900, cwd=workdir)


async def compose_run(n: int, image: str, workdir: Path) -> dict[str, Any]:
    project = f"mbbench{n}x{os.getpid() % 10000}"
    (workdir / "compose.yaml").write_text(COMPOSE.format(image=image, port=API_PORT))
    t0 = time.monotonic()
    try:
        await asyncio.to_thread(_compose, project, workdir, "up", "-d", "--scale", f"peer={n}")
        c = client()
        try:
            found = c.api.containers(filters={"label": f"com.docker.compose.project={project}"})
            apis = []
            cids = []
            for info in found:
                nets = info["NetworkSettings"]["Networks"]
                ip = next(iter(nets.values()))["IPAddress"]
                apis.append(f"{ip}:{API_PORT}")
                cids.append(info["Id"])
        finally:
            c.close()
        await wait_all_ready(apis, None, t0 + READY_TIMEOUT)
        ready = time.monotonic() - t0
        await asyncio.sleep(2)
        mem = memory_per_peer(cids)
    finally:
        t1 = time.monotonic()
        await asyncio.to_thread(_compose, project, workdir, "down", "-v", "--timeout", "5")
        down = time.monotonic() - t1
    return {"ready": ready, "down": down, "mem": mem}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="docker", choices=["docker", "swarm"])
    ap.add_argument("--workers", type=int, default=2, help="swarm: worker engines in the lab (default 2)")
    ap.add_argument("-n", default="10,50,100", help="comma-separated peer counts")
    ap.add_argument("--no-compose", action="store_true", help="skip the compose baseline")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.n.split(",") if x.strip()]
    if args.backend == "swarm":
        return swarm_main(args, counts)
    reason = DockerBackend.unavailable_reason()
    if reason:
        print(f"backend docker: {reason}", file=sys.stderr)
        return 2
    if not args.no_compose and shutil.which("docker-compose") is None:
        print("docker-compose is not installed: use --no-compose", file=sys.stderr)
        return 2
    c = client()
    try:
        image = images.ensure_peer_image(c, pyz.ensure_pyz(), say=lambda m: print(m))
    finally:
        c.close()
    print(f"image {image}, {os.cpu_count()} cpus")
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="meshbed-bench-") as tmp:
        for n in counts:
            results[n] = {"meshbed": asyncio.run(meshbed_run(n, Path(tmp)))}
            if not args.no_compose:
                results[n]["compose"] = asyncio.run(compose_run(n, image, Path(tmp)))
            print(f"n={n}: {json.dumps(results[n], default=lambda x: round(x, 3))}", flush=True)
    print_table(results, "compose")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return 0


def swarm_main(args: argparse.Namespace, counts: list[int]) -> int:
    import deploy_scale_swarm

    from orchestrator.backends.swarm import lab

    reason = lab.unavailable_reason() or (None if shutil.which("docker") else "the docker CLI is missing")
    if reason:
        print(f"backend swarm: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="meshbed-bench-") as tmp:
        results = deploy_scale_swarm.run_all(counts, args.workers, not args.no_compose, wait_all_ready,
                                             READY_TIMEOUT, Path(tmp))
    print_table(results, "stack")
    print("load average (1/5/15 min): " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return 0


def print_table(results: dict[int, dict[str, Any]], base: str) -> None:
    def fmt(v: Optional[float], unit: str = "s") -> str:
        if v is None:
            return "-"
        return f"{v / 2**20:.1f} MiB" if unit == "mem" else f"{v:.2f} s"

    print()
    print(f"{'N':>4}  {'meshbed ready':>13}  {base + ' ready':>13}  {'ratio':>6}  "
          f"{'meshbed down':>12}  {base + ' down':>12}  {'ratio':>6}  {'mem/peer':>10}  {base + ' mem':>11}")
    for n, r in results.items():
        m = r["meshbed"]
        cp = r.get("compose") or {}
        ready_ratio = f"{cp['ready'] / m['ready']:.2f}" if cp else "-"
        down_ratio = f"{cp['down'] / m['down']:.2f}" if cp else "-"
        print(f"{n:>4}  {fmt(m['ready']):>13}  {fmt(cp.get('ready')):>13}  {ready_ratio:>6}  "
              f"{fmt(m['down']):>12}  {fmt(cp.get('down')):>12}  {down_ratio:>6}  "
              f"{fmt(m.get('mem'), 'mem'):>10}  {fmt(cp.get('mem'), 'mem'):>11}")
    print(f"ratio = {base} / meshbed (> 1: meshbed faster)")


if __name__ == "__main__":
    raise SystemExit(main())
