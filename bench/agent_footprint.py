"""Memory footprint of one agent: idle, then serving 20 leecher agents (separate processes,
pex off so all of them fetch from it). Baseline in the same run: a bare interpreter that
only imported asyncio + prometheus_client.

    python3 bench/agent_footprint.py [--peers 20] [--size 32MiB] [--pyz peer.pyz]

Goal: < 40 MB idle.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from peerproc import AgentProc  # noqa: E402

BARE = "import asyncio, prometheus_client, sys, time; print('ok', flush=True); sys.stdin.read()"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} for {pid}")


def bare_interpreter_mb() -> float:
    p = subprocess.Popen([sys.executable, "-c", BARE], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        p.stdout.readline()
        time.sleep(0.5)
        return rss_mb(p.pid)
    finally:
        if p.stdin is not None:
            p.stdin.close()
        p.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--size", type=int, default=32 << 20, help="bytes")
    ap.add_argument("--pyz", type=Path)
    args = ap.parse_args()
    command = [sys.executable, str(args.pyz)] if args.pyz else None
    root = Path(tempfile.mkdtemp(prefix="meshbed-footprint-"))
    agents: list[AgentProc] = []
    try:
        bare = bare_interpreter_mb()
        seeder = AgentProc(root, "seeders-0", command=command)
        agents.append(seeder)
        seeder.start()
        time.sleep(2.0)
        idle = rss_mb(seeder.pid)
        print(f"bare interpreter (asyncio + prometheus_client): {bare:6.1f} MB")
        print(f"idle agent:                                     {idle:6.1f} MB "
              f"({idle / bare:.2f}x bare; goal < 40 MB)", flush=True)

        shared = seeder.share_synthetic("movie", args.size, seed=1, piece_length=256 << 10)
        after_share = rss_mb(seeder.pid)
        print(f"agent seeding one {args.size >> 20} MiB content:        {after_share:6.1f} MB")
        leechers = [AgentProc(root, f"leechers-{i}", command=command) for i in range(args.peers)]
        for a in leechers:
            agents.append(a)
            a.start()
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], rss_mb(seeder.pid))
                except (OSError, RuntimeError):
                    return
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.monotonic()
        for a in leechers:
            a.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [seeder.wire],
                                    "pex": False})
        connected = 0
        for a in leechers:
            a.wait_complete(shared["infohash"], 600, verdict=False)
            t = seeder.torrent(shared["infohash"]) or {}
            connected = max(connected, int(t.get("peers", 0)))
        elapsed = time.monotonic() - start
        stop.set()
        sampler.join(5)
        serving = rss_mb(seeder.pid)
        hwm = rss_mb(seeder.pid, "VmHWM")
        leecher_rss = sorted(rss_mb(a.pid) for a in leechers)
        print(f"agent serving {args.peers} leechers (max {connected} connected at a poll): "
              f"peak {peak[0]:.1f} MB, VmHWM {hwm:.1f} MB, after {serving:.1f} MB "
              f"({elapsed:.1f} s for {args.peers} x {args.size >> 20} MiB)")
        print(f"leecher agents after their fetch: median {leecher_rss[len(leecher_rss) // 2]:.1f}"
              f" MB, max {leecher_rss[-1]:.1f} MB")
        return 0
    finally:
        for a in agents:
            a.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
