"""The run report (DESIGN.md "Report": fixed keys) and the expectations' verdict.

Fixed keys: name, backend, ok, contents{size, chunks, infohash, sha256},
distribution{seconds, lower_bound_seconds, efficiency, client_server_bound_seconds},
nodes{address, metrics_url, fetches{content: {complete, verified, seconds, bytes_from}}}.
Extra keys: strategy, reason, stuck, deploy_seconds, expect, events, problems; per node lost (why
its host went away mid-run, where the backend can tell); per fetch redownloaded,
resumed_pieces, wasted; per content fetchers, verified, redownloaded_bytes, first_seconds,
seeder_copies (copies the seeders uploaded to fetchers; the ideal is near N*u_s/(u_s+sum u_i)),
completions (sorted seconds of every fetcher that verified its copy, from the fetch event),
utilisation (per second from the scenario start: the swarm's upload of this content over the
upload capacity of the nodes up then; [] when some upload is uncapped: no finite capacity),
carried (the same per second split into first copies, further copies and waste), uploads (per
node: bytes uploaded, first copies among them, bytes its receivers dropped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from orchestrator.bounds import topology_bounds
from orchestrator.clients import client_of

if TYPE_CHECKING:
    from orchestrator.mesh import Mesh
    from orchestrator.scenario import PlayResult


def _r(x: Optional[float], nd: int = 3) -> Optional[float]:
    return None if x is None else round(float(x), nd)


def distribution(
    fetch_started: Optional[float], finishes: list[Optional[float]], lower: Optional[float],
    cs: Optional[float],
) -> dict[str, Any]:
    """Seconds from the fetch event to the last verified completion (None if any fetch
    did not complete and verify), efficiency = lower bound / measured."""
    seconds: Optional[float] = None
    if fetch_started is not None and finishes and all(f is not None for f in finishes):
        seconds = max(0.0, max(f for f in finishes if f is not None) - fetch_started)
    eff = (lower / seconds) if (lower is not None and seconds) else None
    return {
        "seconds": _r(seconds),
        "lower_bound_seconds": _r(lower),
        "efficiency": _r(eff),
        "client_server_bound_seconds": _r(cs),
    }


UTIL_POLLS = 3


def utilisation(samples: list[dict[str, Any]], content: str, up_bps: dict[str, Optional[int]]) -> list[float]:
    """Per whole second of the samples: bytes of the content the nodes up uploaded over the
    last UTIL_POLLS polls (their counters) over their upload caps (bits/s in ``up_bps``;
    None = uncapped, then []). A second without a poll repeats the one before. Several polls,
    not one: a poll's time stamp is when the slowest answer came, which jitters by a few
    tenths of a second."""
    return _per_second(samples, content, up_bps, "uploaded")


def carried(samples: list[dict[str, Any]], content: str, up_bps: dict[str, Optional[int]],
            used: list[float]) -> dict[str, list[float]]:
    """What the upload of ``utilisation`` (``used``) carried, per second, as shares of the same
    capacity: ``first`` copies (pieces none of the uploader's peers held), ``waste`` (bytes
    their receivers dropped: end-game copies that lost the race), ``copies`` (the rest).
    Client nodes do not tell first copies: theirs count as copies."""
    if not used:
        return {}
    first = _per_second(samples, content, up_bps, "first")
    waste = _per_second(samples, content, up_bps, "wasted")
    n = len(used)
    first, waste = (first + [0.0] * n)[:n], (waste + [0.0] * n)[:n]
    copies = [round(max(0.0, u - f - w), 3) for u, f, w in zip(used, first, waste)]
    return {"first": first, "copies": copies, "waste": waste}


def _per_second(samples: list[dict[str, Any]], content: str, up_bps: dict[str, Optional[int]],
                counter: str) -> list[float]:
    """Per whole second: the nodes' ``counter`` of ``content`` (bytes) over their upload caps."""
    last: dict[str, list[tuple[float, int]]] = {}  # node -> its last polls (t, counter)
    polls: dict[float, list[float]] = {}  # t -> [bytes/s, bytes/s capacity]
    for row in samples:
        node, t = str(row.get("node")), float(row["t"])
        if not row.get("up"):
            last.pop(node, None)  # a restarted agent counts from zero again
            continue
        cap = up_bps.get(node)
        if cap is None:
            return []
        value = int(((row.get("contents") or {}).get(content) or {}).get(counter) or 0)
        acc = polls.setdefault(t, [0.0, 0.0])
        acc[1] += cap / 8.0
        hist = last.setdefault(node, [])
        if hist and t > hist[0][0]:
            acc[0] += max(0, value - hist[0][1]) / (t - hist[0][0])
        hist.append((t, value))
        del hist[:-UTIL_POLLS]
    by_second: dict[int, list[float]] = {}
    for t, (used, total) in polls.items():
        if total > 0:
            by_second.setdefault(int(t), []).append(used / total)
    out: list[float] = []
    prev_u = 0.0
    for sec in range((max(by_second) + 1) if by_second else 0):
        if sec in by_second:
            prev_u = sum(by_second[sec]) / len(by_second[sec])
        out.append(round(prev_u, 3))
    return out


def uploads(samples: list[dict[str, Any]], content: str,
            hosts: Optional[dict[str, str]] = None) -> dict[str, dict[str, Optional[int]]]:
    """Per node, from its last poll (since its agent's last start): bytes of ``content`` it
    uploaded, how many were first copies (None: a client node does not tell), and how many
    its receivers dropped as waste (a sender that proved no node name is known by its
    address: ``hosts`` maps IPs to nodes)."""
    hosts = hosts or {}
    last: dict[str, dict[str, Any]] = {}
    for row in samples:
        c = ((row.get("contents") or {}).get(content)) if row.get("up") else None
        if c is not None:
            last[str(row.get("node"))] = c
    wasted_by: dict[str, int] = {}
    for c in last.values():
        for src, n in (c.get("wasted_from") or {}).items():
            src = hosts.get(src, hosts.get(src.rpartition(":")[0], src))
            wasted_by[src] = wasted_by.get(src, 0) + int(n)
    return {node: {"bytes": int(c.get("uploaded") or 0),
                   "first": None if c.get("first") is None else int(c["first"]),
                   "wasted": wasted_by.get(node, 0)}
            for node, c in sorted(last.items())}


def check_expectations(
    expect_within: Optional[float], min_efficiency: Optional[float],
    fetch_seconds_from_t0: list[Optional[float]], efficiencies: dict[str, Optional[float]],
    all_verified: bool,
) -> tuple[bool, dict[str, Any]]:
    """ok = every fetch verified and every stated expectation met."""
    out: dict[str, Any] = {"all_verified": all_verified}
    ok = all_verified
    if expect_within is not None:
        worst = None
        if fetch_seconds_from_t0 and all(s is not None for s in fetch_seconds_from_t0):
            worst = max(s for s in fetch_seconds_from_t0 if s is not None)
        met = worst is not None and worst <= expect_within
        out["all_complete_within"] = {"limit": expect_within, "worst": _r(worst), "met": met}
        ok = ok and met
    if min_efficiency is not None:
        vals = {k: v for k, v in efficiencies.items()}
        met = bool(vals) and all(v is not None and v >= min_efficiency for v in vals.values())
        out["min_efficiency"] = {"limit": min_efficiency, "values": vals, "met": met}
        ok = ok and met
    return ok, out


def _bytes_from(torrent: dict[str, Any], hosts: dict[str, str]) -> Optional[dict[str, int]]:
    """Bytes received per peer node; a client node reports remote addresses (named here by
    the node behind them) or nothing (None: its client does not say)."""
    if "bytes_from" in torrent and torrent["bytes_from"] is None:
        return None
    got = torrent.get("bytes_from") or {}
    return {hosts.get(k, k): int(v) for k, v in got.items()}


def build_report(mesh: Mesh) -> dict[str, Any]:
    topo = mesh.topology
    res: Optional[PlayResult] = mesh.result
    assert topo is not None and mesh.state is not None
    bounds = topology_bounds(topo)
    backends = topo.backends_used()
    report: dict[str, Any] = {
        "name": topo.name,
        "strategy": topo.strategy,
        "backend": backends[0] if len(backends) == 1 else "+".join(backends),
        "ok": False,
        "contents": {},
        "distribution": {},
        "nodes": {},
    }
    fetches = res.fetches if res else {}
    hosts = {ep.wire.rpartition(":")[0]: n for n, ep in mesh.endpoints.items()}  # -> node
    for name, c in mesh.contents.items():
        report["contents"][name] = {
            "size": c.size, "chunks": c.chunks, "infohash": c.infohash, "sha256": c.sha256,
        }
    for node in topo.nodes:
        ep = mesh.endpoints.get(node.name)
        entry: dict[str, Any] = {
            "address": ep.api if ep else None,
            "metrics_url": ep.metrics_url if ep else None,
            "group": node.group,
            "backend": node.backend,
            "client": client_of(node.options),
            "fetches": {},
        }
        for (n, content), fs in sorted(fetches.items()):
            if n != node.name:
                continue
            started = res.fetch_started.get(content) if res else None
            secs = (fs.finished_wall - started) if (fs.finished_wall and started) else None
            t = fs.torrent
            entry["fetches"][content] = {
                "complete": fs.complete,
                "verified": bool(fs.verified),
                "seconds": _r(secs),
                "bytes_from": _bytes_from(t, hosts),
                "redownloaded": t.get("redownloaded"),
                "resumed_pieces": t.get("resumed_pieces"),
                "wasted": t.get("wasted"),
            }
        lost = getattr(mesh, "lost", {})
        if node.name in lost:  # its host went away mid-run (see "problems")
            entry["lost"] = lost[node.name]
        report["nodes"][node.name] = entry

    efficiencies: dict[str, Optional[float]] = {}
    from_t0: list[Optional[float]] = []
    all_verified = res is not None and not res.stuck
    for name in mesh.contents:
        fs_list = [fs for (n, cn), fs in fetches.items() if cn == name]
        b = bounds.get(name, {})
        started = res.fetch_started.get(name) if res else None
        finishes = [fs.finished_wall if fs.verified else None for fs in fs_list]
        d = distribution(started, finishes, b.get("lower_bound_seconds"), b.get("client_server_bound_seconds"))
        d["fetchers"] = len(fs_list)
        d["verified"] = sum(1 for fs in fs_list if fs.verified)
        d["redownloaded_bytes"] = sum(int(fs.torrent.get("redownloaded") or 0) for fs in fs_list)
        done = [f - started for f in finishes if f is not None and started is not None]
        d["first_seconds"] = _r(min(done)) if done else None  # spread = seconds - first_seconds
        d["completions"] = [_r(x) for x in sorted(done)]
        samples = res.samples if res else []
        up_bps = {n.name: n.link.up_bps for n in topo.nodes}
        d["utilisation"] = utilisation(samples, name, up_bps)
        d["carried"] = carried(samples, name, up_bps, d["utilisation"])
        d["uploads"] = uploads(samples, name, hosts)
        seeders = set(topo.content(name).seeders)
        from_seeders = sum(int(v) for fs in fs_list for k, v in (_bytes_from(fs.torrent, hosts) or {}).items()
                           if k in seeders)
        d["seeder_copies"] = _r(from_seeders / mesh.contents[name].size, 2)
        report["distribution"][name] = d
        if fs_list:
            efficiencies[name] = d["efficiency"]
        all_verified = all_verified and all(fs.complete and fs.verified for fs in fs_list)
        for fs in fs_list:
            from_t0.append((fs.finished_wall - res.t0) if (res and fs.finished_wall and fs.verified) else None)
    # Every fetch the scenario asked for must exist (a node that never got its POST counts as failed).
    wanted = {(n, ev_c) for ev_c in mesh.contents for n in topo.fetchers(ev_c)
              if n not in topo.content(ev_c).seeders}
    if not wanted <= set(fetches):
        all_verified = False
    ok, expect = check_expectations(
        topo.expect.all_complete_within, topo.expect.min_efficiency, from_t0, efficiencies, all_verified,
    )
    report["ok"] = ok
    report["expect"] = expect
    report["reason"] = res.reason if res else None
    report["stuck"] = list(res.stuck) if res else []
    report["deploy_seconds"] = _r(mesh.deploy_seconds)
    report["events"] = res.events if res else []
    report["problems"] = res.problems if res else []
    return report


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
