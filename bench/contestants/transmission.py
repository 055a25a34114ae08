"""transmission-cli 3.00 (Debian) with a settings.json a fair user would write for a LAN
swarm: DHT, LSD, uTP and port mapping off, PEX on, no speed or ratio limits."""

from __future__ import annotations

import json
import shutil

from bench.contestants import Outcome, Swarm
from bench.contestants.common import marker_script, place_content, run_swarm, wait_file

NAME = "transmission"
PORT = 51413


def available() -> str | None:
    return None if shutil.which("transmission-cli") else (
        "transmission-cli not installed (apt install transmission-cli)")


def settings(ip: str) -> dict[str, object]:
    return {
        "bind-address-ipv4": ip,
        "peer-port": PORT,
        "peer-port-random-on-start": False,
        "dht-enabled": False,
        "lpd-enabled": False,
        "utp-enabled": False,
        "pex-enabled": True,
        "port-forwarding-enabled": False,
        "speed-limit-down-enabled": False,
        "speed-limit-up-enabled": False,
        "alt-speed-enabled": False,
        "ratio-limit-enabled": False,
        "idle-seeding-limit-enabled": False,
        "download-queue-enabled": False,
        "seed-queue-enabled": False,
        "peer-limit-global": 240,
        "peer-limit-per-torrent": 100,
        "message-level": 1,
    }


async def run(swarm: Swarm) -> Outcome:
    lab = swarm.lab

    def argv(host: str) -> list[str]:
        h = lab.hosts[host]
        cfg = h.dir / "tr-config"
        cfg.mkdir(parents=True, exist_ok=True)
        (cfg / "settings.json").write_text(json.dumps(settings(h.ip), indent=1))
        (h.dir / "data").mkdir(parents=True, exist_ok=True)
        hook = marker_script(h.dir / "hook.sh", h.dir / "done")
        return ["transmission-cli", "-g", str(cfg), "-w", str(h.dir / "data"),
                "-p", str(PORT), "-f", str(hook), str(swarm.torrent)]

    async def start_seeder() -> None:
        place_content(swarm, swarm.seeder)
        lab.spawn(swarm.seeder, argv(swarm.seeder), log="transmission.log")
        # transmission verifies the existing file, then runs the "finished" hook and seeds.
        await wait_file(lab.hosts[swarm.seeder].dir / "done", 60)

    def start_leecher(host: str) -> None:
        lab.spawn(host, argv(host), log="transmission.log")

    return await run_swarm(
        NAME, swarm, start_seeder, start_leecher,
        marker=lambda h: lab.hosts[h].dir / "done",
        downloaded=lambda h: lab.hosts[h].dir / "data" / swarm.name,
    )
