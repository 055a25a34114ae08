"""Codec and hashing speed of the peer's data layer, as ratios to baselines from the same run.

Prints MB/s for: encoding 1 MiB Piece frames (full frame, and header only as the engine
sends it), decoding them (decode() on a body, FrameDecoder fed 64 KiB reads), SHA-1 verify
through PieceStore.verify; each against raw hashlib SHA-1 and a plain 1 MiB memory copy.

    python3 bench/codec_speed.py [--mib 256]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peer import metainfo, wire  # noqa: E402
from peer.storage import PieceStore  # noqa: E402

MiB = 1 << 20


def rate(fn: Callable[[], None], total_bytes: int, repeat: int = 3) -> float:
    """Best-of-``repeat`` throughput in MB/s (10^6 bytes/s)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return total_bytes / best / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="bytes moved per measurement (MiB)")
    args = ap.parse_args()
    n = args.mib
    total = n * MiB
    block = os.urandom(MiB)
    frame = wire.encode(wire.Piece(0, 0, block))
    body = frame[4:]
    stream = frame * 8
    reads = [stream[k:k + 65536] for k in range(0, len(stream), 65536)]

    def sha1_raw() -> None:
        for _ in range(n):
            hashlib.sha1(block).digest()

    def copy_raw() -> None:
        for _ in range(n):
            bytearray(block)

    def enc_full() -> None:
        for i in range(n):
            wire.encode(wire.Piece(i, 0, block))

    def enc_header() -> None:
        for i in range(n):
            wire.piece_header(i, 0, MiB)

    def dec_body() -> None:
        for _ in range(n):
            wire.decode(body)

    def dec_stream() -> None:
        for _ in range(n // 8):
            fd = wire.FrameDecoder()
            for r in reads:
                fd.feed(r)

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "piece.bin"
        src.write_bytes(block)
        meta = metainfo.create(src, piece_length=MiB)
        with PieceStore.open(Path(tmp) / "store", meta) as store:

            def verify() -> None:
                for _ in range(n):
                    assert store.verify(0, block)

            base_sha1 = rate(sha1_raw, total)
            base_copy = rate(copy_raw, total)
            rows = [
                ("encode Piece frame (1 MiB)", rate(enc_full, total)),
                ("encode Piece header only", rate(enc_header, total)),
                ("decode Piece body", rate(dec_body, total)),
                ("FrameDecoder, 64 KiB reads", rate(dec_stream, total)),
                ("PieceStore.verify (SHA-1)", rate(verify, total)),
            ]
    print(f"baseline hashlib sha1: {base_sha1:10.0f} MB/s")
    print(f"baseline 1 MiB copy:   {base_copy:10.0f} MB/s")
    print(f"{'operation':32} {'MB/s':>12} {'/ sha1':>8} {'/ copy':>8}")
    for name, mbps in rows:
        print(f"{name:32} {mbps:12.0f} {mbps / base_sha1:8.2f} {mbps / base_copy:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
