"""Loopback throughput: one seeder process -> one downloader process, no caps.

ANCHORS.md: libtorrent -> libtorrent moves 1 GiB (1 MiB pieces) in 3.24 s (331 MB/s).
Prints seconds until every piece is SHA-1 verified and stored, and MB/s, per run.

    python3 bench/engine_loopback.py [--size-mib 1024] [--piece-kib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from prometheus_client import CollectorRegistry

from peer import metainfo, synthetic
from peer.agent import Agent
from peer.shaping import LinkEmulator


def _agent(tmp: Path, node: str) -> Agent:
    return Agent(data_dir=tmp / node, registry=CollectorRegistry(), link=LinkEmulator(),
                 listen_host="127.0.0.1", node=node, mesh_key=b"bench mesh key")


def seeder_main(tmp: str, torrent: bytes, payload: str, pipe: Connection) -> None:
    async def run() -> None:
        a = _agent(Path(tmp), "seeder")
        await a.start()
        await a.share(metainfo.parse(torrent), Path(payload))
        pipe.send(a.wire_port)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await a.close()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(f"  seeder CPU: user {ru.ru_utime:.2f} s, sys {ru.ru_stime:.2f} s")
    asyncio.run(run())


async def fetch_once(tmp: Path, meta: metainfo.Metainfo, port: int, run: int) -> float:
    a = _agent(tmp, f"leecher{run}")
    await a.start()
    t0 = time.monotonic()
    await a.fetch(meta, [("127.0.0.1", port)])
    t = a.torrents[meta.info_hash]
    while not t.complete:
        await asyncio.sleep(0.005)
    seconds = time.monotonic() - t0
    await a.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"  downloader CPU so far: user {ru.ru_utime:.2f} s, sys {ru.ru_stime:.2f} s")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--piece-kib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="meshbed-loop-") as d:
        tmp = Path(d)
        src = tmp / "inbox" / "blob"
        synthetic.write_file(src, 1, "blob", size)
        meta = metainfo.create(src, piece_length=args.piece_kib * 1024)
        parent, child = mp.Pipe()
        proc = mp.Process(target=seeder_main,
                          args=(d, meta.to_torrent_bytes(), str(src), child))
        proc.start()
        port = parent.recv()
        times = []
        for run in range(args.runs):
            s = asyncio.run(fetch_once(tmp, meta, port, run))
            times.append(s)
            print(f"run {run}: {s:.2f} s, {size / s / 1e6:.0f} MB/s", flush=True)
            import shutil
            shutil.rmtree(tmp / f"leecher{run}", ignore_errors=True)
        parent.send("stop")
        proc.join(30)
        med = statistics.median(times)
        print(f"median {med:.2f} s = {size / med / 1e6:.0f} MB/s (libtorrent 331 MB/s: "
              f"ratio {size / med / 1e6 / 331:.2f})")


if __name__ == "__main__":
    main()
