"""Distribution efficiency on the local backend, agent-emulated links.

1 seeder (up 40 mbit) + 16 leechers (up 10 mbit, down 50 mbit), 32 MiB, 256 KiB chunks:
the measured distribution time (fetch event -> last verified copy) against the fluid-model
lower bound max(F/u_s, F/d_min, N*F/(u_s + sum u_i)); goal efficiency >= 0.85. Then the
same mesh with ``strategy: client-server`` (fetchers pull only from the seeder) for the
comparison P2P is about. Prints figures and ratios; asserts nothing.

    python3 bench/efficiency_local.py [--leechers 16] [--size 32MiB] [--no-client-server]
    python3 bench/efficiency_local.py --case hetero [--runs 3]

``--case hetero``: 2 seeders (up 25 mbit) + 7 fast leechers (up 20 / down 80 mbit) + 7 slow
(up 4 / down 16 mbit), 24 MiB: the bound is N*F/(u_s + sum u_i) = 12.93 s, and the slow
nodes' own download needs 12.58 s of it, so they must be fed at their full rate all along.
Goal efficiency >= 0.85. ``--runs N`` prints each run and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.loader import load_topology_text  # noqa: E402
from orchestrator.mesh import Mesh  # noqa: E402

TOPOLOGY = """
name: {name}
backend: local
seed: 7
chunk_size: 256KiB
strategy: {strategy}
timeout: 600s
defaults:
  link: {{up: 10mbit, down: 50mbit}}
groups:
  seeders:
    count: 1
    link: {{up: 40mbit, down: 50mbit}}
  leechers:
    count: {leechers}
content:
  movie:
    size: {size}
    seeders: [seeders]
scenario:
  - {{at: 0s, fetch: {{content: movie, by: leechers}}}}
"""


HETERO = """
name: {name}
backend: local
seed: 7
chunk_size: 256KiB
strategy: {strategy}
timeout: 600s
groups:
  seeders:
    count: 2
    link: {{up: 25mbit, down: 100mbit}}
  fast:
    count: 7
    link: {{up: 20mbit, down: 80mbit}}
  slow:
    count: 7
    link: {{up: 4mbit, down: 16mbit}}
content:
  movie:
    size: {size}
    seeders: [seeders]
scenario:
  - {{at: 0s, fetch: {{content: movie, by: [fast, slow]}}}}
"""


async def one_run(home: Path, strategy: str, leechers: int, size: str,
                  case: str = "default") -> dict[str, Any]:
    # SIGTERM/SIGINT (e.g. from `timeout`) cancel the run so its `finally` tears the mesh down.
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    name = "bench-eff-" + ("swarm" if strategy == "swarm" else "cs")
    text = HETERO if case == "hetero" else TOPOLOGY
    topo = load_topology_text(text.format(name=name, strategy=strategy, leechers=leechers, size=size))
    mesh = Mesh(topo, home=home, say=lambda m: print(f"  [{strategy}] {m}", file=sys.stderr))
    try:
        await mesh.up()
        started = time.monotonic()
        await mesh.play()
        wall = time.monotonic() - started
        report = mesh.report()
    finally:
        await asyncio.shield(mesh.down())
    d = report["distribution"]["movie"]
    finishes = sorted(f["seconds"] for n in report["nodes"].values() for f in n["fetches"].values()
                      if f["seconds"] is not None)
    seeder_up = sum(int(b) for n in report["nodes"].values() for f in n["fetches"].values()
                    for peer, b in (f["bytes_from"] or {}).items() if peer.startswith("seeders-"))
    return {
        "strategy": strategy,
        "ok": report["ok"],
        "seconds": d["seconds"],
        "lower_bound_seconds": d["lower_bound_seconds"],
        "client_server_bound_seconds": d["client_server_bound_seconds"],
        "efficiency": d["efficiency"],
        "first_finish": finishes[0] if finishes else None,
        "spread": (finishes[-1] - finishes[0]) if finishes else None,
        "seeder_copies": round(seeder_up / report["contents"]["movie"]["size"], 2),
        "redownloaded_bytes": d.get("redownloaded_bytes"),
        "wall_seconds": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("default", "hetero"), default="default")
    parser.add_argument("--leechers", type=int, default=16)
    parser.add_argument("--size", default=None, help="default 32MiB (hetero: 24MiB)")
    parser.add_argument("--runs", type=int, default=1, help="swarm runs (the median is shown)")
    parser.add_argument("--no-client-server", action="store_true", help="skip the comparison run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    size = args.size or ("24MiB" if args.case == "hetero" else "32MiB")

    results = []
    with tempfile.TemporaryDirectory(prefix="meshbed-bench-") as tmp:
        home = Path(tmp)
        runs = [asyncio.run(one_run(home, "swarm", args.leechers, size, args.case))
                for _ in range(max(1, args.runs))]
        if len(runs) > 1:
            for i, r in enumerate(runs, 1):
                print(f"  swarm run {i}: {r['seconds']} s, efficiency {r['efficiency']}")
        ok = [r for r in runs if r["seconds"]]
        results.append(sorted(ok, key=lambda r: r["seconds"])[len(ok) // 2] if ok else runs[0])
        if not args.no_client_server:
            results.append(asyncio.run(one_run(home, "client-server", args.leechers, size, args.case)))

    swarm = results[0]
    if args.case == "hetero":
        print(f"local backend, 2 seeders (25 mbit up) + 7 fast (20 up / 80 down) + 7 slow "
              f"(4 up / 16 down), {size}")
    else:
        print(f"local backend, 1 seeder (40 mbit up) + {args.leechers} leechers (10 up / 50 down), {size}")
    print(f"{'strategy':<14}{'seconds':>9}{'bound':>9}{'efficiency':>12}{'first':>8}{'spread':>8}"
          f"{'seeder copies':>15}{'ok':>5}")
    for r in results:
        def f(x: Any, fmt: str = ".1f") -> str:
            return "-" if x is None else format(x, fmt)
        print(f"{r['strategy']:<14}{f(r['seconds']):>9}{f(r['lower_bound_seconds']):>9}"
              f"{f(r['efficiency'], '.3f'):>12}{f(r['first_finish']):>8}{f(r['spread']):>8}"
              f"{f(r['seeder_copies'], '.2f'):>15}{str(r['ok']):>5}")
    if swarm["seconds"]:
        print(f"swarm efficiency {swarm['efficiency']:.3f} (goal >= 0.85); "
              f"client-server bound / swarm time = "
              f"{swarm['client_server_bound_seconds'] / swarm['seconds']:.2f}x")
    if len(results) > 1 and results[1]["seconds"] and swarm["seconds"]:
        print(f"measured client-server / swarm = {results[1]['seconds'] / swarm['seconds']:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
