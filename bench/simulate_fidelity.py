#!/usr/bin/env python3
"""Simulated vs real: the same topology through `meshbed simulate` and `meshbed run`;
prints the distribution times, their ratio (goal: within 10 %) and how alike the
completion curves are.

    sudo python3 bench/simulate_fidelity.py                   # netns 1+16, netns 1+64, heterogeneous
    sudo python3 bench/simulate_fidelity.py --cases netns16 --runs 2
    python3 bench/simulate_fidelity.py --cases heterogeneous  # local backend: no root needed
    python3 bench/simulate_fidelity.py --real netns16=real.json   # compare with a saved run report

Cases: ``netns16`` is examples/netns-swarm.yaml (1 seeder 40 mbit up + 16 leechers 10/50
mbit, 64 MiB, kernel tbf shaping); ``netns64`` the same links with 64 leechers and 32 MiB;
``netns64q`` that shape with every link at a quarter of its rate (65 agents moving 680 mbit/s
need more than 2 cores; at a quarter they mostly fit, so what is compared is the swarm);
``heterogeneous`` is examples/heterogeneous.yaml (fiber/cable/DSL/mobile, latency, jitter,
loss; agent-emulated links on the local backend). "curve gap" is the largest difference
between the two completion curves at the same fraction of fetchers complete, as a share of
the real distribution time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXAMPLES = ROOT / "examples"


def case_files(tmp: Path) -> dict[str, Path]:
    netns64 = (EXAMPLES / "netns-swarm.yaml").read_text()
    netns64 = netns64.replace("name: netns-swarm", "name: netns-swarm64").replace(
        "count: 16", "count: 64").replace("size: 64MiB", "size: 32MiB")
    p64 = tmp / "netns-swarm64.yaml"
    p64.write_text(netns64)
    slow = netns64.replace("name: netns-swarm64", "name: netns-swarm64q").replace(
        "up: 10mbit, down: 50mbit", "up: 2500kbit, down: 12500kbit").replace(
        "link: {up: 40mbit}", "link: {up: 10mbit}").replace(
        "all_complete_within: 180s", "all_complete_within: 400s")
    p64q = tmp / "netns-swarm64q.yaml"
    p64q.write_text(slow)
    return {"netns16": EXAMPLES / "netns-swarm.yaml", "netns64": p64, "netns64q": p64q,
            "heterogeneous": EXAMPLES / "heterogeneous.yaml"}


def completions(report: dict[str, Any]) -> list[float]:
    content = next(iter(report["distribution"]))
    d = report["distribution"][content]
    if d.get("completions") is not None:
        return [float(x) for x in d["completions"]]
    return sorted(float(n["fetches"][content]["seconds"]) for n in report["nodes"].values()
                  if content in n["fetches"] and n["fetches"][content]["seconds"] is not None)


def simulate(path: Path, seed: Optional[int] = None) -> dict[str, Any]:
    """One simulated run (``seed`` replaces the topology's)."""
    import dataclasses

    from orchestrator.simulate import setup
    from orchestrator.simulate.report import build_report
    from orchestrator.simulate.world import World

    topo = setup.load(path)
    if seed is not None:
        topo = dataclasses.replace(topo, seed=seed)
    world = World(topo)
    wall = world.play()
    return build_report(world, wall)


def run_real(path: Path, out: Path) -> Optional[dict[str, Any]]:
    env = dict(os.environ, MESHBED_HOME=os.environ.get("MESHBED_HOME", "/tmp/mbhome-simfidelity"))
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(path), "--report", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if not out.exists():
        print(f"real run of {path.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}",
              file=sys.stderr)
        return None
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def curve_gap(sim: list[float], real: list[float]) -> Optional[float]:
    if not sim or not real or len(sim) != len(real):
        return None
    return max(abs(a - b) for a, b in zip(sim, real)) / max(real)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="netns16,netns64,heterogeneous")
    ap.add_argument("--runs", type=int, default=1, help="real runs per case (the mean is compared)")
    ap.add_argument("--real", action="append", default=[], metavar="CASE=REPORT.json",
                    help="use a saved `meshbed run` report instead of running")
    ap.add_argument("--seeds", type=int, default=3,
                    help="simulated runs per case: the topology's seed, then other seeds (a swarm is "
                         "chaotic: the spread over seeds is the simulation's own noise)")
    ap.add_argument("--save-real", type=Path, metavar="DIR", help="keep the real run reports here")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    saved = dict(item.split("=", 1) for item in args.real)
    rows = []
    with tempfile.TemporaryDirectory(prefix="simfid-") as tmpdir:
        tmp = Path(tmpdir)
        files = case_files(tmp)
        for case in [c for c in args.cases.split(",") if c]:
            path = files[case]
            sims = [simulate(path)] + [simulate(path, seed=1000 + i) for i in range(args.seeds - 1)]
            sim = sims[0]
            reals: list[dict[str, Any]] = []
            if case in saved:
                reals.append(json.loads(Path(saved[case]).read_text()))
            else:
                for i in range(args.runs):
                    keep = args.save_real or tmp
                    keep.mkdir(parents=True, exist_ok=True)
                    r = run_real(path, keep / f"{case}-{i}.json")
                    if r is not None:
                        reals.append(r)
            content = next(iter(sim["distribution"]))
            s = sim["distribution"][content]
            times = [x["distribution"][content]["seconds"] for x in sims]
            row: dict[str, Any] = {"case": case, "sim_seconds": s["seconds"], "sim_first": s["first_seconds"],
                                   "bound": s["lower_bound_seconds"], "sim_wall": sim["wall_seconds"],
                                   "sim_mean": round(sum(times) / len(times), 3),
                                   "sim_range": [min(times), max(times)]}
            secs = [r["distribution"][content]["seconds"] for r in reals if r["distribution"][content]["seconds"]]
            if secs:
                real_s = sum(secs) / len(secs)
                firsts = [r["distribution"][content].get("first_seconds") for r in reals]
                firsts = [f for f in firsts if f]
                row.update(real_seconds=round(real_s, 3), ratio=round(s["seconds"] / real_s, 3),
                           mean_ratio=round(row["sim_mean"] / real_s, 3),
                           real_first=round(sum(firsts) / len(firsts), 3) if firsts else None,
                           curve_gap=curve_gap(completions(sim), completions(reals[0])))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{'case':<14} {'bound s':>8} {'sim s':>7} {'real s':>7} {'sim/real':>8} {'first sim':>9} "
          f"{'first real':>10} {'curve gap':>9} {'sim wall s':>10} {'seeds mean s':>12} {'mean/real':>9} "
          f"{'seeds range s':>14}")
    for r in rows:
        def f(x: Any, fmt: str = "{:.1f}") -> str:
            return fmt.format(x) if isinstance(x, (int, float)) else "-"

        print(f"{r['case']:<14} {f(r['bound']):>8} {f(r['sim_seconds']):>7} {f(r.get('real_seconds')):>7} "
              f"{f(r.get('ratio'), '{:.3f}'):>8} {f(r['sim_first']):>9} {f(r.get('real_first')):>10} "
              f"{f(r.get('curve_gap'), '{:.1%}'):>9} {f(r['sim_wall']):>10} {f(r['sim_mean']):>12} "
              f"{f(r.get('mean_ratio'), '{:.3f}'):>9} {r['sim_range'][0]:>6.1f}-{r['sim_range'][1]:<6.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
