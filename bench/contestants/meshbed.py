"""meshbed itself, two ways:

- ``engine``: a YAML topology with ``backend: netns`` through ``orchestrator.mesh.Mesh``
  (up, play, report, down): exactly what `meshbed run` does, with its own bridge built by
  the same netns code and tbf parameters as the lab;
- ``agents``: our agents started by hand in the lab's namespaces and driven over the
  control API (POST /share on the seeder, POST /fetch on the leechers, GET /status): the
  very same hosts the BitTorrent clients used.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bench._netlab import LAB_HOME, Lab
from bench.contestants import Outcome
from orchestrator.peerclient import PeerClient, PeerError

NAME = "meshbed"
TOKEN = "bench-token"
CONTENT = "movie"
SEED = 7


@dataclass(frozen=True)
class Plan:
    leechers: int
    size: int
    piece_length: int
    seeder_up: int  # bits/s
    leecher_up: int
    leecher_down: int
    timeout: float
    strategy: str = "swarm"  # or client-server
    # leecher link classes (group, count, up, down bits/s); empty: ``leechers`` of one class
    classes: tuple[tuple[str, int, int, int], ...] = ()

    def leecher_classes(self) -> tuple[tuple[str, int, int, int], ...]:
        return self.classes or (("leechers", self.leechers, self.leecher_up, self.leecher_down),)


def topology_yaml(plan: Plan, name: str, client: str = "meshbed") -> str:
    """The bench's swarm as a topology; ``client``: every node runs that client (`client:`
    groups, with the mesh's opentracker), else meshbed agents."""
    kind = "" if client == "meshbed" else f"\n    client: {client}"
    tracker = "" if client == "meshbed" else "\ntracker: opentracker"
    classes = plan.leecher_classes()
    groups = "".join(f"""
  {group}:
    count: {count}
    link: {{up: {up}bit, down: {down}bit}}{kind}""" for group, count, up, down in classes)
    by = classes[0][0] if len(classes) == 1 else "[" + ", ".join(c[0] for c in classes) + "]"
    return f"""\
name: {name}
backend: netns{tracker}
chunk_size: {plan.piece_length}B
seed: {SEED}
strategy: {plan.strategy}
defaults:
  link: {{up: {plan.leecher_up}bit, down: {plan.leecher_down}bit}}
groups:
  seeders:
    count: 1
    link: {{up: {plan.seeder_up}bit}}{kind}{groups}
content:
  {CONTENT}:
    size: {plan.size}B
    seeders: [seeders]
scenario:
  - {{at: 0s, fetch: {{content: {CONTENT}, by: {by}}}}}
expect:
  all_complete_within: {int(plan.timeout)}s
"""


async def run_engine(plan: Plan, name: str = "bench-meshbed", client: str = "meshbed") -> Outcome:
    from orchestrator.loader import load_topology_text
    from orchestrator.mesh import Mesh

    home = LAB_HOME / "meshbed-home"
    src = home / f"{name}.yaml"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(topology_yaml(plan, name, client))
    topo = load_topology_text(src.read_text(), source=src)
    mesh = Mesh(topo, home=home)
    label = f"{NAME} ({plan.strategy}, engine)" if client == "meshbed" else f"{client} (meshbed run)"
    try:
        t_up = time.monotonic()
        await mesh.up()
        deploy = time.monotonic() - t_up
        await asyncio.wait_for(mesh.play(), plan.timeout + 60)
        report = mesh.report()
    except (asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - reported, not raised
        return Outcome(label, False, None, error=f"{type(exc).__name__}: {exc}")
    finally:
        await asyncio.shield(mesh.down())
    dist = report["distribution"][CONTENT]
    completions: list[float] = []
    verified = 0
    from_seeder = 0
    for entry in report["nodes"].values():
        fetch = entry["fetches"].get(CONTENT)
        if not fetch:
            continue
        if fetch.get("verified"):
            verified += 1
            if fetch.get("seconds") is not None:
                completions.append(float(fetch["seconds"]))
        from_seeder += sum(v for k, v in (fetch.get("bytes_from") or {}).items()
                           if k.startswith("seeders"))
    ok = bool(report.get("ok")) and dist.get("seconds") is not None
    return Outcome(
        label, ok, dist.get("seconds"), sorted(completions), verified,
        None if ok else f"report not ok: {report.get('reason') or report.get('stuck')}",
        {"deploy_seconds": round(deploy, 2),
         "seeder_copies_uploaded": round(from_seeder / plan.size, 2)},
    )


async def run_agents(plan: Plan, lab: Lab, seeder: str, leechers: tuple[str, ...]) -> Outcome:
    """Our agents in the lab's hosts (which are shaped already: agents emulate nothing)."""
    label = f"{NAME} ({plan.strategy}, agents)"
    hosts = (seeder, *leechers)
    clients: dict[str, PeerClient] = {}
    for name in hosts:
        h = lab.hosts[name]
        d = h.dir / "agent"
        d.mkdir(parents=True, exist_ok=True)
        (d / "token").write_text(TOKEN)
        group = name.rsplit("-", 1)[0]
        lab.spawn(name, [sys.executable, "-m", "peer", "run", "--node", name, "--group", group,
                         "--mesh", "bench", "--backend", "netns", "--data-dir", str(d),
                         "--api", f"{h.ip}:7000", "--listen", f"{h.ip}:6881",
                         "--token-file", str(d / "token"), "--log-file", str(d / "agent.log")],
                  log="agent.out")
        clients[name] = PeerClient(f"{h.ip}:7000", TOKEN, timeout=10)
    try:
        await asyncio.gather(*(_wait_up(c, 60) for c in clients.values()))
        shared = await clients[seeder].share(
            {"synthetic": {"name": CONTENT, "size": plan.size, "seed": SEED},
             "piece_length": plan.piece_length, "hybrid": False})
        seeder_wire = f"{lab.hosts[seeder].ip}:6881"
        swarm = plan.strategy == "swarm"
        body = {"metainfo": shared["metainfo"], "peers": [seeder_wire], "pex": swarm,
                "upload": swarm, "sha256": shared["sha256"]}
        t0 = time.time()
        await asyncio.gather(*(clients[n].fetch(body) for n in leechers))
        infohash = shared["infohash"]
        done: dict[str, float] = {}
        verified: set[str] = set()
        deadline = time.monotonic() + plan.timeout
        while len(verified) < len(leechers) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            for n in leechers:
                if n in verified:
                    continue
                t = await _torrent(clients[n], infohash)
                if t and t.get("complete") and t.get("verified"):
                    verified.add(n)
                    done[n] = float(t.get("completed_at") or time.time())
        seeder_t = await _torrent(clients[seeder], infohash)
    except (PeerError, OSError, KeyError) as exc:
        return Outcome(label, False, None, error=f"{type(exc).__name__}: {exc}")
    completions = sorted(v - t0 for v in done.values())
    ok = len(verified) == len(leechers)
    extra: dict[str, Any] = {}
    if seeder_t and seeder_t.get("uploaded") is not None:
        extra["seeder_copies_uploaded"] = round(int(seeder_t["uploaded"]) / plan.size, 2)
    return Outcome(label, ok, max(completions) if ok else None, completions, len(verified),
                   None if ok else f"{len(leechers) - len(verified)} leechers not verified "
                   f"within {plan.timeout:.0f}s", extra)


async def _wait_up(client: PeerClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.status(timeout=2)
            return
        except (PeerError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _torrent(client: PeerClient, infohash: str) -> Optional[dict[str, Any]]:
    try:
        st = await client.status(timeout=5)
    except (PeerError, OSError):
        return None
    t: Optional[dict[str, Any]] = st.get("torrents", {}).get(infohash)
    return t


def available() -> Optional[str]:
    try:
        import peer  # noqa: F401
    except ImportError:
        return "the peer package is not importable"
    return None if Path(sys.executable).exists() else "no python interpreter"


async def cleanup_stale() -> list[str]:
    """`down` every engine mesh a killed bench left in its MESHBED_HOME."""
    from orchestrator.mesh import Mesh

    home = LAB_HOME / "meshbed-home"
    done = []
    for state_file in sorted(home.glob("*/state.json")):
        name = state_file.parent.name
        try:
            await Mesh.attach(name, home=home).down()
            done.append(name)
        except Exception as exc:  # noqa: BLE001 - keep cleaning the others
            print(f"could not remove mesh {name}: {exc}", file=sys.stderr)
    return done
