"""The swarm the simulate benches play (simulate_scale.py, simulate_scalability.py): one
seeder (50 mbit up) and N fetchers (10 mbit up, 50 mbit down, 10 ms), one 16 MiB file in
256 pieces of 64 KiB, every fetcher starting at 0 s."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Optional

SEED_UP, UP, DOWN, SIZE = 50_000_000, 10_000_000, 50_000_000, 16 << 20
TOPOLOGY = """\
name: {name}
backend: local
seed: 1
strategy: {strategy}
chunk_size: 64KiB
defaults:
  link: {{up: 10mbit, down: 50mbit, latency: 10ms}}
groups:
  seeders: {{count: 1, link: {{up: 50mbit}}}}
  leechers: {{count: {fetchers}}}
content:
  movie: {{size: 16MiB, seeders: [seeders]}}
scenario:
  - {{at: 0s, fetch: {{content: movie, by: leechers}}}}
timeout: {timeout}
"""


def write_topology(workdir: Path, fetchers: int, strategy: str = "swarm", timeout: str = "24h") -> Path:
    name = f"{strategy}{fetchers}"
    path = workdir / f"{name}.yaml"
    path.write_text(TOPOLOGY.format(name=name, strategy=strategy, fetchers=fetchers, timeout=timeout))
    return path


def play(path: Path, progress: bool = False, checkpoint: Optional[Path] = None,
         every: float = 1800.0) -> tuple[dict[str, Any], float]:
    """Simulate the topology at ``path``: its report and the CPU seconds it took. With
    ``progress``, one JSON line per virtual second on stderr ("progress {...}": how far a
    run got if it is stopped). With ``checkpoint``, the run goes on from that file when it
    exists, saves itself there every ``every`` wall seconds and on SIGTERM/SIGINT (then
    exits with status 3), and deletes it when done: a run of hours survives a stop."""
    from orchestrator.scenario import Sample
    from orchestrator.simulate import checkpoint as ck
    from orchestrator.simulate import setup
    from orchestrator.simulate.report import build_report
    from orchestrator.simulate.world import Paused, World

    topo = setup.load(path)
    saver = None
    if checkpoint is not None:
        digest = ck.topology_digest(path)
        saver = ck.Checkpoint(checkpoint, digest, every)
    cpu = time.process_time()
    if saver is not None and saver.path.exists():
        world = ck.load(saver.path, saver.digest)
        print(f"resumed from {saver.path} at virtual {world.clock.now:.1f} s "
              f"({time.process_time() - cpu:.0f} s CPU to load)", file=sys.stderr, flush=True)
        cpu = time.process_time()  # the CPU figure is the simulation's (saves and loads: not counted)
    else:
        world = World(topo)

    def show(sample: Sample) -> None:
        have, want = sample.progress.get("movie", (0, 0))
        print("progress " + json.dumps({
            "virtual": sample.elapsed, "cpu": round(world.cpu_seconds(cpu), 1), "events": world.clock.events,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "pieces_held": round(have / want, 3) if want else 0.0}), file=sys.stderr, flush=True)

    if saver is not None:
        world.say = lambda msg: print(msg, file=sys.stderr, flush=True)
        saver.catch_signals(world)
    try:
        wall = world.play(on_sample=show if progress else None, checkpoint=saver)
    except Paused as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    report = build_report(world, wall)
    return report, world.cpu_seconds(cpu)
