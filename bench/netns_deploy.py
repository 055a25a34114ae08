"""Deploy time of `backend: netns` meshes through the engine (`meshbed up` without the CLI):
N agents in N namespaces on one bridge, tbf links, a 1 MiB content seeded on one node.

    sudo python3 bench/netns_deploy.py 100 300

Prints, per N: seconds for `up` (namespaces, veths, qdiscs, agents answering GET /status,
links applied, content seeded), for `down`, and the agents' resident memory. A baseline
in the same run: the same N agents as plain local processes (`backend: local`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.loader import load_topology  # noqa: E402
from orchestrator.mesh import Mesh  # noqa: E402


def topology(n: int, backend: str, name: str) -> str:
    return f"""\
name: {name}
backend: {backend}
defaults:
  link: {{up: 10mbit, down: 50mbit}}
groups:
  nodes:
    count: {n}
content:
  tiny:
    size: 1MiB
    seeders: ["nodes[0]"]
"""


def agents_rss_mib(mesh: str) -> float:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"--mesh" not in argv or argv[argv.index(b"--mesh") + 1] != mesh.encode():
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, IndexError):
            continue
    return total / 1024


async def measure(n: int, backend: str, home: Path) -> dict[str, float]:
    name = f"deploy-{backend}-{n}"
    src = home / f"{name}.yaml"
    src.write_text(topology(n, backend, name))
    mesh = Mesh(load_topology(src), home=home)
    t0 = time.monotonic()
    try:
        await mesh.up()
        up = time.monotonic() - t0
        rss = agents_rss_mib(name)
    finally:
        t1 = time.monotonic()
        await asyncio.shield(mesh.down())
        down = time.monotonic() - t1
    return {"up": up, "down": down, "rss_mib": rss}


async def amain(sizes: list[int], baseline: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="meshbed-deploy-") as tmp:
        home = Path(tmp)
        for n in sizes:
            r = await measure(n, "netns", home)
            line = (f"N={n:<4} netns: up {r['up']:6.1f}s  down {r['down']:5.1f}s  "
                    f"agents {r['rss_mib']:.0f} MiB ({r['rss_mib'] / n:.1f} MiB each)")
            if baseline:
                b = await measure(n, "local", home)
                line += f"  | local: up {b['up']:6.1f}s (netns/local {r['up'] / b['up']:.2f})"
            print(line, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[100, 300])
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    asyncio.run(amain(args.sizes, not args.no_baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
