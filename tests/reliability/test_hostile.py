"""Hostile peers: honest agents fetch through the control API while one agent of each test-only
hostile mode (corrupt, lie, malformed, stall) takes part. Honest peers complete with correct
bytes; offenders are banned where the mode deserves it; the metrics say what was rejected and
why. The mode needs an explicit flag and cannot be written into a topology."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.loader import load_topology_text
from peer.agent import MAX_VIOLATIONS
from tests.peerproc import AgentProc, wait_for
from tests.reliability.support import ROOT, MiB, file_sha256, metric_sum

pytestmark = pytest.mark.timeout(150)

SIZE = 4 * MiB
PIECE = 128 * 1024
HONEST = 2


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.kill()


def _start(agents: list[AgentProc], a: AgentProc) -> AgentProc:
    agents.append(a)
    return a.start()


@pytest.mark.parametrize("mode", ["corrupt", "lie", "malformed", "stall"])
def test_honest_peers_complete_despite_a_hostile_one(
    tmp_path: Path, agents: list[AgentProc], mode: str
) -> None:
    # A slow honest seeder and a fast hostile peer: honest leechers lean on the hostile one.
    # Against `malformed` the download must outlast a few reconnects: slower still.
    up = "2mbit" if mode == "malformed" else "8mbit"
    seeder = _start(agents, AgentProc(tmp_path, "seeders-0", extra=["--up", up]))
    hostile = _start(agents, AgentProc(
        tmp_path, "hostile-0", extra=["--hostile", mode, "--i-know-this-is-a-test"]))
    shared = seeder.share_synthetic("blob", SIZE, seed=5, piece_length=PIECE)
    ih = shared["infohash"]
    if mode == "lie":  # holds nothing, claims everything, answers with noise
        hostile.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [], "pex": False})
    else:  # holds the real content (same synthetic bytes)
        assert hostile.share_synthetic("blob", SIZE, seed=5, piece_length=PIECE)["infohash"] == ih
    honest = [_start(agents, AgentProc(tmp_path, f"leechers-{i}")) for i in range(HONEST)]
    for a in honest:
        a.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [hostile.wire, seeder.wire],
                                "sha256": shared["sha256"]})

    for a in honest:
        t = a.wait_complete(ih, 90)
        assert t["verified"] is True and t["have"] == t["pieces"], t
        assert file_sha256(a.data_dir / "torrents" / ih / "blob") == shared["sha256"]
        assert t["redownloaded"] == 0

    metrics = [a.call("GET", "/metrics")[1] for a in honest]
    rejected = sum(metric_sum(m, "meshbed_rejected_pieces_total", 'reason="hash_mismatch"')
                   for m in metrics)
    banned = sum(metric_sum(m, "meshbed_banned_peers_total") for m in metrics)
    got_from_hostile = sum(a.torrent(ih)["bytes_from"].get("hostile-0", 0) for a in honest)
    if mode in ("corrupt", "lie"):
        # Bad data was caught by the piece hash, counted, and its sender banned.
        assert rejected >= 1 and banned >= 1, (rejected, banned)
        # Banned means dropped and not reconnected: the offender is left without honest peers.
        wait_for(lambda: hostile.torrent(ih)["peers"] == 0, 15, "the offender to be dropped", 0.2)
    elif mode == "malformed":
        # Each reconnect ends in a protocol error; after MAX_VIOLATIONS the peer is banned
        # instead of being dialed again every couple of seconds for ever.
        assert metric_sum("\n".join(metrics), "meshbed_protocol_errors_total",
                          'reason="frame_too_large"') >= 1
        assert rejected == 0 and got_from_hostile == 0
        for m in metrics:
            assert metric_sum(m, "meshbed_banned_peers_total") >= 1, m[-1500:]
            assert metric_sum(m, "meshbed_protocol_errors_total") <= MAX_VIOLATIONS + 1
    else:  # stall: accepted requests, never answered; routed around, nothing to reject
        assert rejected == 0 and got_from_hostile == 0
    # Everyone honest still serves its API.
    for a in (seeder, *honest):
        assert a.call("GET", "/status")[0] == 200
    assert hostile.proc is not None and hostile.proc.poll() is None


def test_hostile_mode_needs_the_explicit_flag(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for mode in ("corrupt", "lie", "malformed", "stall"):
        proc = subprocess.run(
            [sys.executable, "-m", "peer", "run", "--data-dir", str(tmp_path / mode), "--hostile", mode],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "--i-know-this-is-a-test" in proc.stderr
        assert not (tmp_path / mode).exists(), "refused before touching anything"


BASE = """name: evil
groups:
  seeders: {count: 1}
  leechers: {count: 2}
content:
  blob: {size: 1MiB, seeders: [seeders]}
"""


@pytest.mark.parametrize("where,text", [
    ("top", BASE + "hostile: corrupt\n"),
    ("group", BASE.replace("leechers: {count: 2}", "leechers: {count: 2, hostile: lie}")),
    ("defaults", BASE + "defaults: {hostile: stall}\n"),
    ("content", BASE.replace("seeders: [seeders]}", "seeders: [seeders], hostile: corrupt}")),
])
def test_topologies_cannot_express_hostile_modes(where: str, text: str) -> None:
    with pytest.raises(InputError) as info:
        load_topology_text(text)
    assert "unknown key 'hostile'" in info.value.message, (where, str(info.value))


def test_orchestrator_never_passes_hostile_flags() -> None:
    """No orchestrator code can start an agent in a hostile mode."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "orchestrator").rglob("*.py")
                 if "--hostile" in p.read_text() or "i-know-this-is-a-test" in p.read_text()]
    assert offenders == []
