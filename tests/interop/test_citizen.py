"""The agent as an ordinary BitTorrent client, against real ones on 127.0.0.1: encrypted
handshakes with default settings (libtorrent, aria2c) and with encryption required
(transmission-cli), magnet links both ways with libtorrent, and a mixed swarm that finds
itself only through a real opentracker."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.facilities import missing
from tests.peerproc import AgentProc, http, wait_for
from tests.tracker import Tracker, free_port

try:
    import libtorrent as lt
except ImportError:
    missing("libtorrent (PyPI) is not installed", module=True)

from peer import metainfo
from peer.metadata import make_magnet
from tests.ltpeer import LtPeer

pytestmark = pytest.mark.timeout(180)
PIECE = 64 * 1024
_SAMPLE = re.compile(r'^(meshbed_[a-z_]+)\{([^}]*)\} ([0-9.e+-]+)$', re.M)


def _need(*tools: str) -> None:
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        missing(f"not installed: {', '.join(absent)}")


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    things: list[object] = []
    yield things
    for t in reversed(things):
        if isinstance(t, AgentProc):
            t.kill()
        elif isinstance(t, (LtPeer, Tracker)):
            t.close()
        elif isinstance(t, subprocess.Popen):
            t.kill()
            t.wait(10)


def _metrics(a: AgentProc) -> dict[tuple[str, str], float]:
    status, text = http("GET", f"http://{a.api}/metrics")
    assert status == 200
    return {(m[0], m[1]): float(m[2]) for m in _SAMPLE.findall(text)}


def _handshakes(a: AgentProc) -> dict[str, float]:
    """Handshakes by crypto, plus the bad_handshake and summed mse_* protocol errors."""
    m = _metrics(a)
    out = {c: m.get(("meshbed_handshakes_total", f'crypto="{c}"'), 0.0)
           for c in ("none", "plaintext", "rc4")}
    out["bad_handshake"] = m[("meshbed_protocol_errors_total", 'reason="bad_handshake"')]
    out["mse_errors"] = sum(v for (name, lab), v in m.items()
                            if name == "meshbed_protocol_errors_total" and '"mse_' in lab)
    return out


def _file(root: Path, name: str, size: int, seed: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    f = root / name
    f.write_bytes(random.Random(seed).randbytes(size))
    return f


def _share(a: AgentProc, src: Path, meta: metainfo.Metainfo, trackers: Any = None) -> Any:
    body: dict[str, Any] = {"file": str(src.relative_to(a.data_dir)),
                            "metainfo": base64.b64encode(meta.to_torrent_bytes()).decode()}
    if trackers:
        body["trackers"] = trackers
    return a.ok("POST", "/share", body)


def test_libtorrent_default_settings_first_try(tmp_path: Path, cleanup: list[object]) -> None:
    """libtorrent (defaults: MSE first) downloads from an agent on its first connection:
    MSE with plaintext selected, no plain fallback, no protocol error."""
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    src = _file(seeder.data_dir, "a.bin", 3 * 1024 * 1024 + 7, 1)
    seeder.start()
    meta = metainfo.create(src, piece_length=PIECE)
    _share(seeder, src, meta)
    peer = LtPeer(tmp_path / "lt")
    cleanup.append(peer)
    peer.add(meta.to_torrent_bytes())
    peer.connect(seeder.wire)  # once: a failed first try would need a second connect
    peer.wait_state(seeding=True, timeout=60)
    hs = _handshakes(seeder)
    assert hs["plaintext"] >= 1 and hs["none"] == 0, hs
    assert hs["bad_handshake"] == 0 and hs["mse_errors"] == 0, hs
    got = peer.save_path / "a.bin"
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_aria2_default_settings_first_try(tmp_path: Path, cleanup: list[object]) -> None:
    """aria2c with defaults finds the agent through the tracker the agent announced to, and
    completes over MSE (plaintext selected) without a plain fallback."""
    _need("aria2c", "opentracker")
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    src = _file(seeder.data_dir, "b.bin", 4 * 1024 * 1024 + 3, 2)
    seeder.start()
    meta = metainfo.create(src, piece_length=PIECE)
    tracker = Tracker(tmp_path / "tracker", [meta.hexhash])
    cleanup.append(tracker)
    tracker.announce(meta.hexhash, 1, 0)  # waits until the whitelist is loaded
    shared = _share(seeder, src, meta, [[tracker.url]])
    wait_for(lambda: (seeder.torrent(meta.hexhash) or {}).get("tracker", {}).get("announces"),
             30, "the seeder's announce")
    tfile = tmp_path / "b.torrent"
    tfile.write_bytes(base64.b64decode(shared["metainfo"]))  # carries the tracker URL
    out = tmp_path / "aria2"
    r = subprocess.run(
        ["aria2c", "--no-conf", f"--dir={out}", "--enable-dht=false", "--enable-dht6=false",
         "--bt-enable-lpd=false", "--enable-peer-exchange=false",
         f"--listen-port={free_port()}", "--interface=127.0.0.1", "--file-allocation=none",
         "--summary-interval=0", "--console-log-level=warn", "--seed-time=0",
         "--bt-stop-timeout=90", str(tfile)],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (out / "b.bin").read_bytes() == src.read_bytes()
    hs = _handshakes(seeder)
    assert hs["plaintext"] >= 1 and hs["none"] == 0, hs
    assert hs["bad_handshake"] == 0 and hs["mse_errors"] == 0, hs


def test_transmission_encryption_required_downloads(tmp_path: Path,
                                                    cleanup: list[object]) -> None:
    """transmission-cli with encryption required: the agent's plain handshake is refused,
    the agent dials again with MSE and serves it over RC4."""
    _need("transmission-cli", "opentracker")
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    src = _file(seeder.data_dir, "c.bin", 2 * 1024 * 1024 + 11, 3)
    seeder.start()
    meta = metainfo.create(src, piece_length=256 * 1024)
    tracker = Tracker(tmp_path / "tracker", [meta.hexhash])
    cleanup.append(tracker)
    shared = _share(seeder, src, meta, [[tracker.url]])
    tfile = tmp_path / "c.torrent"
    tfile.write_bytes(base64.b64decode(shared["metainfo"]))
    config, out, done = tmp_path / "tr-config", tmp_path / "tr-out", tmp_path / "done"
    config.mkdir()
    out.mkdir()
    port = free_port()
    (config / "settings.json").write_text(json.dumps({
        "dht-enabled": False, "lpd-enabled": False, "utp-enabled": False, "pex-enabled": False,
        "port-forwarding-enabled": False, "bind-address-ipv4": "127.0.0.1",
        "bind-address-ipv6": "::1", "peer-port": port, "encryption": 2,
        "rpc-enabled": False, "download-dir": str(out), "incomplete-dir-enabled": False,
    }))
    finish = tmp_path / "finish.sh"
    finish.write_text(f"#!/bin/sh\ntouch {done}\n")
    finish.chmod(0o755)
    proc = subprocess.Popen(
        ["transmission-cli", "-g", str(config), "-w", str(out), "-p", str(port), "-er", "-M",
         "-D", "-U", "-f", str(finish), str(tfile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    cleanup.append(proc)
    # transmission ignores loopback peers from trackers: the seeder dials it (POST /peers
    # again dials at once, backoff or not).
    deadline = time.monotonic() + 120
    last = 0.0
    while not done.exists():
        if time.monotonic() - last > 3:
            seeder.ok("POST", "/peers", {"peers": [f"127.0.0.1:{port}"],
                                         "infohash": meta.hexhash})
            last = time.monotonic()
        assert proc.poll() is None, f"transmission-cli exited {proc.returncode}"
        assert time.monotonic() < deadline, f"transmission-cli did not finish: {seeder.logs()}"
        time.sleep(0.2)
    assert (out / "c.bin").read_bytes() == src.read_bytes()
    assert _handshakes(seeder)["rc4"] >= 1


def test_libtorrent_magnet_from_agent(tmp_path: Path, cleanup: list[object]) -> None:
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    src = _file(seeder.data_dir, "d.bin", 1024 * 1024 + 5, 4)
    seeder.start()
    meta = metainfo.create(src, piece_length=PIECE, hybrid=True)
    _share(seeder, src, meta)
    host, port = seeder.wire.rsplit(":", 1)
    peer = LtPeer(tmp_path / "lt")
    cleanup.append(peer)
    atp = lt.parse_magnet_uri(make_magnet(meta.info_hash, name=meta.name,
                                          peers=((host, int(port)),)))
    atp.save_path = str(peer.save_path)
    peer.handle = peer.session.add_torrent(atp)
    peer.wait_state(seeding=True, timeout=90, connect=(seeder.wire,))
    assert bytes(peer.handle.torrent_file().info_section()) == meta.info_bytes
    assert (peer.save_path / "d.bin").read_bytes() == src.read_bytes()


def test_agent_magnet_from_libtorrent(tmp_path: Path, cleanup: list[object]) -> None:
    src = _file(tmp_path / "lt", "e.bin", 1024 * 1024 + 9, 5)
    meta = metainfo.create(src, piece_length=PIECE)
    peer = LtPeer(src.parent)
    cleanup.append(peer)
    peer.add(meta.to_torrent_bytes())
    peer.wait_state(seeding=True, timeout=60)
    leecher = AgentProc(tmp_path, "leechers-0")
    cleanup.append(leecher)
    leecher.start()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    got = leecher.ok("POST", "/fetch", {
        "magnet": make_magnet(meta.info_hash, name=meta.name, peers=(("127.0.0.1", peer.port),)),
        "sha256": sha})
    assert got["infohash"] == meta.hexhash
    t = leecher.wait_complete(meta.hexhash, 90)
    assert t["verified"] is True and t["size"] == src.stat().st_size


def test_mixed_swarm_meets_through_the_tracker(tmp_path: Path, cleanup: list[object]) -> None:
    """An agent seeder, a libtorrent leecher and an agent leecher, given no addresses at
    all: each learns the others from opentracker and both leechers complete."""
    _need("opentracker")
    seeder = AgentProc(tmp_path, "seeders-0")
    cleanup.append(seeder)
    src = _file(seeder.data_dir, "f.bin", 3 * 1024 * 1024 + 1, 6)
    seeder.start()
    meta = metainfo.create(src, piece_length=PIECE)
    tracker = Tracker(tmp_path / "tracker", [meta.hexhash])
    cleanup.append(tracker)
    tracker.announce(meta.hexhash, 1, 0)  # waits until the whitelist is loaded
    shared = _share(seeder, src, meta, [[tracker.url]])
    torrent = base64.b64decode(shared["metainfo"])
    wait_for(lambda: (seeder.torrent(meta.hexhash) or {}).get("tracker", {}).get("announces"),
             30, "the seeder's announce")
    peer = LtPeer(tmp_path / "lt")
    cleanup.append(peer)
    peer.add(torrent)
    leecher = AgentProc(tmp_path, "leechers-0")
    cleanup.append(leecher)
    leecher.start()
    leecher.ok("POST", "/fetch", {"metainfo": base64.b64encode(torrent).decode()})
    t = leecher.wait_complete(meta.hexhash, 120)
    # the tracker told it of the seeder and libtorrent (and the whitelist probe)
    assert t["tracker"]["announces"] >= 1 and t["tracker"]["last"]["peers"] >= 2, t
    wait_for(lambda: leecher.known(meta.hexhash)["tracker"]["announces"] >= 2, 30,
             "the leecher's 'completed' announce")
    peer.wait_state(seeding=True, timeout=120)
    assert (peer.save_path / "f.bin").read_bytes() == src.read_bytes()
