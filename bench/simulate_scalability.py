#!/usr/bin/env python3
"""The scalability picture: swarm vs client-server from 10 to 100,000 peers against both
fluid bounds, simulated with `meshbed simulate`'s engine (the agent's own swarm core).

    python3 bench/simulate_scalability.py                       # writes docs/results/simulate-scalability.{json,svg}
    python3 bench/simulate_scalability.py --swarm 10,100,1000 --client-server 10,100 --out /tmp/s

Every point is one simulated run of one seeder (50 mbit up) and N fetchers (10 mbit up,
50 mbit down, 10 ms), one 16 MiB file in 256 pieces. The bounds are drawn for every N from
10 to 100,000 (they need no simulation): client-server max(N·F/u_s, F/d_min), swarm
max(F/u_s, F/d_min, N·F/(u_s + Σu_i)). Client-server runs grow linearly in virtual time,
so by default they stop at 1,000 peers; the bound carries the line beyond. The swarm runs
go to 10,000 peers (~10 minutes of CPU of the ~12); 100,000 take hours, so that point is
measured by bench/simulate_scale.py and joined in here:

    python3 bench/simulate_scale.py --sizes 100000 --limit 0 --json scale.json
    python3 bench/simulate_scalability.py --scale-rows scale.json \
        --reuse docs/results/simulate-scalability.json     # the other points as they were
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _simswarm import DOWN, SEED_UP, SIZE, UP, play, write_topology  # noqa: E402

from orchestrator.bounds import client_server_bound, lower_bound  # noqa: E402
from orchestrator.simulate.scalechart import chart  # noqa: E402


def simulate(n: int, strategy: str, tmp: Path) -> dict[str, Any]:
    report, cpu = play(write_topology(tmp, n, strategy))
    d = report["distribution"]["movie"]
    return {"peers": n, "strategy": strategy, "seconds": d["seconds"], "verified": d["verified"],
            "lower_bound": d["lower_bound_seconds"], "client_server_bound": d["client_server_bound_seconds"],
            "cpu_seconds": round(cpu, 1), "events": report["events_processed"]}


def scale_rows(path: Path) -> list[dict[str, Any]]:
    """Swarm points measured by bench/simulate_scale.py (same swarm; its N counts the seeder)."""
    rows = []
    for r in json.loads(path.read_text()):
        if "skipped" in r:
            continue
        rows.append({"peers": r["n"] - 1, "strategy": "swarm", "seconds": r["seconds"], "verified": r["verified"],
                     "lower_bound": r["lower"],
                     "client_server_bound": cs_bound(r["n"] - 1),
                     "cpu_seconds": round(r["cpu"], 1), "events": r["events"], "from": "bench/simulate_scale.py"})
    return rows


def cs_bound(n: int) -> float:
    """Client-server's fluid bound for n fetchers of this swarm."""
    return float(client_server_bound(SIZE, [SEED_UP], [DOWN] * n) or 0)


def bounds(ns: list[int]) -> dict[str, list[tuple[float, float]]]:
    cs, p2p = [], []
    for n in ns:
        cs.append((float(n), cs_bound(n)))
        p2p.append((float(n), float(lower_bound(SIZE, [SEED_UP], [UP] * n, [DOWN] * n) or 0)))
    return {"client-server bound": cs, "swarm lower bound": p2p}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swarm", default="10,30,100,300,1000,10000", help="peers of the simulated swarm runs")
    ap.add_argument("--client-server", default="10,30,100,300,1000", help="peers of the client-server runs")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "simulate-scalability",
                    help="writes OUT.json and OUT.svg")
    ap.add_argument("--scale-rows", type=Path, action="append", default=[],
                    help="also draw the swarm points of this bench/simulate_scale.py --json file (repeatable)")
    ap.add_argument("--reuse", type=Path,
                    help="an earlier OUT.json: its runs of the sizes asked for are kept, not simulated again")
    args = ap.parse_args()
    rows = []
    earlier = {}
    if args.reuse:
        earlier = {(r["strategy"], r["peers"]): r for r in json.loads(args.reuse.read_text())["runs"]
                   if "from" not in r}  # points joined from scale rows come with --scale-rows
    with tempfile.TemporaryDirectory(prefix="simscal-") as tmpdir:
        for strategy, sizes in (("swarm", args.swarm), ("client-server", args.client_server)):
            for n in [int(x) for x in sizes.split(",") if x]:
                row = earlier.get((strategy, n)) or simulate(n, strategy, Path(tmpdir))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    for path in args.scale_rows:
        rows.extend(scale_rows(path))
    rows.sort(key=lambda r: (r["strategy"], r["peers"]))
    grid = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]
    series = bounds(grid)
    for strategy in ("client-server", "swarm"):
        series[f"{strategy} (simulated)"] = [(float(r["peers"]), float(r["seconds"])) for r in rows
                                             if r["strategy"] == strategy and r["seconds"]]
    print(f"{'peers':>7} {'swarm s':>9} {'bound s':>8} {'client-server s':>16} {'bound s':>8} {'cs / swarm':>10}")
    for n in sorted({r["peers"] for r in rows}):
        sw = next((r for r in rows if r["peers"] == n and r["strategy"] == "swarm"), None)
        cs = next((r for r in rows if r["peers"] == n and r["strategy"] == "client-server"), None)

        def s(r: Any, key: str) -> str:
            return f"{r[key]:.1f}" if r and r.get(key) else "-"

        ratio = f"{cs['seconds'] / sw['seconds']:.1f}" if sw and cs and sw["seconds"] and cs["seconds"] else "-"
        print(f"{n:>7} {s(sw, 'seconds'):>9} {s(sw, 'lower_bound'):>8} {s(cs, 'seconds'):>16} "
              f"{s(cs, 'client_server_bound'):>8} {ratio:>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"runs": rows, "bounds": series}, indent=1) + "\n")
    args.out.with_suffix(".svg").write_text(chart(
        series, "16 MiB to N peers: client-server grows with N, the swarm stays near flat") + "\n")
    print(f"wrote {args.out.with_suffix('.svg')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
