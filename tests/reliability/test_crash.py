"""Crash safety. An agent SIGKILLed while it writes chunks, many times at seeded random points:
its store never holds a journaled chunk that fails its hash, it never loses a verified chunk,
and it resumes to a verified copy. The orchestrator (`meshbed up`, `meshbed run`) SIGKILLed
mid-deploy and mid-run: `meshbed down` removes every process and folder."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peerproc import AgentProc, wait_for
from tests.reliability.support import (
    ROOT,
    MiB,
    check_store,
    file_sha256,
    harness,
    leftovers,
    selected_backends,
    write_topology,
)

pytestmark = pytest.mark.timeout(240)

KILLS = 10


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.kill()


def test_agent_sigkill_while_writing_never_keeps_a_bad_chunk(
    tmp_path: Path, agents: list[AgentProc]
) -> None:
    rng = random.Random(1234)
    seeder = AgentProc(tmp_path, "seeders-0")
    agents.append(seeder.start())
    shared = seeder.share_synthetic("blob", 8 * MiB, seed=3, piece_length=64 * 1024)
    ih = shared["infohash"]
    # 8 mbit down: the 8 MiB take >= 8.4 s of download time. Each round below downloads for
    # its sleep (0.15-0.6 s) plus one status poll, so 5 rounds (<= ~3.5 s) stay well short of a
    # whole copy, however slow restarts are on a loaded host.
    leecher = AgentProc(tmp_path, "leechers-0", extra=["--down", "8mbit"])
    agents.append(leecher)
    root = leecher.data_dir / "torrents" / ih
    held = 0
    kills = 0
    for round_ in range(KILLS):
        leecher.start()
        t = leecher.torrent(ih)
        if round_ == 0:
            leecher.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [seeder.wire],
                                         "sha256": shared["sha256"]})
        else:
            # Resumed on its own from the data dir with at least every chunk verified before.
            assert t is not None, f"round {round_}: torrent not resumed"
            assert t["resumed_pieces"] >= held, (round_, t["resumed_pieces"], held)
            if t["complete"]:
                break
        # A resumed agent takes a while to reconnect: kill it while it writes, i.e. at a seeded
        # random point once chunks arrive again (a fixed sleep after the start often killed it
        # before its first new chunk).
        start_have = 0 if t is None else int(t["have"])

        def arriving(since: int = start_have) -> bool:
            return int((leecher.torrent(ih) or {}).get("have", 0)) > since

        wait_for(arriving, 60, f"round {round_}: chunks arriving", 0.02)
        time.sleep(rng.uniform(0.15, 0.6))
        assert leecher.proc is not None
        leecher.proc.send_signal(signal.SIGKILL)
        leecher.proc.wait(10)
        kills += 1
        good, bad = check_store(root)
        assert bad == [], f"round {round_}: journaled chunks failing their hash: {bad}"
        assert len(good) >= held, "a verified chunk was lost"
        held = len(good)
    assert kills >= 5, f"only {kills} kills happened before completion: make the download slower"
    if leecher.proc is None or leecher.proc.poll() is not None:
        leecher.start()
    t = leecher.wait_complete(ih, 90)
    assert t["verified"] is True and t["redownloaded"] == 0
    assert file_sha256(root / "blob") == shared["sha256"]


def _meshbed(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _state(home: Path, mesh: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((home / mesh / "state.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def _phase_is(home: Path, mesh: str, phase: str) -> bool:
    return _state(home, mesh).get("phase") == phase


TOPO: dict[str, Any] = {
    "seed": 4,
    "defaults": {"link": {"up": "4mbit", "down": "40mbit"}},
    "groups": {"seeders": {"count": 1}, "leechers": {"count": 4}},
    "content": {"blob": {"size": "4MiB", "seeders": ["seeders"]}},
    "scenario": [{"at": "0s", "fetch": {"content": "blob", "by": "leechers"}}],
}


@pytest.mark.parametrize("backend", selected_backends())
@pytest.mark.parametrize("command,points", [("up", 3), ("run", 2)])
def test_orchestrator_sigkill_at_random_points_then_down_cleans_all(
    tmp_path: Path, command: str, points: int, backend: str
) -> None:
    harness(backend)
    if backend != "local":
        points -= 1  # slower deploys and teardowns: keep the folder within its time budget
    rng = random.Random(f"orchestrator-{command}-{backend}")
    home = tmp_path / "home"
    env = dict(os.environ, MESHBED_HOME=str(home))
    for i in range(points):
        name = f"okill-{command}-{backend[:5]}-{i}"
        _, topo = write_topology(tmp_path, backend, "okill", TOPO, name=name)
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", command, str(topo)], env=env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if command == "up":  # somewhere in the deploy: from the first saved state on
                wait_for(functools.partial(_state, home, name), 60, "the first state save", 0.02)
                time.sleep(rng.uniform(0.0, 2.5))
            else:  # somewhere in the scenario
                wait_for(functools.partial(_phase_is, home, name, "running"), 90,
                         "the scenario to start", 0.05)
                time.sleep(rng.uniform(0.2, 3.0))
            proc.kill()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        down = _meshbed(env, "down", name)
        assert down.returncode == 0, down.stderr
        assert leftovers(backend, name, home) == [], (name, i)
        again = _meshbed(env, "down", name)  # idempotent
        assert again.returncode == 0
    # Shared folders (content cache, monitor targets) may stay; nothing of the meshes does.
    left = [str(p.relative_to(home)) for p in home.rglob("*") if "okill-" in str(p)]
    assert left == [], left
