"""The report of a simulated run: the keys of `meshbed run`'s report (orchestrator/report.py,
the same distribution and expectation rules) plus what only a simulation has:

- ``"simulated": true``, ``wall_seconds`` and ``events_processed``;
- ``agent_limits``: only with more than ``setup.LARGE_SWARM`` nodes, the caps on
  connections and known addresses every agent ran with (a swarm; client-server fetchers
  are not capped), the HAVE batching interval and
  whether blocks were whole pieces and flows re-shared partially;
- ``distribution.CONTENT.completions``: every fetcher's seconds from the fetch event to its
  completion, sorted (the completion curve);
- ``utilisation``: per virtual second, the swarm's upload used / its capacity (live nodes
  holding a torrent); ``carried``: the same split into ``first`` copies (pieces none of the
  uploader's peers held), further ``copies`` and ``waste`` (the run report has both per
  content).

Synthetic contents are never built, so ``infohash`` and ``sha256`` are null.
"""

from __future__ import annotations

from typing import Any, Optional

from orchestrator.bounds import client_server_bound, lower_bound
from orchestrator.report import _r, check_expectations, distribution
from orchestrator.simulate import setup
from orchestrator.simulate.world import World


def fast_bounds(world: World) -> dict[str, dict[str, Optional[float]]]:
    """orchestrator.bounds.topology_bounds with a name index (it looks nodes up one by one,
    quadratic at 100k nodes)."""
    topo = world.topo
    node = {n.name: n for n in topo.nodes}
    out: dict[str, dict[str, Optional[float]]] = {}
    for name, info in world.contents.items():
        seed_up = [node[n].link.up_bps for n in info.seeders]
        fetch = [node[n] for n in info.fetchers]
        fetch_up = [n.link.up_bps for n in fetch]
        fetch_down = [n.link.down_bps for n in fetch]
        cs = client_server_bound(info.size, seed_up, fetch_down)
        lower = cs if topo.strategy == "client-server" else lower_bound(info.size, seed_up, fetch_up, fetch_down)
        out[name] = {"lower_bound_seconds": lower, "client_server_bound_seconds": cs}
    return out


def build_report(world: World, wall_seconds: float) -> dict[str, Any]:
    topo = world.topo
    backends = topo.backends_used()
    report: dict[str, Any] = {
        "name": topo.name,
        "simulated": True,
        "strategy": topo.strategy,
        "backend": backends[0] if len(backends) == 1 else "+".join(backends),
        "ok": False,
        "contents": {},
        "distribution": {},
        "nodes": {},
    }
    for name, info in world.contents.items():
        report["contents"][name] = {"size": info.size, "chunks": info.pieces, "infohash": None, "sha256": None}
    by_node: dict[str, list[str]] = {}
    for (n, c) in world.fetches:
        by_node.setdefault(n, []).append(c)
    for node in topo.nodes:
        agent = world.agents[node.name]
        entry: dict[str, Any] = {
            "address": f"{agent.ip}:{agent.addr[1]}", "metrics_url": None,
            "group": node.group, "backend": node.backend, "fetches": {},
        }
        for content in sorted(by_node.get(node.name, ())):
            rec = world.fetches[(node.name, content)]
            core = agent.cores.get(content)
            past = rec.past
            bytes_from: dict[str, int] = dict(past.get("bytes_from") or {})
            counters = {k: int(past.get(k, 0)) for k in ("redownloaded", "wasted")}
            if core is not None:
                for k, v in core.bytes_from.items():
                    bytes_from[k] = bytes_from.get(k, 0) + v
                counters = {k: counters[k] + int(getattr(core, k)) for k in counters}
            done = rec.completed is not None
            entry["fetches"][content] = {
                "complete": done,
                "verified": done,
                "seconds": _r(rec.completed - rec.started) if done and rec.completed is not None else None,
                "bytes_from": bytes_from,
                "redownloaded": counters["redownloaded"],
                "resumed_pieces": rec.resumed,
                "wasted": counters["wasted"],
            }
        report["nodes"][node.name] = entry

    bounds = fast_bounds(world)
    efficiencies: dict[str, Optional[float]] = {}
    from_t0: list[Optional[float]] = []
    all_verified = not world.stuck
    for name, info in world.contents.items():
        recs = [r for (n, c), r in world.fetches.items() if c == name]
        started = world.fetch_started.get(name)
        finishes = [r.completed for r in recs]
        b = bounds[name]
        d = distribution(started, finishes, b["lower_bound_seconds"], b["client_server_bound_seconds"])
        d["fetchers"] = len(recs)
        d["verified"] = sum(1 for r in recs if r.completed is not None)
        d["redownloaded_bytes"] = sum(
            int(report["nodes"][r.node]["fetches"][name]["redownloaded"] or 0) for r in recs)
        times = sorted(f - started for f in finishes if f is not None and started is not None)
        d["first_seconds"] = _r(times[0]) if times else None
        seeders = set(info.seeders)
        from_seeders = sum(v for r in recs for k, v in report["nodes"][r.node]["fetches"][name]["bytes_from"].items()
                           if k in seeders)
        d["seeder_copies"] = _r(from_seeders / info.size, 2)
        d["completions"] = [_r(x) for x in times]
        report["distribution"][name] = d
        if recs:
            efficiencies[name] = d["efficiency"]
        all_verified = all_verified and all(r.completed is not None for r in recs)
        from_t0.extend(r.completed for r in recs)
        if len(recs) < len(info.fetchers):  # a fetch the scenario asked for never started
            all_verified = False
    ok, expect = check_expectations(topo.expect.all_complete_within, topo.expect.min_efficiency,
                                    from_t0, efficiencies, all_verified)
    report["ok"] = ok
    report["expect"] = expect
    report["reason"] = world.reason
    report["stuck"] = list(world.stuck)
    report["deploy_seconds"] = None
    report["events"] = world.events
    report["problems"] = []
    report["wall_seconds"] = round(wall_seconds, 3)
    if world.resumed:  # the run went on from a checkpoint: wall_seconds adds up all its parts
        report["checkpoint_resumes"] = world.resumed
    report["events_processed"] = world.clock.events
    cfg = world.core_config
    if len(world.topo.nodes) > setup.LARGE_SWARM:
        report["agent_limits"] = {"max_peers": cfg.max_peers, "max_known": cfg.max_known,
                                  "have_batch_seconds": world.net.have_quantum,
                                  "whole_piece_blocks": cfg.block_seconds >= setup.WHOLE_PIECE_BLOCKS,
                                  "partial_reshare": world.net.partial_reshare}
    report["virtual_seconds"] = round(world.clock.now, 3)
    report["utilisation"] = world.utilisation
    report["carried"] = world.carried
    return report
