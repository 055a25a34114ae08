"""The swarm the simulate benches play (simulate_scale.py, simulate_scalability.py): one
seeder (50 mbit up) and N fetchers (10 mbit up, 50 mbit down, 10 ms), one 16 MiB file in
256 pieces of 64 KiB, every fetcher starting at 0 s."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

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


def play(path: Path, progress: bool = False) -> tuple[dict[str, Any], float]:
    """Simulate the topology at ``path``: its report and the CPU seconds it took. With
    ``progress``, one JSON line per virtual second on stderr ("progress {...}": how far a
    run got if it is stopped)."""
    from orchestrator.scenario import Sample
    from orchestrator.simulate import setup
    from orchestrator.simulate.report import build_report
    from orchestrator.simulate.world import World

    topo = setup.load(path)
    cpu = time.process_time()
    world = World(topo)

    def show(sample: Sample) -> None:
        have, want = sample.progress.get("movie", (0, 0))
        print("progress " + json.dumps({
            "virtual": sample.elapsed, "cpu": round(time.process_time() - cpu, 1), "events": world.clock.events,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "pieces_held": round(have / want, 3) if want else 0.0}), file=sys.stderr, flush=True)

    report = build_report(world, world.play(on_sample=show if progress else None))
    return report, time.process_time() - cpu
