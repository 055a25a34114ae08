"""Swarm efficiency of the engine in one process, links emulated by the agents.

1 seeder (up 40 mbit) + N leechers (up 10 / down 50 mbit), like ANCHORS.md's namespace
swarm; prints the time until the last leecher holds a verified copy, the fluid lower bound
max(F/u_s, F/d_min, N*F/(u_s + sum u_i)) and their ratio (efficiency). libtorrent: 0.87.

    python3 bench/engine_swarm.py [--leechers 16] [--size-mib 64] [--piece-kib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from swarm_support import MBIT, addr, make_agent, make_content, wait_complete  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="meshbed-bench-") as d:
        tmp = Path(d)
        size = args.size_mib << 20
        content = make_content(tmp, size, args.piece_kib * 1024)
        seeder = make_agent(tmp, "seeders-0", up_mbit=args.seed_up, upload_slots=args.slots,
                            choke_policy=args.policy)
        leechers = [make_agent(tmp, f"leechers-{i}", up_mbit=args.up, down_mbit=args.down,
                               upload_slots=args.slots,
                            choke_policy=args.policy) for i in range(args.leechers)]
        agents = [seeder, *leechers]
        for a in agents:
            await a.start()
        await seeder.share(content.meta, content.path)
        t0 = time.monotonic()
        for a in leechers:
            await a.fetch(content.meta, [addr(seeder)])
        finish: dict[str, float] = {}
        timeline: list[str] = []
        last_total, last_t = 0, t0
        lag = 0.0
        while len(finish) < len(leechers) and time.monotonic() - t0 < args.timeout:
            before = time.monotonic()
            await asyncio.sleep(0.1)
            now = time.monotonic()
            lag = max(lag, now - before - 0.1)
            if args.verbose and now - last_t >= 2.0:
                total = sum(a.torrents[content.meta.info_hash].uploaded for a in agents)
                rate = (total - last_total) / (now - last_t) / 1e6
                timeline.append(f"{now - t0:.0f}s:{rate:.1f}" + (f"(lag {lag:.2f})" if lag > 0.05 else ""))
                lag = 0.0
                last_total, last_t = total, now
            for a in leechers:
                if a.node not in finish and a.torrents[content.meta.info_hash].complete:
                    finish[a.node] = time.monotonic() - t0
        await wait_complete(leechers, content.meta, timeout=1, verified=False)
        seconds = max(finish.values())
        us, ui, dmin = args.seed_up * MBIT / 8, args.up * MBIT / 8, args.down * MBIT / 8
        n = args.leechers
        bound = max(size / us, size / dmin, n * size / (us + n * ui))
        sent = seeder.torrents[content.meta.info_hash].uploaded / size
        print(f"leechers={n} size={args.size_mib}MiB piece={args.piece_kib}KiB slots={args.slots} "
              f"policy={args.policy}")
        print(f"first done {min(finish.values()):.1f}s, last {seconds:.1f}s, bound {bound:.2f}s, "
              f"efficiency {bound / seconds:.3f} (libtorrent 0.869), seeder sent {sent:.2f} copies")
        if args.verbose:
            ih = content.meta.info_hash
            up_total = sum(a.torrents[ih].uploaded for a in agents) / 1e6
            down_total = sum(a.torrents[ih].downloaded for a in leechers) / 1e6
            print(f"uploaded {up_total:.0f} MB, leechers downloaded {down_total:.0f} MB "
                  f"(needed {n * size / 1e6:.0f}), capacity x time {(us + n * ui) * seconds / 1e6:.0f} MB")
            print("aggregate upload MB/s (capacity %.1f):" % ((us + n * ui) / 1e6), " ".join(timeline))
            print("finish:", " ".join(f"{v:.0f}" for v in sorted(finish.values())))
        for a in agents:
            await a.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--leechers", type=int, default=16)
    p.add_argument("--size-mib", type=int, default=64)
    p.add_argument("--piece-kib", type=int, default=256)
    p.add_argument("--seed-up", type=float, default=40)
    p.add_argument("--up", type=float, default=10)
    p.add_argument("--down", type=float, default=50)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--policy", default="neediest", choices=("neediest", "reciprocate"))
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("-v", "--verbose", action="store_true")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
