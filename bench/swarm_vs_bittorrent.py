"""meshbed against real BitTorrent clients on the very same emulated network.

Hosts are network namespaces on one Linux bridge with tbf-shaped access links (the netns
backend's plumbing): 1 seeder (up 40 mbit) and N leechers (up 10 mbit, down 50 mbit; case
hetero: half "fast" up 20 / down 80 mbit, half "slow" up 4 / down 16 mbit),
one file in 256 KiB pieces, v1 torrents, opentracker as the BitTorrent clients' tracker.
Time = from starting the leechers until the last one holds a complete copy whose SHA-256
matches (the external clients' files are hashed after the clock stops). Lower bound =
max(F/u_s, F/d_min, N·F/(u_s+Σu_i)); efficiency = bound / time. Every lab host knows every
other's MAC address from the start (bench/_netlab.py: a flash crowd's ARP is otherwise lost
on this emulation host, and external clients waited out connect timeouts).

    sudo python3 bench/swarm_vs_bittorrent.py                      # 1 + 16, 64 MiB, all
    sudo python3 bench/swarm_vs_bittorrent.py --case large         # 1 + 64, 32 MiB
    sudo python3 bench/swarm_vs_bittorrent.py --case hetero        # 8 fast + 8 slow, 32 MiB
    sudo python3 bench/swarm_vs_bittorrent.py --scalability        # N = 4..64, meshbed
    sudo python3 bench/swarm_vs_bittorrent.py --contestants aria2,aria2@meshbed   # product vs alone

Writes bench/results/swarm_vs_bittorrent[-large|-scalability].json and an SVG chart
(pure Python). Root only. Ctrl-C (or SIGTERM) still removes every namespace and process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._netlab import LAB_HOME, Lab, install_sigterm_as_interrupt  # noqa: E402
from bench.contestants import (  # noqa: E402
    Outcome,
    Swarm,
    aria2,
    libtorrent_swarm,
    meshbed,
    opentracker,
    transmission,
)
from bench.svgchart import cdf_chart, line_chart  # noqa: E402
from orchestrator.backends.netns import NetnsBackend  # noqa: E402
from orchestrator.bounds import client_server_bound, lower_bound  # noqa: E402
from orchestrator.model import Link  # noqa: E402
from orchestrator.units import parse_size  # noqa: E402

MBIT = 1_000_000
SEEDER_UP, LEECHER_UP, LEECHER_DOWN = 40 * MBIT, 10 * MBIT, 50 * MBIT
RESULTS = Path(__file__).resolve().parent / "results"
PRODUCT = "@meshbed"  # "aria2@meshbed": that client as `client:` nodes through `meshbed run`
EXTERNAL = {
    "libtorrent": libtorrent_swarm,
    "aria2": aria2,
    "transmission": transmission,
}


HETERO = ((20 * MBIT, 80 * MBIT), (4 * MBIT, 16 * MBIT))  # fast, slow: (up, down)
Classes = tuple[tuple[str, int, int, int], ...]  # (group, count, up, down)


def leecher_classes(case: str, n: int) -> Classes:
    if case == "hetero":
        (fu, fd), (su, sd) = HETERO
        return (("fast", n - n // 2, fu, fd), ("slow", n // 2, su, sd))
    return (("leechers", n, LEECHER_UP, LEECHER_DOWN),)


def bounds(n: int, size: int, classes: Classes = ()) -> tuple[float, float]:
    classes = classes or leecher_classes("default", n)
    ups = [up for _, count, up, _ in classes for _ in range(count)]
    downs = [down for _, count, _, down in classes for _ in range(count)]
    lo = lower_bound(size, [SEEDER_UP], ups, downs)
    cs = client_server_bound(size, [SEEDER_UP], downs)
    assert lo is not None and cs is not None
    return lo, cs


def make_content(size: int, piece_length: int, tracker: str) -> tuple[Path, Path, str, str]:
    """Synthetic file + v1 torrent announcing to ``tracker``: (file, torrent, sha256, infohash)."""
    import libtorrent as lt

    from peer import synthetic

    d = LAB_HOME / "content"
    d.mkdir(parents=True, exist_ok=True)
    path = d / meshbed.CONTENT
    sha = synthetic.write_file(path, meshbed.SEED, meshbed.CONTENT, size)
    fs = lt.file_storage()
    fs.add_file(path.name, size)
    with warnings.catch_warnings():  # the file_storage constructor is deprecated in 2.1
        warnings.simplefilter("ignore", DeprecationWarning)
        ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only)
    ct.add_tracker(tracker)
    ct.set_creator("meshbed bench")
    lt.set_piece_hashes(ct, str(d))
    torrent = d / "movie.torrent"
    torrent.write_bytes(lt.bencode(ct.generate()))
    infohash = str(lt.torrent_info(str(torrent)).info_hashes().v1)
    return path, torrent, sha, infohash


def cpu_times() -> list[int]:
    """Aggregate /proc/stat jiffies: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def cpu_usage(before: list[int], after: list[int]) -> dict[str, float]:
    """Share of all cores busy over the run, and how much of that was in the kernel
    (system + irq + softirq: bridge, netfilter, tbf, TCP)."""
    d = [b - a for a, b in zip(before, after)]
    total = sum(d) or 1
    busy = total - d[3] - d[4]
    kernel = d[2] + d[5] + d[6]
    return {"cpu_busy": round(busy / total, 3), "cpu_kernel_share": round(kernel / (busy or 1), 3)}


def summarize(outs: list[Outcome], bound: float) -> dict[str, Any]:
    times = [o.seconds for o in outs if o.ok and o.seconds]
    best = min(outs, key=lambda o: (not o.ok, o.seconds or 1e9))
    med = statistics.median(times) if times else None
    return {
        "runs": len(outs),
        "ok_runs": len(times),
        "seconds": round(med, 2) if med else None,
        "efficiency": round(bound / med, 3) if med else None,
        "first_leecher_seconds": round(best.completions[0], 2) if best.completions else None,
        "spread_seconds": (round(best.completions[-1] - best.completions[0], 2)
                           if len(best.completions) > 1 else None),
        "verified": best.verified,
        "completions": [round(c, 3) for c in best.completions],
        "errors": [o.error for o in outs if o.error],
        **{k: v for k, v in best.extra.items()},
    }


async def one_case(args: argparse.Namespace, n: int, size: int, wanted: list[str]) -> dict[str, Any]:
    classes = leecher_classes(args.case, n)
    lo, cs = bounds(n, size, classes)
    plan = meshbed.Plan(n, size, args.piece, SEEDER_UP, LEECHER_UP, LEECHER_DOWN, args.timeout,
                        classes=classes if args.case == "hetero" else ())
    kinds = ", ".join(f"{count} {group} (up {up / MBIT:g} / down {down / MBIT:g} mbit)"
                      for group, count, up, down in classes)
    print(f"case: 1 seeder + {kinds}, {size / 2**20:g} MiB, {args.piece // 1024} KiB pieces;"
          f" lower bound {lo:.2f}s, client-server bound {cs:.2f}s", flush=True)
    lab = Lab("bench-lab")
    results: dict[str, list[Outcome]] = {c: [] for c in wanted}
    try:
        hosts = [("seeders-0", "seeders", Link(up_bps=SEEDER_UP, down_bps=LEECHER_DOWN))]
        hosts += [(f"{group}-{i}", group, Link(up_bps=up, down_bps=down))
                  for group, count, up, down in classes for i in range(count)]
        t = time.monotonic()
        await lab.open(hosts)
        print(f"  lab of {n + 1} namespaces up in {time.monotonic() - t:.1f}s", flush=True)
        seeder, leechers = "seeders-0", tuple(h for h, _, _ in hosts[1:])
        tracker = f"http://{lab.hosts[seeder].ip}:{opentracker.PORT}/announce"
        content, torrent, sha, infohash = await asyncio.to_thread(
            make_content, size, args.piece, tracker)
        for run in range(args.runs):
            for c in wanted:
                lab.reset_dirs()
                cpu0 = cpu_times()
                if c == "meshbed" and args.meshbed_via == "engine":
                    out = await meshbed.run_engine(plan)
                elif c == "meshbed":
                    out = await meshbed.run_agents(plan, lab, seeder, leechers)
                elif c.endswith(PRODUCT):  # the same client as `client:` nodes of `meshbed run`
                    await lab.kill_all()
                    out = await meshbed.run_engine(plan, f"bench-{c[:-len(PRODUCT)][:8]}",
                                                   c[:-len(PRODUCT)])
                else:
                    await opentracker.start(lab, seeder, infohash)
                    swarm = Swarm(lab, seeder, leechers, content, torrent, meshbed.CONTENT, sha,
                                  size, args.piece, tracker, args.timeout)
                    out = await EXTERNAL[c].run(swarm)
                out.extra.update(cpu_usage(cpu0, cpu_times()))
                await lab.kill_all()
                results[c].append(out)
                print(f"  run {run + 1} {out.contestant:<28} "
                      + (f"{out.seconds:7.2f}s  eff {lo / out.seconds:.3f}" if out.ok and out.seconds
                         else f"FAILED: {out.error}")
                      + f"  (cpu busy {out.extra['cpu_busy']:.0%}, "
                        f"{out.extra['cpu_kernel_share']:.0%} of it in the kernel)", flush=True)
                await asyncio.sleep(2)  # let the kernel settle (TIME_WAIT, qdisc backlog)
    finally:
        await asyncio.shield(lab.close())
    summary = {c: summarize(outs, lo) for c, outs in results.items() if outs}
    for c, s in summary.items():  # the product against the standalone client, same run
        alone = summary.get(c[:-len(PRODUCT)]) if c.endswith(PRODUCT) else None
        if alone and alone["seconds"] and s["seconds"]:
            s["product_vs_standalone_time"] = round(s["seconds"] / alone["seconds"], 3)
    if "meshbed" in summary and summary["meshbed"]["seconds"]:
        mb = summary["meshbed"]["seconds"]
        for c, s in summary.items():
            if c != "meshbed" and s["seconds"]:
                s["meshbed_time_ratio"] = round(mb / s["seconds"], 3)
    return {"leechers": n, "size": size, "piece_length": args.piece,
            "leecher_classes": [{"group": g, "count": k, "up_bps": u, "down_bps": d}
                                for g, k, u, d in classes],
            "lower_bound_seconds": round(lo, 3), "client_server_bound_seconds": round(cs, 3),
            "contestants": summary}


def print_table(case: dict[str, Any]) -> None:
    print(f"\n1 seeder + {case['leechers']} leechers, {case['size'] / 2**20:g} MiB: "
          f"lower bound {case['lower_bound_seconds']:.2f}s")
    print(f"{'contestant':<22}{'seconds':>9}{'efficiency':>12}{'first':>8}{'spread':>8}"
          f"{'verified':>10}{'meshbed/this':>14}{'vs alone':>10}")
    for c, s in case["contestants"].items():
        sec = f"{s['seconds']:.2f}" if s["seconds"] else "failed"
        eff = f"{s['efficiency']:.3f}" if s["efficiency"] else "-"
        first = f"{s['first_leecher_seconds']:.1f}" if s["first_leecher_seconds"] else "-"
        spread = f"{s['spread_seconds']:.1f}" if s["spread_seconds"] is not None else "-"
        ratio = f"{s['meshbed_time_ratio']:.3f}" if s.get("meshbed_time_ratio") else "-"
        alone = (f"{s['product_vs_standalone_time']:.3f}" if s.get("product_vs_standalone_time")
                 else "-")
        print(f"{c:<22}{sec:>9}{eff:>12}{first:>8}{spread:>8}"
              f"{s['verified']:>6}/{case['leechers']:<3}{ratio:>14}{alone:>10}")
    print("(meshbed/this < 1: meshbed distributed faster; vs alone: time of NAME"
          f"{PRODUCT} / time of NAME)")


async def scalability(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size if args.size_given else 16 * 2**20
    rows = []
    for n in args.scale_ns:
        lo, cs = bounds(n, size)
        row: dict[str, Any] = {"leechers": n, "lower_bound_seconds": round(lo, 3),
                               "client_server_bound_seconds": round(cs, 3)}
        for strategy in ("swarm", "client-server"):
            timeout = max(args.timeout, cs * 2)
            plan = meshbed.Plan(n, size, args.piece, SEEDER_UP, LEECHER_UP, LEECHER_DOWN,
                                timeout, strategy)
            if args.meshbed_via == "engine":
                out = await meshbed.run_engine(plan, name=f"bench-scale-{strategy}")
            else:
                lab = Lab("bench-scale")
                try:
                    hosts = [("seeders-0", "seeders", Link(SEEDER_UP, LEECHER_DOWN))]
                    hosts += [(f"leechers-{i}", "leechers", Link(LEECHER_UP, LEECHER_DOWN))
                              for i in range(n)]
                    await lab.open(hosts)
                    out = await meshbed.run_agents(plan, lab, "seeders-0",
                                                   tuple(h for h, _, _ in hosts[1:]))
                finally:
                    await asyncio.shield(lab.close())
            row[strategy] = round(out.seconds, 2) if out.ok and out.seconds else None
            if not out.ok:
                row[f"{strategy}_error"] = out.error
            print(f"  N={n:<3} {strategy:<14} "
                  + (f"{out.seconds:7.2f}s (bound {lo if strategy == 'swarm' else cs:.2f}s)"
                     if out.ok and out.seconds else f"FAILED: {out.error}"), flush=True)
        rows.append(row)
    return {"size": size, "piece_length": args.piece, "rows": rows}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contestants", default="meshbed,libtorrent,aria2,transmission",
                    help=f"comma-separated; NAME{PRODUCT} (e.g. aria2{PRODUCT}) runs that client "
                         "as `client:` nodes through the product, compared with NAME alone")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--size", default=None, help="file size (default 64MiB; --case large: 32MiB)")
    ap.add_argument("--leechers", type=int, default=None, help="default 16 (--case large: 64)")
    ap.add_argument("--piece", default="256KiB", help="piece length")
    ap.add_argument("--case", choices=("default", "large", "hetero"), default="default",
                    help="default: 1+16, 64 MiB; large: 1+64, 32 MiB; hetero: 8 fast + 8 slow "
                         "leechers, 32 MiB")
    ap.add_argument("--scalability", action="store_true",
                    help="meshbed swarm vs client-server for N = 4, 8, 16, 32, 64 (16 MiB)")
    ap.add_argument("--scale-ns", default="4,8,16,32,64",
                    help="leecher counts for --scalability")
    ap.add_argument("--timeout", type=float, default=300.0, help="per contestant and run")
    ap.add_argument("--meshbed-via", choices=("engine", "agents"), default="engine",
                    help="run meshbed through the orchestrator's engine or as bare agents "
                         "in the lab")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    args.size_given = args.size is not None
    args.scale_ns = [int(x) for x in args.scale_ns.split(",") if x.strip()]
    default_size = "64MiB" if args.case == "default" else "32MiB"
    args.size = parse_size(args.size or default_size)
    args.piece = parse_size(args.piece)
    if args.leechers is None:
        args.leechers = 64 if args.case == "large" else 16
    return args


async def amain(args: argparse.Namespace) -> int:
    stale = await Lab.cleanup_stale() + await meshbed.cleanup_stale()
    if stale:
        print(f"removed labs left by an earlier run: {', '.join(stale)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime()),
            "rates_bps": {"seeder_up": SEEDER_UP, "leecher_up": LEECHER_UP,
                          "leecher_down": LEECHER_DOWN},
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "cpu_note": "cpu_busy = share of all cores busy during the contestant's whole run "
                        "(engine: including deploy/teardown; other processes count too)",
            "clock_note": "from the fetch (meshbed: agents already up; libtorrent: leechers "
                          "up with the torrent paused, then resumed) or from starting the "
                          "client (aria2c, transmission-cli: native programs, ms to start)",
            "lab_note": "lab hosts have permanent neighbour entries for each other (no ARP); "
                        "meshbed via engine runs on the netns backend's own mesh",
            "meshbed_via": args.meshbed_via, "chart": "pure-Python SVG (bench/svgchart.py)"}
    if args.scalability:
        data = {**meta, **await scalability(args)}
        out = args.out or RESULTS / "swarm_vs_bittorrent-scalability.json"
        out.write_text(json.dumps(data, indent=1))
        svg = out.with_suffix(".svg")
        svg.write_text(line_chart(data["rows"], title=f"meshbed: distribution time vs N "
                                  f"({data['size'] / 2**20:g} MiB)"))
        print(f"wrote {out} and {svg}")
        return 0
    wanted: list[str] = []
    for c in (c.strip() for c in args.contestants.split(",") if c.strip()):
        base = c[:-len(PRODUCT)] if c.endswith(PRODUCT) else c
        mod = meshbed if base == "meshbed" else EXTERNAL.get(base)
        if mod is None:
            print(f"unknown contestant {c!r} (known: meshbed, {', '.join(EXTERNAL)}; "
                  f"NAME{PRODUCT} runs that client as `client:` nodes of `meshbed run`)",
                  file=sys.stderr)
            return 2
        reason = mod.available()
        if reason:
            print(f"skipping {c}: {reason}", file=sys.stderr)
        else:
            wanted.append(c)
    if any(c != "meshbed" for c in wanted) and not opentracker.available():
        print("opentracker not installed (apt install opentracker)", file=sys.stderr)
        return 2
    case = await one_case(args, args.leechers, args.size, wanted)
    data = {**meta, "case": args.case, **case}
    suffix = "" if args.case == "default" else f"-{args.case}"
    out = args.out or RESULTS / f"swarm_vs_bittorrent{suffix}.json"
    out.write_text(json.dumps(data, indent=1))
    svg = out.with_suffix(".svg")
    svg.write_text(cdf_chart(
        {c: s["completions"] for c, s in case["contestants"].items()},
        leechers=case["leechers"], bound=case["lower_bound_seconds"],
        title=f"1 seeder + {case['leechers']} leechers, {case['size'] / 2**20:g} MiB: "
              f"leechers complete over time"))
    print_table(case)
    print(f"wrote {out} and {svg}")
    return 0


async def _cleanup_all() -> None:
    await Lab.cleanup_stale()
    await meshbed.cleanup_stale()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    reason = NetnsBackend.unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    install_sigterm_as_interrupt()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        # asyncio.run cancelled the tasks, whose `finally` blocks tore the labs down;
        # a second pass catches anything a cancellation cut short.
        asyncio.run(_cleanup_all())
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        # content, torrents, caches: nothing of the run stays in the scratch folder
        if not any(LAB_HOME.glob("*/state.json")) and not any(
                (LAB_HOME / "meshbed-home").glob("*/state.json")):
            shutil.rmtree(LAB_HOME, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
