"""meshbed seeds, transmission-cli 3.00 (Debian) downloads. transmission-cli needs a
settings.json to keep DHT, LSD, uTP and port mapping off, and a tracker in its torrent."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.facilities import missing
from tests.peerproc import AgentProc
from tests.tracker import Tracker, free_port

pytestmark = pytest.mark.timeout(180)

_missing = [b for b in ("transmission-cli", "opentracker") if shutil.which(b) is None]
if _missing:
    missing(f"not installed: {', '.join(_missing)}", module=True)


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


def test_meshbed_seeds_transmission_downloads(tmp_path: Path, cleanup: list[object]) -> None:
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    seeder.start()
    shared = seeder.ok("POST", "/share", {
        "synthetic": {"name": "movie.bin", "size": 3 * 1024 * 1024 + 5, "seed": 6},
        "piece_length": 256 * 1024,
    })
    tracker = Tracker(tmp_path / "tracker", [shared["infohash"]])
    cleanup.append(tracker)
    tracker.announce(shared["infohash"], int(seeder.wire.rsplit(":", 1)[1]), 0)
    tfile = tmp_path / "movie.torrent"
    tfile.write_bytes(tracker.torrent_for(base64.b64decode(shared["metainfo"])))

    config, out, done = tmp_path / "tr-config", tmp_path / "tr-out", tmp_path / "done"
    config.mkdir()
    out.mkdir()
    port = free_port()
    (config / "settings.json").write_text(json.dumps({
        "dht-enabled": False, "lpd-enabled": False, "utp-enabled": False, "pex-enabled": False,
        "port-forwarding-enabled": False, "bind-address-ipv4": "127.0.0.1",
        "bind-address-ipv6": "::1", "peer-port": port, "encryption": 0,
        "rpc-enabled": False, "download-dir": str(out), "incomplete-dir-enabled": False,
    }))
    finish = tmp_path / "finish.sh"
    finish.write_text(f"#!/bin/sh\ntouch {done}\n")
    finish.chmod(0o755)
    proc = subprocess.Popen(
        ["transmission-cli", "-g", str(config), "-w", str(out), "-p", str(port), "-et", "-M",
         "-D", "-U", "-f", str(finish), str(tfile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    cleanup.append(proc)
    # transmission ignores loopback peers from trackers ("martian" addresses) but accepts
    # incoming connections: the seeder dials it.
    deadline = time.monotonic() + 120
    last_dial = 0.0
    while not done.exists():
        if time.monotonic() - last_dial > 3:
            seeder.ok("POST", "/peers", {"peers": [f"127.0.0.1:{port}"],
                                         "infohash": shared["infohash"]})
            last_dial = time.monotonic()
        assert proc.poll() is None, f"transmission-cli exited {proc.returncode}"
        assert time.monotonic() < deadline, f"transmission-cli did not finish: {seeder.logs()}"
        time.sleep(0.2)
    got = hashlib.sha256((out / "movie.bin").read_bytes()).hexdigest()
    assert got == shared["sha256"]
