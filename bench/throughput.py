"""Loopback throughput: one seeder -> one leecher, no caps, same file and piece size for
meshbed (agents as separate processes) and libtorrent (PyPI), median of --runs.

    python3 bench/throughput.py [--size 1GiB] [--runs 3] [--piece-length 1MiB]
                                [--pyz peer.pyz] [--profile DIR] [--lt-high-performance]

Prints MB/s (10^6 bytes/s) for both and the ratio meshbed/libtorrent (goal >= 1.0). The
meshbed leecher also checks the whole-file SHA-256 after each timed run (untimed).
--profile runs py-spy (pip install py-spy) on both agents during the first meshbed run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from peerproc import AgentProc  # noqa: E402

from peer import synthetic  # noqa: E402

UNITS = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "b": 1}

LT_SEEDER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from ltpeer import LtPeer
peer = LtPeer(Path(sys.argv[2]), json.loads(sys.argv[4]))
peer.add(open(sys.argv[1], "rb").read())
peer.wait_state(seeding=True, timeout=600)
print(peer.port, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
"""


def parse_size(text: str) -> int:
    t = text.strip().lower()
    for unit, scale in UNITS.items():
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * scale)
    return int(t)


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def make_source(workdir: Path, size: int) -> Path:
    src = workdir / "src" / "bench.bin"
    if not (src.is_file() and src.stat().st_size == size):
        print(f"writing {size} bytes of synthetic content to {src} ...", flush=True)
        synthetic.write_file(src, 1, "bench.bin", size)
    return src


def start_profilers(profile_dir: Optional[Path], agents: list[AgentProc]) -> list[Any]:
    """py-spy (pip install py-spy) on each agent, collapsed stacks for `summarize`."""
    if profile_dir is None:
        return []
    profile_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(["py-spy", "record", "-p", str(a.pid), "-r", "250", "-f", "raw",
                          "--nonblocking", "-o", str(profile_dir / f"{a.name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for a in agents
    ]
    time.sleep(1.0)  # let py-spy attach
    return procs


def stop_profilers(procs: list[Any], profile_dir: Optional[Path]) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
        p.wait(60)
    if profile_dir is not None:
        for f in sorted(profile_dir.glob("*.txt")):
            summarize(f)


def summarize(path: Path, top: int = 12) -> None:
    """Print the hottest functions (self and inclusive samples) of a py-spy raw profile."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"\nprofile {path.name}: {total} samples")
    print("  self%  function")
    for name, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}  {name}")
    print("  incl%  function")
    for name, n in incl.most_common(top + 8):
        print(f"  {100 * n / total:5.1f}  {name}")


def run_meshbed(workdir: Path, src: Path, piece_length: int, runs: int,
                command: Optional[list[str]],
                profile_dir: Optional[Path] = None) -> tuple[list[float], bytes]:
    root = workdir / "meshbed"
    shutil.rmtree(root, ignore_errors=True)
    seeder = AgentProc(root, "seeders-0", command=command)
    times: list[float] = []
    try:
        seeder.start()
        inbox = seeder.data_dir / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        os.link(src, inbox / src.name)
        t0 = time.monotonic()
        shared = seeder.ok("POST", "/share", {"file": f"inbox/{src.name}",
                                              "piece_length": piece_length}, timeout=600)
        print(f"meshbed: share (hash {src.stat().st_size >> 20} MiB) took "
              f"{time.monotonic() - t0:.2f} s", flush=True)
        ih = shared["infohash"]
        for run in range(runs):
            leecher = AgentProc(root, f"leechers-{run}", command=command)
            try:
                leecher.start()
                profilers = start_profilers(profile_dir if run == 0 else None,
                                            [seeder, leecher])
                start = time.monotonic()
                leecher.ok("POST", "/fetch", {"metainfo": shared["metainfo"],
                                               "peers": [seeder.wire], "pex": False,
                                               "sha256": shared["sha256"]})
                while True:
                    t = leecher.torrent(ih)
                    if t and t["complete"]:
                        break
                    if time.monotonic() - start > 600:
                        raise RuntimeError(f"meshbed fetch did not finish: {t}")
                    time.sleep(0.02)
                elapsed = time.monotonic() - start
                stop_profilers(profilers, profile_dir)
                times.append(elapsed)
                # Untimed: the whole-file SHA-256 check the engine runs after completion.
                t = leecher.wait_complete(ih, 120)
                print(f"meshbed    run {run + 1}: {elapsed:6.2f} s  "
                      f"{mbps(src.stat().st_size, elapsed):7.1f} MB/s"
                      f"  (engine says {t.get('seconds'):.2f} s; whole-file sha256 "
                      f"{'ok' if t.get('verified') else 'MISMATCH'})", flush=True)
                if not t.get("verified"):
                    raise RuntimeError(f"meshbed leecher's file does not verify: {t}")
            finally:
                leecher.terminate(30)
                shutil.rmtree(leecher.dir, ignore_errors=True)
        return times, base64.b64decode(shared["metainfo"])
    finally:
        seeder.terminate(30)


def run_libtorrent(workdir: Path, src: Path, torrent: bytes, runs: int,
                   extra: Optional[dict[str, Any]]) -> list[float]:
    import libtorrent as lt
    from ltpeer import LtPeer

    tfile = workdir / "bench.torrent"
    tfile.write_bytes(torrent)
    seeder = subprocess.Popen(
        [sys.executable, "-c", LT_SEEDER, str(tfile), str(src.parent), str(REPO / "tests"),
         json.dumps(extra or {})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    times: list[float] = []
    try:
        assert seeder.stdout is not None
        port = int(seeder.stdout.readline())
        for run in range(runs):
            dest = workdir / f"lt-leecher-{run}"
            shutil.rmtree(dest, ignore_errors=True)
            peer = LtPeer(dest, extra)
            try:
                peer.add(torrent)
                peer.wait_state(seeding=False, timeout=60)
                start = time.monotonic()
                peer.connect(f"127.0.0.1:{port}")
                while not peer.status().is_seeding:
                    if time.monotonic() - start > 600:
                        raise RuntimeError("libtorrent fetch did not finish")
                    time.sleep(0.02)
                elapsed = time.monotonic() - start
                times.append(elapsed)
                print(f"libtorrent run {run + 1}: {elapsed:6.2f} s  "
                      f"{mbps(src.stat().st_size, elapsed):7.1f} MB/s", flush=True)
            finally:
                peer.session.remove_torrent(peer.handle, lt.session.delete_files)
                peer.handle = None
                peer.close()
                shutil.rmtree(dest, ignore_errors=True)
    finally:
        if seeder.stdin is not None:
            seeder.stdin.close()
        seeder.wait(30)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--piece-length", default="1MiB")
    ap.add_argument("--workdir", type=Path, help="default: a temp dir (removed at the end)")
    ap.add_argument("--pyz", type=Path, help="run the agents from this peer.pyz")
    ap.add_argument("--skip-libtorrent", action="store_true")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy both agents during the first meshbed run; print hot spots")
    ap.add_argument("--lt-high-performance", action="store_true",
                    help="libtorrent with high_performance_seed settings")
    args = ap.parse_args()
    size, piece = parse_size(args.size), parse_size(args.piece_length)
    own_dir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="meshbed-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(args.pyz)] if args.pyz else None
    try:
        src = make_source(workdir, size)
        m_times, torrent = run_meshbed(workdir, src, piece, args.runs, command, args.profile)
        m = mbps(size, statistics.median(m_times))
        print(f"\nmeshbed    median {statistics.median(m_times):.2f} s  {m:.1f} MB/s")
        if args.skip_libtorrent:
            return 0
        extra = None
        if args.lt_high_performance:
            import libtorrent as lt

            extra = {k: v for k, v in lt.high_performance_seed().items()
                     if k not in ("listen_interfaces",)}
        lt_times = run_libtorrent(workdir, src, torrent, args.runs, extra)
        lt_mbps = mbps(size, statistics.median(lt_times))
        print(f"libtorrent median {statistics.median(lt_times):.2f} s  {lt_mbps:.1f} MB/s")
        print(f"ratio meshbed/libtorrent = {m / lt_mbps:.2f}x  (goal >= 1.0x)")
        return 0
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
