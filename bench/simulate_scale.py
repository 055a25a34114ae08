#!/usr/bin/env python3
"""How `meshbed simulate` grows with the number of peers: wall time, CPU time and peak
memory per N (default 1k, 10k, 100k peers x 256 pieces), each N in its own process.

    python3 bench/simulate_scale.py                      # 1000,10000,100000
    python3 bench/simulate_scale.py --sizes 1000,3000 --json out.json
    python3 bench/simulate_scale.py --sizes 100000 --checkpoint-dir ckpt   # stop (Ctrl-C), then
    python3 bench/simulate_scale.py --sizes 100000 --checkpoint-dir ckpt   # goes on from ckpt/100000.ckpt

The topology (bench/_simswarm.py): one seeder (50 mbit up) and N-1 fetchers (10 mbit up,
50 mbit down, 10 ms), one 16 MiB content in 256 pieces of 64 KiB, all fetching at 0 s.
Beyond 1,000 peers the agents run capped (report ``agent_limits``: column "caps"). The last columns compare
the growth with N log N: "cpu / (N log N)" should stay flat (or fall); a rise means a part
grows worse than N log N. A size whose memory estimate does not fit is reported, not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _simswarm import write_topology  # noqa: E402

CHILD = r"""
import json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from _simswarm import play
from orchestrator.simulate import setup
ckpt = sys.argv[3] if len(sys.argv) > 3 else None
report, cpu = play(Path(sys.argv[1]), progress=True, checkpoint=Path(ckpt) if ckpt else None,
                   every=float(sys.argv[4]) if ckpt else 0.0)
d = report["distribution"]["movie"]
print(json.dumps({
    "wall": report["wall_seconds"], "cpu": cpu,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "events": report["events_processed"], "virtual": report["virtual_seconds"],
    "seconds": d["seconds"], "lower": d["lower_bound_seconds"], "efficiency": d["efficiency"],
    "verified": d["verified"], "fetchers": d["fetchers"], "ok": report["ok"],
    "estimate": setup.memory_estimate(setup.load(sys.argv[1])), "limits": report.get("agent_limits"),
    "resumed": report.get("checkpoint_resumes", 0),  # then rss is the last part's peak (progress lines: the others)
}))
"""


def run_one(n: int, workdir: Path, limit: float, checkpoints: Optional[Path] = None,
            every: float = 1800.0) -> dict[str, Any]:
    from orchestrator.errors import InputError
    from orchestrator.simulate import setup

    path = write_topology(workdir, n - 1, timeout="2h")
    try:
        setup.check_memory(setup.load(path))
    except InputError as exc:
        return {"n": n, "skipped": str(exc).split(": ", 1)[-1]}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", CHILD, str(path), str(ROOT / "bench")]
    if checkpoints is not None:  # the child goes on from (and saves to) DIR/N.ckpt
        cmd += [str(checkpoints / f"{n}.ckpt"), str(every)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as child:
        timed_out, progress, last = follow(child, n, time.monotonic() + limit if limit > 0 else math.inf)
        out = child.stdout.read() if child.stdout else ""
    saved = checkpoints / f"{n}.ckpt" if checkpoints is not None else None
    if timed_out:
        where = f" (saved to {saved}: the same command goes on)" if saved is not None and saved.exists() else ""
        return {"n": n, "skipped": f"not finished within {limit:.0f} s wall{where}{reached(progress)}"}
    if child.returncode == 3 and saved is not None:
        return {"n": n, "skipped": f"stopped and saved to {saved} (run the same command to go on){reached(progress)}"}
    if child.returncode != 0:
        return {"n": n, "skipped": f"failed (exit {child.returncode}){reached(progress)}: {last}"}
    row: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    row["n"] = n
    return row


def follow(child: subprocess.Popen[str], n: int, deadline: float) -> tuple[bool, str, str]:
    """Pass the child's progress on (one line per virtual second: a 100,000-peer run takes
    hours) until it ends, or kill it at ``deadline``. Returns (stopped at the deadline, its
    last progress line, its last other stderr line: a traceback's message)."""
    assert child.stderr is not None
    stderr = child.stderr
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for ln in stderr:
            lines.put(ln.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    progress = last = ""
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()) if deadline < math.inf else None)
        except KeyboardInterrupt:  # the child saves (with a checkpoint) and stops: wait for it
            child.send_signal(signal.SIGINT)  # (in case the Ctrl-C reached only this process)
            print(f"  {n} peers: stopping (saving first, with --checkpoint-dir)", file=sys.stderr, flush=True)
            child.wait()
            raise
        except queue.Empty:
            child.terminate()  # with a checkpoint: saves first (minutes at 100,000 peers)
            child.wait()
            return True, progress, last
        if line is None:
            child.wait()
            return False, progress, last
        if not line.startswith("progress "):
            last = line
            if line.startswith(("checkpoint at", "resumed from", "stopped at")):
                print(f"  {n} peers: {line}", file=sys.stderr, flush=True)
            continue
        progress = line
        print(f"  {n} peers: {describe(progress)}", file=sys.stderr, flush=True)


def describe(progress: str) -> str:
    """A child's progress line ("progress {...}") as a person reads it."""
    p = json.loads(progress.split(" ", 1)[1])
    return (f"virtual {p['virtual']:.0f} s, {100 * p['pieces_held']:.0f} % of pieces held, "
            f"{p['cpu']:.0f} s CPU, {p['events']} events, peak {p['rss'] / 2**20:.0f} MiB")


def reached(progress: str) -> str:
    """How far a stopped run got, from its last progress line."""
    return f": reached {describe(progress)}" if progress else ""


def caps(row: dict[str, Any]) -> str:
    """"peers/known" per agent when the run was capped (setup.LARGE_SWARM), else "-"."""
    lim = row.get("limits")
    return f"{lim['max_peers']}/{lim['max_known']}" if lim else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="peers per run, comma-separated")
    ap.add_argument("--limit", type=float, default=3600.0,
                    help="wall seconds allowed per size (0: no limit, for a run of hours)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--checkpoint-dir", type=Path, metavar="DIR",
                    help="save each run to DIR/N.ckpt as it goes (and on Ctrl-C, kill or --limit); run the "
                         "same command again to go on from there (a 100,000-peer run takes hours)")
    ap.add_argument("--checkpoint-every", type=float, default=1800.0, metavar="SECONDS",
                    help="wall seconds between two saves (default 1800; a save at 100,000 peers takes minutes)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    rows = []
    if args.checkpoint_dir is not None:
        args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="simscale-") as tmp:
        for n in sizes:
            try:
                row = run_one(n, Path(tmp), args.limit, args.checkpoint_dir, args.checkpoint_every)
            except KeyboardInterrupt:  # the child saw the Ctrl-C too (and saved, with a checkpoint)
                saved = args.checkpoint_dir / f"{n}.ckpt" if args.checkpoint_dir else None
                where = f"; saved to {saved}: the same command goes on from it" if saved and saved.exists() else ""
                print(f"  {n} peers: interrupted{where}", file=sys.stderr)
                return 130
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{'peers':>7} {'virtual s':>9} {'dist s':>7} {'bound s':>7} {'eff':>5} {'wall s':>8} {'cpu s':>8} "
          f"{'peak MiB':>8} {'est MiB':>8} {'events':>10} {'cpu/NlogN us':>12} {'caps':>8}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['n']:>7} skipped: {r['skipped']}")
            continue
        nlogn = r["n"] * math.log2(r["n"])
        print(f"{r['n']:>7} {r['virtual']:>9.1f} {r['seconds'] or float('nan'):>7.1f} {r['lower']:>7.1f} "
              f"{r['efficiency'] or 0:>5.2f} {r['wall']:>8.1f} {r['cpu']:>8.1f} {r['rss'] / 2**20:>8.0f} "
              f"{r['estimate'] / 2**20:>8.0f} {r['events']:>10} {1e6 * r['cpu'] / nlogn:>12.1f} {caps(r):>8}")
    done = [r for r in rows if "skipped" not in r]
    for a, b in zip(done, done[1:]):
        print(f"{a['n']} -> {b['n']} peers: cpu x{b['cpu'] / a['cpu']:.1f}, peak memory x{b['rss'] / a['rss']:.1f} "
              f"(N log N x{b['n'] * math.log2(b['n']) / (a['n'] * math.log2(a['n'])):.1f})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
