"""aria2c (Debian): seeder and leechers, found through the tracker (aria2c cannot be
pointed at a peer directly). DHT/LSD off, PEX on, no rate limits, defaults otherwise."""

from __future__ import annotations

import shutil

from bench.contestants import Outcome, Swarm
from bench.contestants.common import marker_script, place_content, run_swarm

NAME = "aria2"


def available() -> str | None:
    return None if shutil.which("aria2c") else "aria2c not installed (apt install aria2)"


def _argv(swarm: Swarm, host: str, hook: str, seed: bool) -> list[str]:
    h = swarm.lab.hosts[host]
    args = [
        "aria2c", f"--dir={h.dir / 'data'}", "--seed-ratio=0.0",
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
        "--enable-peer-exchange=true", "--listen-port=6881", "--disable-ipv6=true",
        "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn",
        "--max-overall-upload-limit=0", "--max-overall-download-limit=0",
        f"--on-bt-download-complete={hook}", "--bt-stop-timeout=0",
    ]
    if seed:
        args += ["--check-integrity=true"]
    return [*args, str(swarm.torrent)]


async def run(swarm: Swarm) -> Outcome:
    lab = swarm.lab

    def hook(host: str) -> str:
        d = lab.hosts[host].dir
        return str(marker_script(d / "hook.sh", d / "done"))

    async def start_seeder() -> None:
        from bench.contestants.common import wait_file

        place_content(swarm, swarm.seeder)
        lab.spawn(swarm.seeder, _argv(swarm, swarm.seeder, hook(swarm.seeder), True),
                  log="aria2.log")
        # With the whole file present and checked, aria2 fires the hook and seeds.
        await wait_file(lab.hosts[swarm.seeder].dir / "done", 60)

    def start_leecher(host: str) -> None:
        (lab.hosts[host].dir / "data").mkdir(parents=True, exist_ok=True)
        lab.spawn(host, _argv(swarm, host, hook(host), False), log="aria2.log")

    return await run_swarm(
        NAME, swarm, start_seeder, start_leecher,
        marker=lambda h: lab.hosts[h].dir / "done",
        downloaded=lambda h: lab.hosts[h].dir / "data" / swarm.name,
    )
