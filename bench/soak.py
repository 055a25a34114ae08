"""Bounded soak: a mesh under continuous churn, link changes, partitions and bad input while
many contents spread through it, one after another.

    python3 bench/soak.py [--minutes 10] [--peers 30] [--backend local|netns] [--seed 1]
                          [--hostile K] [--json FILE]

The timeline is generated (seeded) as an ordinary topology and played by the scenario
engine: a new content is fetched by every leecher every ``wave`` seconds; every few seconds
a leecher is SIGKILLed and started again 2-6 s later, links of random nodes change, and now
and then the mesh is split in two for a few seconds. Alongside, a prober throws bad input at
random agents (no token, bad JSON, paths outside the data dir, oversized bodies, garbage on
the wire port) and a sampler reads every agent's RSS and open file descriptors.

Prints: fetches completed and verified, verified bytes, failures (must be 0), faults injected
and survived, bad inputs tried and refused, bytes lost across restarts (verified chunks an
agent held before a kill and did not find again: must be 0), re-downloaded bytes, and per
long-lived agent the RSS first/last/max and slope (MiB/min) and fd first/last/max.
Exit status 0 when failures, lost bytes and unexpected answers are all 0.

``--hostile K`` adds K raw-socket attackers of every kind (bench/_hostile.py: impostors
claiming other nodes' names, corrupt answerers, protocol violators, idle connection hoarders,
request flooders that never read, PEX spammers) hitting random agents throughout, and prints
honest nodes banned by anyone (goal 0) and the agents' peak RSS (goal < 64 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._hostile import HostileCrowd  # noqa: E402
from orchestrator.loader import load_topology  # noqa: E402
from orchestrator.mesh import Mesh  # noqa: E402

SIZES_MIB = (1, 2, 4)
# Same pid but a start time this much later = a new agent (containers reuse pids). Polls can
# be late by a second or two; a restart in the soak is at least 2 s after the kill.
RESTART_GAP = 3.0
SEEDERS = 2


# --- the generated topology ------------------------------------------------------------------
def build_doc(args: argparse.Namespace, name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Topology + counts of injected faults by kind."""
    rng = random.Random(args.seed)
    span = args.minutes * 60.0
    leechers = args.peers - SEEDERS
    contents = max(3, int(span // args.wave))
    doc: dict[str, Any] = {
        "name": name, "backend": args.backend, "seed": args.seed,
        "defaults": {"link": {"up": "8mbit", "down": "40mbit"}},
        "groups": {"seeders": {"count": SEEDERS, "link": {"up": "24mbit"}},
                   "leechers": {"count": leechers}},
        "content": {}, "scenario": [],
        "timeout": f"{int(span + args.grace)}s",
        "expect": {"all_complete_within": f"{int(span + args.grace - 5)}s"},
    }
    events: list[dict[str, Any]] = []
    for i in range(contents):
        cname = f"c{i:02d}"
        doc["content"][cname] = {"size": f"{SIZES_MIB[i % len(SIZES_MIB)]}MiB",
                                 "seeders": [f"seeders-{i % SEEDERS}"]}
        events.append({"at": f"{i * args.wave:.1f}s", "fetch": {"content": cname, "by": "leechers"}})
    faults = {"kill": 0, "link": 0, "partition": 0}
    busy_until: dict[int, float] = {}
    split_until = 0.0
    t = 3.0
    end = span - 8.0  # let the last faults end before the last content's grace period
    while t < end:
        roll = rng.random()
        if roll < 0.5:  # crash a leecher, bring it back 2-6 s later
            free = [i for i in range(leechers) if busy_until.get(i, 0.0) < t]
            if free:
                i = rng.choice(free)
                back = t + rng.uniform(2.0, 6.0)
                busy_until[i] = back + 1.0
                events.append({"at": f"{t:.2f}s", "kill": f"leechers-{i}"})
                events.append({"at": f"{back:.2f}s", "start": f"leechers-{i}"})
                faults["kill"] += 1
        elif roll < 0.85:  # change the links of a few nodes
            picked = sorted(rng.sample(range(leechers), min(3, leechers)))
            sel = [f"leechers-{i}" for i in picked]
            events.append({"at": f"{t:.2f}s", "link": {
                "nodes": sel, "up": f"{rng.choice([2, 4, 8, 16])}mbit",
                "latency": f"{rng.choice([0, 5, 20, 50])}ms"}})
            faults["link"] += 1
        elif t > split_until + 10.0 and t + 6.0 < end:  # split the mesh in two for 3-6 s
            half = leechers // 2
            heal = t + rng.uniform(3.0, 6.0)
            events.append({"at": f"{t:.2f}s", "partition": [
                ["seeders", f"leechers[0:{half}]"], [f"leechers[{half}:]"]]})
            events.append({"at": f"{heal:.2f}s", "heal": True})
            split_until = heal
            faults["partition"] += 1
        t += rng.uniform(args.fault_every * 0.5, args.fault_every * 1.5)
    doc["scenario"] = events
    return doc, faults


# --- the sampler: RSS and fds of every agent, pieces held per restart ------------------------
class Sampler:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        # (node, pid) -> [(minutes, RSS MiB, fds, fds not explained by torrents and peers)]
        self.series: dict[tuple[str, int], list[tuple[float, float, int, int]]] = {}
        # node -> (pid, start time, {infohash: (pieces held, piece length)}) at the last poll
        self.last_have: dict[str, tuple[int, float, dict[str, tuple[int, int]]]] = {}
        self.lost_bytes = 0
        self.restarts_checked = 0
        self.t0 = time.monotonic()

    def sample(self, statuses: dict[str, Optional[dict[str, Any]]]) -> None:
        now = (time.monotonic() - self.t0) / 60.0
        for node, st in statuses.items():
            if not st:
                continue
            pid = int(st.get("pid") or 0)
            born = time.time() - float(st.get("uptime") or 0.0)  # when this agent started
            torrents = st.get("torrents", {})
            prev = self.last_have.get(node)
            new = prev is not None and (prev[0] != pid or abs(born - prev[1]) > RESTART_GAP)
            if prev is not None and new:
                # restarted (new pid, or the same pid in a fresh container): did it find what it had?
                self.restarts_checked += 1
                for ih, (had, plen) in prev[2].items():
                    t = torrents.get(ih)
                    if t is not None:
                        found = int(t.get("resumed_pieces") or 0)
                        self.lost_bytes += max(0, had - found) * plen
            self.last_have[node] = (pid, born if prev is None or new else prev[1], {
                ih: (int(t.get("have") or 0), int(t.get("piece_length") or 0))
                for ih, t in torrents.items()})
            rss, fds = proc_usage(pid)
            if rss is not None:
                # Each torrent holds two files (payload, journal) and one socket per peer: what
                # is left over is the agent's own (log, listeners, loop): it must stay flat.
                explained = sum(2 + int(t.get("peers") or 0) for t in torrents.values())
                self.series.setdefault((node, pid), []).append((now, rss, fds, fds - explained))


def proc_usage(pid: int) -> tuple[Optional[float], int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None, 0
    return rss / 1024.0, fds


def slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0


# --- the prober: bad input at random agents ----------------------------------------------------
class Prober:
    def __init__(self, mesh: Mesh, rng: random.Random) -> None:
        self.mesh = mesh
        self.rng = rng
        self.tried = 0
        self.refused = 0
        self.unexpected: list[str] = []

    async def probe_once(self) -> None:
        state = self.mesh.state
        assert state is not None
        live = [n for n in state.nodes if n not in self.mesh.dead]
        if not live:
            return
        node = self.rng.choice(live)
        api, wire = state.nodes[node]["api"], state.nodes[node]["wire"]
        kind = self.rng.choice(["no_token", "wrong_token", "bad_json", "escape", "big", "wire"])
        if kind == "big" and self.rng.random() > 0.2:
            kind = "no_token"  # an 8 MiB body now and then is enough
        self.tried += 1
        try:
            if kind == "wire":
                # beyond MSE's sync window (96 + 512 + 20 bytes): shorter garbage may still be
                # the start of an encrypted handshake, which the agent rightly waits for
                ok = await asyncio.to_thread(wire_garbage, wire, self.rng.randbytes(800))
                want = "closed"
                got = "closed" if ok else "open"
            else:
                token = {"no_token": None, "wrong_token": "x" * 32}.get(kind, state.token)
                body: Any = {"metainfo": "AAAA", "peers": []}
                path, want = "/fetch", {"no_token": "401", "wrong_token": "401"}.get(kind, "400")
                if kind == "escape":
                    path, body = "/share", {"file": self.rng.choice(
                        ["../../../etc/passwd", "/etc/passwd", "inbox/../../x", "torrents/../../../x"])}
                elif kind == "big":
                    body, want = {"peers": ["x" * (8 << 20)]}, "413"
                elif kind == "bad_json":
                    body = None
                got = await raw_post(api, path, body, token)
            if got == want:
                self.refused += 1
            elif got != "unreachable":  # the node may have been killed since we picked it
                self.unexpected.append(f"{node} {kind}: wanted {want}, got {got}")
        except Exception as exc:  # noqa: BLE001 - a probe must never end the soak
            self.unexpected.append(f"{node} {kind}: {type(exc).__name__}: {exc}")


async def raw_post(api: str, path: str, body: Any, token: Optional[str]) -> str:
    host, _, port = api.rpartition(":")
    data = b"{not json" if body is None else json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {api}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
    except (OSError, asyncio.TimeoutError):
        return "unreachable"
    try:
        writer.write(head.encode() + b"\r\n")
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError:
            pass  # refused before the whole body was read (413): the answer is waiting
        line = await asyncio.wait_for(reader.readline(), 10)
        parts = line.split()
        return parts[1].decode() if len(parts) > 1 else "no answer"
    except (OSError, asyncio.TimeoutError):
        return "unreachable"
    finally:
        writer.close()


def wire_garbage(wire: str, noise: bytes) -> bool:
    """Garbage instead of a handshake: the agent must close the connection."""
    host, _, port = wire.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(noise)
            s.settimeout(5)
            while s.recv(4096):
                pass
        return True
    except ConnectionError:
        return True
    except OSError:
        return False


# --- main --------------------------------------------------------------------------------------
async def soak(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    name = f"soak-{os.getpid() % 100000}"
    doc, faults = build_doc(args, name)
    topo_path = home / f"{name}.yaml"
    topo_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    topo = load_topology(topo_path)
    mesh = Mesh(topo, home=home, say=(lambda m: print(f"  {m}", flush=True)) if args.verbose else (lambda m: None))
    sampler = Sampler(mesh)
    prober = Prober(mesh, random.Random(args.seed + 1))
    crowd = HostileCrowd(args.hostile, args.seed + 2)

    def on_sample(statuses: dict[str, Optional[dict[str, Any]]]) -> None:
        sampler.sample(statuses)
        crowd.update(statuses)

    t_start = time.monotonic()
    print(f"soak: {args.peers} peers ({args.backend}), {len(doc['content'])} contents, "
          f"{args.minutes:g} min, faults planned {faults}", flush=True)
    try:
        await mesh.up()
        deploy = time.monotonic() - t_start

        async def background() -> None:
            while True:
                await asyncio.sleep(1.0)
                await prober.probe_once()

        bg = asyncio.ensure_future(background())
        crowd.start()
        try:
            await mesh.play(on_sample=lambda sample: on_sample(sample.statuses))
        finally:
            await asyncio.to_thread(crowd.stop)
            bg.cancel()
            await asyncio.gather(bg, return_exceptions=True)
        final = await mesh.statuses()
        sampler.sample(final)
        report = mesh.report()
        hostile = hostile_figures(final, crowd)
    finally:
        await asyncio.shield(mesh.down())
    out = summarize(args, report, faults, sampler, prober, deploy, time.monotonic() - t_start)
    out["hostile"] = hostile
    peaks = [p[1] for pts in sampler.series.values() for p in pts] + hostile.pop("hwm", [])
    out["peak_rss_mib"] = round(max(peaks), 1) if peaks else None
    return out


def hostile_figures(statuses: dict[str, Optional[dict[str, Any]]],
                    crowd: HostileCrowd) -> dict[str, Any]:
    """Honest nodes banned by any agent (by name or wire address), the attacks made, and
    each live agent's peak RSS (VmHWM)."""
    wires = {st["wire"]: n for n, st in statuses.items() if st and st.get("wire")}
    banned: set[str] = set()
    hwm: list[float] = []
    for st in statuses.values():
        if not st:
            continue
        b = st.get("banned") or {}
        banned |= {n for n in b.get("nodes", []) if n in statuses}
        banned |= {wires[a] for a in b.get("addrs", []) if a in wires}
        try:
            text = Path(f"/proc/{int(st.get('pid') or 0)}/status").read_text()
            hwm += [int(x.split()[1]) / 1024.0 for x in text.splitlines() if x.startswith("VmHWM:")]
        except OSError:
            pass
    return {"attackers": crowd.k, "attacks": dict(crowd.attacks), "honest_banned": sorted(banned),
            "hwm": hwm}


def summarize(args: argparse.Namespace, report: dict[str, Any], faults: dict[str, int],
              sampler: Sampler, prober: Prober, deploy: float, total: float) -> dict[str, Any]:
    sizes = {c: v["size"] for c, v in report["contents"].items()}
    fetches = [(n, c, f) for n, node in report["nodes"].items() for c, f in node["fetches"].items()]
    verified = [(n, c) for n, c, f in fetches if f["complete"] and f["verified"]]
    wanted = sum(d["fetchers"] for d in report["distribution"].values())
    failures = wanted - len(verified) + len(report["problems"])
    failed_events = sum(1 for p in report["problems"] if p.startswith("event"))
    injected = sum(faults.values())
    agents = []
    for (node, pid), pts in sorted(sampler.series.items()):
        if len(pts) < 3 or pts[-1][0] - pts[0][0] < args.minutes * 0.6:
            continue  # a restarted agent's short life says nothing about leaks
        rss = [p[1] for p in pts]
        fds = [p[2] for p in pts]
        late = [(p[0], p[1]) for p in pts if p[0] >= (pts[0][0] + pts[-1][0]) / 2]
        agents.append({"node": node, "pid": pid, "rss_first": round(rss[0], 1), "rss_last": round(rss[-1], 1),
                       "rss_max": round(max(rss), 1),
                       "rss_slope_mib_per_min": round(slope([(p[0], p[1]) for p in pts]), 2),
                       "rss_slope_2nd_half": round(slope(late), 2),
                       "fd_first": fds[0], "fd_last": fds[-1], "fd_max": max(fds),
                       "fd_slope_per_min": round(slope([(p[0], float(p[2])) for p in pts]), 2),
                       "fd_other_first": pts[0][3], "fd_other_last": pts[-1][3],
                       "fd_other_max": max(p[3] for p in pts),
                       "fd_other_slope": round(slope([(p[0], float(p[3])) for p in pts]), 2)})
    out = {
        "peers": args.peers, "backend": args.backend, "minutes": args.minutes, "seed": args.seed,
        "deploy_seconds": round(deploy, 1), "total_seconds": round(total, 1),
        "reason": report["reason"], "ok": report["ok"],
        "fetches_wanted": wanted, "fetches_verified": len(verified),
        "verified_bytes": sum(sizes[c] for _, c in verified),
        "failures": failures, "problems": report["problems"][:10],
        "faults_injected": injected, "faults_by_kind": faults, "faults_survived": injected - failed_events,
        "restarts_checked": sampler.restarts_checked, "bytes_lost": sampler.lost_bytes,
        "redownloaded_bytes": sum(d["redownloaded_bytes"] for d in report["distribution"].values()),
        "bad_inputs_tried": prober.tried, "bad_inputs_refused": prober.refused,
        "bad_input_unexpected": prober.unexpected[:10],
        "agents": agents,
    }
    return out


def print_summary(s: dict[str, Any]) -> None:
    print(f"\nsoak {s['peers']} peers on {s['backend']}, {s['minutes']:g} min (+ deploy {s['deploy_seconds']} s,"
          f" total {s['total_seconds']} s), ended: {s['reason']}")
    print(f"fetches verified     {s['fetches_verified']}/{s['fetches_wanted']}  "
          f"({s['verified_bytes'] / 2**20:.0f} MiB verified)")
    print(f"failures             {s['failures']}  {s['problems'] or ''}")
    print(f"faults injected      {s['faults_injected']} {s['faults_by_kind']}, survived {s['faults_survived']}")
    print(f"restarts checked     {s['restarts_checked']}, bytes lost {s['bytes_lost']}, "
          f"re-downloaded bytes {s['redownloaded_bytes']}")
    print(f"bad inputs tried     {s['bad_inputs_tried']}, refused as expected {s['bad_inputs_refused']}"
          f"{', unexpected: ' + str(s['bad_input_unexpected']) if s['bad_input_unexpected'] else ''}")
    h = s.get("hostile") or {}
    if h.get("attackers"):
        print(f"hostile peers        {h['attackers']}, attacks {h['attacks']}")
        print(f"honest nodes banned  {len(h['honest_banned'])} {h['honest_banned'] or ''} (goal 0)")
    print(f"agent peak RSS       {s.get('peak_rss_mib')} MiB (goal < 64 under attack)")
    if s["agents"]:
        print(f"\n{'agent':<14}{'pid':>8}{'rss first':>11}{'last':>8}{'max':>8}{'MiB/min':>9}{'2nd half':>9}"
              f"{'fd first':>10}{'last':>6}{'max':>6}{'fd/min':>8}{'other fd':>10}{'last':>6}{'/min':>7}")
        for a in s["agents"]:
            print(f"{a['node']:<14}{a['pid']:>8}{a['rss_first']:>11}{a['rss_last']:>8}{a['rss_max']:>8}"
                  f"{a['rss_slope_mib_per_min']:>9}{a['rss_slope_2nd_half']:>9}{a['fd_first']:>10}{a['fd_last']:>6}{a['fd_max']:>6}"
                  f"{a['fd_slope_per_min']:>8}{a['fd_other_first']:>10}{a['fd_other_last']:>6}"
                  f"{a['fd_other_slope']:>7}")
        slopes = sorted(a["rss_slope_mib_per_min"] for a in s["agents"])
        late = sorted(a["rss_slope_2nd_half"] for a in s["agents"])
        fds = [a["fd_slope_per_min"] for a in s["agents"]]
        other = sorted(a["fd_other_slope"] for a in s["agents"])
        print(f"RSS slope over {len(slopes)} long-lived agents: median {slopes[len(slopes) // 2]}, "
              f"max {slopes[-1]} MiB/min (2nd half: median {late[len(late) // 2]}, max {late[-1]}); "
              f"fd slope max {max(fds)}/min; fds beyond 2 per torrent + 1 per peer: slope median "
              f"{other[len(other) // 2]}, max {other[-1]}/min")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--peers", type=int, default=30)
    p.add_argument("--backend", default="local", choices=["local", "netns"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--wave", type=float, default=30.0, help="seconds between new contents")
    p.add_argument("--fault-every", type=float, default=4.0, help="mean seconds between faults")
    p.add_argument("--grace", type=float, default=120.0, help="seconds after the last wave to finish")
    p.add_argument("--hostile", type=int, default=0, metavar="K",
                   help="K raw-socket attackers of every kind (bench/_hostile.py)")
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    if args.peers < SEEDERS + 2:
        p.error(f"--peers must be at least {SEEDERS + 2}")
    with tempfile.TemporaryDirectory(prefix="meshbed-soak-") as d:
        summary = asyncio.run(soak(args, Path(d)))
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    bad = (summary["failures"] or summary["bytes_lost"] or summary["bad_input_unexpected"]
           or summary["hostile"]["honest_banned"])
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
