"""Engine policy in virtual time: mean efficiency of the agent's own core over seeds.

Runs `meshbed simulate`'s World on the shapes the swarm engine is judged on (quickstart,
1+16 and 1+64 like examples/netns-swarm.yaml but with agent-emulated links, the
heterogeneous example, and bench/efficiency_local.py's hetero mesh) for seeds 1..N and
prints each shape's mean efficiency (lower bound / distribution time). A policy change is
tried here in seconds before a netns run (bench/swarm_vs_bittorrent.py) judges it.

    python3 bench/policy_sim.py [--seeds 3] [--shapes qs,n16,n64,het,hetlocal]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.loader import load_topology_text  # noqa: E402
from orchestrator.simulate.report import build_report  # noqa: E402
from orchestrator.simulate.world import World  # noqa: E402

SWARM = """
name: {name}
backend: local
seed: 7
chunk_size: 256KiB
defaults:
  link: {{up: 10mbit, down: 50mbit}}
groups:
  seeders: {{count: 1, link: {{up: 40mbit}}}}
  leechers: {{count: {n}}}
content:
  movie: {{size: {size}, seeders: [seeders]}}
scenario:
  - {{at: 0s, fetch: {{content: movie, by: leechers}}}}
"""
HETLOCAL = (ROOT / "bench" / "efficiency_local.py").read_text().split('HETERO = """', 1)[1].split('"""', 1)[0]
SHAPES = {
    "qs": lambda: (ROOT / "examples" / "quickstart.yaml").read_text(),
    "n16": lambda: SWARM.format(name="n16", n=16, size="64MiB"),
    "n64": lambda: SWARM.format(name="n64", n=64, size="32MiB"),
    "het": lambda: (ROOT / "examples" / "heterogeneous.yaml").read_text(),
    "hetlocal": lambda: HETLOCAL.format(name="hetlocal", strategy="swarm", size="24MiB"),
}


def efficiency(text: str, seed: int) -> float:
    topo = dataclasses.replace(load_topology_text(text), seed=seed)
    world = World(topo)
    report = build_report(world, world.play())
    (dist,) = report["distribution"].values()
    return float(dist["efficiency"] or 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args()
    for name in (s.strip() for s in args.shapes.split(",") if s.strip()):
        if name not in SHAPES:
            print(f"unknown shape {name!r} (known: {', '.join(SHAPES)})", file=sys.stderr)
            return 2
        t = time.monotonic()
        effs = [efficiency(SHAPES[name](), seed) for seed in range(1, args.seeds + 1)]
        print(f"{name:<9} mean efficiency {statistics.mean(effs):.3f}  "
              f"({' '.join(f'{e:.3f}' for e in effs)})  {time.monotonic() - t:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
