"""How many local agents fit: `meshbed up` of N local nodes (agents forked by the mesh's fork
server), its wall time and the agents' memory (Pss: shared pages split among the processes
sharing them, so the sum is what the mesh really costs). Baseline in the same run: BASE agents
started as separate interpreters (`python -m peer run`), as the local backend did before.

    python3 bench/local_scale.py [--nodes 1000] [--baseline 20]

Prints per-agent Pss for both and the ratio, and the up and down times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def exec_baseline(count: int, work: Path) -> float:
    """Mean Pss (MiB) of ``count`` idle agents, each its own interpreter."""
    procs = []
    try:
        for i in range(count):
            ready = work / f"ready-{i}.json"
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "peer", "run", "--data-dir", str(work / f"a{i}"),
                 "--ready-file", str(ready), "--log-level", "warning"], cwd=REPO), ready))
        deadline = time.monotonic() + 120
        while not all(r.exists() for _, r in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # settled
        return sum(pss_kib(p.pid) for p, _ in procs) / count / 1024
    finally:
        for p, _ in procs:
            p.terminate()
        for p, _ in procs:
            p.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--baseline", type=int, default=20, help="exec'd agents to compare with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshbed-localscale-") as tmp:
        work = Path(tmp)
        base = exec_baseline(args.baseline, work)
        name = f"localscale-{os.getpid()}"
        topo = work / "t.yaml"
        topo.write_text(f"name: {name}\nbackend: local\ngroups:\n  n: {{count: {args.nodes}}}\n")
        env = {**os.environ, "MESHBED_HOME": str(work / "home")}
        cli = [sys.executable, "-m", "orchestrator"]
        t0 = time.monotonic()
        up = subprocess.run([*cli, "up", str(topo)], env=env, capture_output=True, text=True)
        up_s = time.monotonic() - t0
        try:
            if up.returncode != 0:
                print(up.stderr[-2000:], file=sys.stderr)
                return 1
            time.sleep(1.0)
            state = json.loads((work / "home" / name / "state.json").read_text())
            local = next(b for b in state["backends"].values() if "forkserver" in b)
            pids = [e["pid"] for e in local["nodes"].values()] + [local["forkserver"]["pid"]]
            total = sum(pss_kib(p) for p in pids) / 1024
        finally:
            t1 = time.monotonic()
            down = subprocess.run([*cli, "down", name], env=env, capture_output=True, text=True)
            down_s = time.monotonic() - t1
        per = total / args.nodes
        print(f"local mesh of {args.nodes} nodes: up {up_s:.1f} s, down {down_s:.1f} s "
              f"(exit {down.returncode})")
        print(f"memory (Pss): {total:.0f} MiB in all, {per:.1f} MiB per agent incl. the server")
        print(f"baseline: {args.baseline} agents as separate interpreters: {base:.1f} MiB each")
        print(f"ratio forked / separate: {per / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
