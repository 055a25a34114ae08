"""Cost of a Prometheus scrape: an agent holding 100 contents (small synthetic shares) with
50 connected peers (light raw-socket BitTorrent clients: handshake + bitfield + interested,
then idle). Baseline in the same run: the same agent's /metrics before any content.

    python3 bench/metrics_cost.py [--contents 100] [--peers 50] [--scrapes 50]

Goal: median < 5 ms, body < 64 KiB.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from peerproc import AgentProc  # noqa: E402

from peer import metainfo  # noqa: E402


def scrape(api: str, n: int, gzip: bool = False) -> tuple[list[float], int]:
    """n scrapes on one keep-alive connection, as Prometheus does; times in ms, body size."""
    host, port = api.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    times, size = [], 0
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn.request("GET", "/metrics", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            times.append((time.perf_counter() - start) * 1000)
            assert resp.status == 200, resp.status
            size = len(body)
    finally:
        conn.close()
    return times, size


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def raw_peer(wire: str, info_hash: bytes, num_pieces: int, index: int) -> socket.socket:
    """A minimal BitTorrent client: handshake, empty bitfield, interested; then idle."""
    host, port = wire.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    peer_id = b"-XX0001-" + hashlib.sha1(str(index).encode()).digest()[:12]
    s.sendall(bytes([19]) + b"BitTorrent protocol" + bytes(8) + info_hash + peer_id)
    got = b""
    while len(got) < 68:
        chunk = s.recv(68 - len(got))
        if not chunk:
            raise RuntimeError("agent closed the connection during the handshake")
        got += chunk
    bitfield = bytes((num_pieces + 7) // 8)
    s.sendall((1 + len(bitfield)).to_bytes(4, "big") + b"\x05" + bitfield)
    s.sendall((1).to_bytes(4, "big") + b"\x02")
    s.setblocking(False)  # the agent's messages pile up in our receive buffer; fine
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--contents", type=int, default=100)
    ap.add_argument("--peers", type=int, default=50)
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--pyz", type=Path)
    args = ap.parse_args()
    command = [sys.executable, str(args.pyz)] if args.pyz else None
    root = Path(tempfile.mkdtemp(prefix="meshbed-metrics-"))
    agent = AgentProc(root, "seeders-0", command=command)
    sockets: list[socket.socket] = []
    try:
        agent.start()
        base_times, base_size = scrape(agent.api, args.scrapes)
        metas = []
        for i in range(args.contents):
            shared = agent.share_synthetic(f"content-{i:03d}", 64 * 1024, seed=i,
                                           piece_length=16384)
            metas.append(metainfo.parse(base64.b64decode(shared["metainfo"])))
        for i in range(args.peers):
            meta = metas[i % len(metas)]
            sockets.append(raw_peer(agent.wire, meta.info_hash, meta.num_pieces, i))
        time.sleep(1.0)
        status = agent.status()
        connected = sum(t["peers"] for t in status["torrents"].values())
        times, size = scrape(agent.api, args.scrapes)
        print(f"baseline (no content): median {statistics.median(base_times):.2f} ms, "
              f"p95 {p95(base_times):.2f} ms, {base_size / 1024:.1f} KiB")
        print(f"{args.contents} contents, {connected} connected peers: "
              f"median {statistics.median(times):.2f} ms, p95 {p95(times):.2f} ms, "
              f"{size / 1024:.1f} KiB  (goal < 5 ms, < 64 KiB)")
        gz_times, gz_size = scrape(agent.api, args.scrapes, gzip=True)
        print(f"  same with Accept-Encoding: gzip (as Prometheus scrapes): median "
              f"{statistics.median(gz_times):.2f} ms, p95 {p95(gz_times):.2f} ms, "
              f"{gz_size / 1024:.1f} KiB on the wire")
        print(f"ratio to baseline: time {statistics.median(times) / statistics.median(base_times):.1f}x,"
              f" size {size / base_size:.1f}x")
        return 0
    finally:
        for s in sockets:
            s.close()
        agent.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
