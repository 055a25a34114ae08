"""libtorrent 2.x (PyPI bindings): one Python process per namespace."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench._netlab import wait_for_files
from bench.contestants import Outcome, Swarm
from bench.contestants.common import place_content, run_swarm, wait_file

NAME = "libtorrent"
SCRIPT = Path(__file__).with_name("lt_peer.py")


def available() -> str | None:
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        return "python libtorrent bindings not installed (pip install libtorrent)"
    return None


async def run(swarm: Swarm) -> Outcome:
    lab = swarm.lab

    def argv(host: str, seed: bool) -> list[str]:
        h = lab.hosts[host]
        args = [sys.executable, str(SCRIPT), "--torrent", str(swarm.torrent),
                "--save", str(h.dir / "data"), "--ip", h.ip, "--done", str(h.dir / "done"),
                "--stats", str(h.dir / "stats.json")]
        if os.environ.get("MESHBED_LT_TIMELINE"):  # diagnosis: per-second timeline + alerts
            args += ["--timeline", str(h.dir / "timeline.jsonl")]
        return args + (["--seed"] if seed else [])

    async def start_seeder() -> None:
        place_content(swarm, swarm.seeder)
        lab.spawn(swarm.seeder, argv(swarm.seeder, True), log="lt.log")
        await wait_file(lab.hosts[swarm.seeder].dir / "done", 60)

    go = lab.hosts[swarm.seeder].dir / "go"

    async def prestart() -> None:
        """Leechers up with the torrent paused; the clock starts when they resume."""
        for host in swarm.leechers:
            h = lab.hosts[host]
            (h.dir / "data").mkdir(parents=True, exist_ok=True)
            lab.spawn(host, [*argv(host, False), "--ready", str(h.dir / "ready"),
                             "--go", str(go)], log="lt.log")
        await wait_for_files([lab.hosts[h].dir / "ready" for h in swarm.leechers], 120)

    def start_leecher(host: str) -> None:
        if not go.exists():
            go.write_text("go\n")

    out = await run_swarm(
        NAME, swarm, start_seeder, start_leecher, prestart=prestart,
        marker=lambda h: lab.hosts[h].dir / "done",
        downloaded=lambda h: lab.hosts[h].dir / "data" / swarm.name,
    )
    try:
        stats = json.loads((lab.hosts[swarm.seeder].dir / "stats.json").read_text())
        out.extra["seeder_copies_uploaded"] = round(stats["uploaded"] / swarm.size, 2)
    except (OSError, ValueError, KeyError):
        pass
    return out

