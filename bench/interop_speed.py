"""Each ordinary client's download speed from a meshbed seeder and from a libtorrent seeder,
in the same run, on 127.0.0.1 (no caps). The libtorrent seeder is the baseline: the ratio
meshbed/libtorrent says what a user of that client loses with a meshbed seeder.

    python3 bench/interop_speed.py [--size-mib 64] [--piece-kib 256]
                                   [--clients libtorrent,aria2,transmission] [--runs 1]

Clients run with their default settings (libtorrent and aria2 try an encrypted handshake
first). aria2c and transmission-cli find the seeder through Debian's opentracker;
transmission ignores loopback peers from trackers, so the seeder dials it. Seconds count
from the client's start to its last piece (client start-up included, the same for both
seeders).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from ltpeer import LtPeer  # noqa: E402
from peerproc import AgentProc  # noqa: E402
from tracker import Tracker, free_port  # noqa: E402

from peer import metainfo, synthetic  # noqa: E402

TIMEOUT = 300.0


class Seeder:
    def __init__(self, kind: str, addr: str, dial: Callable[[str], None]) -> None:
        self.kind = kind
        self.addr = addr
        self.port = int(addr.rsplit(":", 1)[1])
        self.dial = dial  # make the seeder connect to a client's "127.0.0.1:port"


def _wait(done: Callable[[], bool], what: str, tick: Callable[[], None] = lambda: None
          ) -> float:
    start = time.monotonic()
    last_tick = 0.0
    while not done():
        now = time.monotonic()
        if now - start > TIMEOUT:
            raise RuntimeError(f"{what}: not done in {TIMEOUT:.0f} s")
        if now - last_tick > 2.0:
            tick()
            last_tick = now
        time.sleep(0.02)
    return time.monotonic() - start


def run_libtorrent(work: Path, torrent: bytes, seeder: Seeder) -> float:
    peer = LtPeer(work / "lt-leech")
    try:
        peer.add(torrent)
        start = time.monotonic()
        peer.wait_state(seeding=True, timeout=TIMEOUT, connect=(seeder.addr,))
        return time.monotonic() - start
    finally:
        peer.close()


def run_aria2(work: Path, torrent: bytes, seeder: Seeder, ih: str) -> float:
    tracker = Tracker(work / "tracker", [ih])
    try:
        tracker.announce(ih, seeder.port, 0)
        tfile = work / "aria2.torrent"
        tfile.write_bytes(tracker.torrent_for(torrent))
        start = time.monotonic()
        proc = subprocess.Popen(
            ["aria2c", "--no-conf", f"--dir={work / 'aria2'}", "--enable-dht=false",
             "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
             f"--listen-port={free_port()}", "--interface=127.0.0.1", "--seed-time=0",
             "--file-allocation=none", "--bt-tracker-interval=2", "--console-log-level=warn",
             str(tfile)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rc = proc.wait(TIMEOUT)
        finally:
            proc.kill()
        if rc != 0:
            raise RuntimeError(f"aria2c exited {rc}")
        return time.monotonic() - start
    finally:
        tracker.close()


def run_transmission(work: Path, torrent: bytes, seeder: Seeder, ih: str) -> float:
    tracker = Tracker(work / "tracker", [ih])
    cfg, out, done = work / "tr-config", work / "tr-out", work / "tr-done"
    for d in (cfg, out):
        d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (cfg / "settings.json").write_text(json.dumps({
        "dht-enabled": False, "lpd-enabled": False, "utp-enabled": False,
        "pex-enabled": False, "port-forwarding-enabled": False,
        "bind-address-ipv4": "127.0.0.1", "peer-port": port, "rpc-enabled": False,
        "download-dir": str(out), "incomplete-dir-enabled": False}))
    finish = work / "finish.sh"
    finish.write_text(f"#!/bin/sh\ntouch '{done}'\n")
    finish.chmod(0o755)
    try:
        tfile = work / "tr.torrent"
        tfile.write_bytes(tracker.torrent_for(torrent))
        start = time.monotonic()
        proc = subprocess.Popen(
            ["transmission-cli", "-g", str(cfg), "-w", str(out), "-p", str(port), "-M",
             "-D", "-U", "-f", str(finish), str(tfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        try:
            _wait(done.exists, "transmission-cli",
                  tick=lambda: seeder.dial(f"127.0.0.1:{port}"))
        finally:
            proc.kill()
            proc.wait(10)
        return time.monotonic() - start
    finally:
        tracker.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--piece-kib", type=int, default=256)
    ap.add_argument("--clients", default="libtorrent,aria2,transmission")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    clients = [c for c in args.clients.split(",") if c]
    need = {"aria2": ["aria2c", "opentracker"], "transmission": ["transmission-cli",
                                                                 "opentracker"]}
    for c in clients:
        missing = [b for b in need.get(c, []) if shutil.which(b) is None]
        if missing:
            print(f"{c}: missing {', '.join(missing)}", file=sys.stderr)
            return 2
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="interop-speed-") as tmp:
        root = Path(tmp)
        agent = AgentProc(root, "seeders-0")
        content = agent.data_dir / "inbox" / "bench.bin"
        synthetic.write_file(content, 7, "bench.bin", size)
        meta = metainfo.create(content, piece_length=args.piece_kib * 1024)
        torrent = meta.to_torrent_bytes()
        agent.start()
        lt_seed = LtPeer(root / "lt-seed-dir")
        try:
            agent.ok("POST", "/share", {"file": "inbox/bench.bin",
                                        "metainfo": base64.b64encode(torrent).decode()},
                     timeout=300)
            (root / "lt-seed-dir").mkdir(exist_ok=True)
            shutil.copyfile(content, root / "lt-seed-dir" / "bench.bin")
            lt_seed.add(torrent)
            lt_seed.wait_state(seeding=True, timeout=TIMEOUT)
            seeders = [
                Seeder("meshbed", agent.wire, lambda a: agent.ok(
                    "POST", "/peers", {"peers": [a], "infohash": meta.hexhash})),
                Seeder("libtorrent", lt_seed.addr, lt_seed.connect),
            ]
            print(f"{args.size_mib} MiB, {args.piece_kib} KiB pieces, 127.0.0.1, "
                  f"{args.runs} run(s) each; MB/s = 1e6 bytes/s")
            print(f"{'client':<14}{'from meshbed':>14}{'from libtorrent':>17}{'ratio':>8}")
            for client in clients:
                speeds: dict[str, list[float]] = {s.kind: [] for s in seeders}
                for run in range(args.runs):
                    for s in seeders:
                        work = root / f"{client}-{s.kind}-{run}"
                        work.mkdir()
                        if client == "libtorrent":
                            secs = run_libtorrent(work, torrent, s)
                        elif client == "aria2":
                            secs = run_aria2(work, torrent, s, meta.hexhash)
                        elif client == "transmission":
                            secs = run_transmission(work, torrent, s, meta.hexhash)
                        else:
                            print(f"unknown client {client}", file=sys.stderr)
                            return 2
                        speeds[s.kind].append(size / secs / 1e6)
                        shutil.rmtree(work, ignore_errors=True)
                mb = statistics.median(speeds["meshbed"])
                lt = statistics.median(speeds["libtorrent"])
                print(f"{client:<14}{mb:>11.1f} MB/s{lt:>14.1f} MB/s{mb / lt:>8.2f}",
                      flush=True)
        finally:
            lt_seed.close()
            agent.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
