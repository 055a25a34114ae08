"""meshbed agents and aria2c (Debian) on 127.0.0.1. aria2c only finds peers through a
tracker, so Debian's opentracker runs in whitelist mode and the test announces the meshbed
agent to it (meshbed itself needs no tracker)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer import metainfo
from tests.facilities import missing
from tests.peerproc import AgentProc
from tests.tracker import Tracker, free_port

pytestmark = pytest.mark.timeout(240)
PIECE = 256 * 1024

_missing = [b for b in ("aria2c", "opentracker") if shutil.which(b) is None]
if _missing:
    missing(f"not installed: {', '.join(_missing)}", module=True)


def _aria2(dir_: Path, torrent: Path, port: int, *extra: str) -> list[str]:
    return [
        "aria2c", "--no-conf", f"--dir={dir_}", "--enable-dht=false", "--enable-dht6=false",
        "--bt-enable-lpd=false", "--enable-peer-exchange=false", f"--listen-port={port}",
        "--interface=127.0.0.1", "--file-allocation=none", "--summary-interval=0",
        "--console-log-level=warn", "--bt-stop-timeout=120", "--bt-tracker-interval=2",
        *extra, str(torrent),
    ]


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for t in reversed(things):
        if isinstance(t, AgentProc):
            t.kill()
        elif isinstance(t, Tracker):
            t.close()
        elif isinstance(t, subprocess.Popen):
            t.kill()
            t.wait(10)


def test_meshbed_seeds_aria2_downloads(tmp_path: Path, cleanup: list[object]) -> None:
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    seeder.start()
    shared = seeder.ok("POST", "/share", {
        "synthetic": {"name": "movie.bin", "size": 5 * 1024 * 1024 + 99, "seed": 2},
        "piece_length": PIECE,
    })
    tracker = Tracker(tmp_path / "tracker", [shared["infohash"]])
    cleanup.append(tracker)
    tracker.announce(shared["infohash"], int(seeder.wire.rsplit(":", 1)[1]), 0)
    tfile = tmp_path / "movie.torrent"
    tfile.write_bytes(tracker.torrent_for(base64.b64decode(shared["metainfo"])))
    out = tmp_path / "aria2"
    cmd = _aria2(out, tfile, free_port(), "--seed-time=0", "--check-integrity=true")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-600:]
        pytest.fail(f"aria2c did not finish in 90 s; seeder log:\n{seeder.logs()[-1500:]}\n"
                    f"aria2c: {tail!r}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    got = hashlib.sha256((out / "movie.bin").read_bytes()).hexdigest()
    assert got == shared["sha256"]


def test_aria2_seeds_meshbed_downloads(tmp_path: Path, cleanup: list[object]) -> None:
    src_dir = tmp_path / "aria2"
    src_dir.mkdir()
    src = src_dir / "paper.bin"
    src.write_bytes(os.urandom(4 * 1024 * 1024 + 5))
    meta = metainfo.create(src, piece_length=PIECE)
    tracker = Tracker(tmp_path / "tracker", [meta.hexhash])
    cleanup.append(tracker)
    tfile = tmp_path / "paper.torrent"
    tfile.write_bytes(tracker.torrent_for(meta.to_torrent_bytes()))
    port = free_port()
    aria = subprocess.Popen(
        _aria2(src_dir, tfile, port, "--check-integrity=true", "--seed-ratio=0.0",
               "--seed-time=5"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    cleanup.append(aria)
    leecher = AgentProc(tmp_path, "leechers-0")
    cleanup.append(leecher)
    leecher.start()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    body = {"metainfo": base64.b64encode(meta.to_torrent_bytes()).decode(),
            "peers": [f"127.0.0.1:{port}"], "sha256": sha}
    leecher.ok("POST", "/fetch", body)
    t = leecher.wait_complete(meta.hexhash, 120)
    assert t["verified"] is True and t["sha256"] == sha
    got = leecher.data_dir / "torrents" / meta.hexhash / "paper.bin"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha
