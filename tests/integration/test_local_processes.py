"""Local backend process tracking: a pid is only signalled while its start time matches."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from orchestrator.backends.local import processes

pytestmark = pytest.mark.timeout(30)


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_start_time_identifies_a_live_process() -> None:
    p = sleeper()
    try:
        started = processes.start_time(p.pid)
        assert started is not None and started > 0
        assert processes.is_ours(p.pid, started)
        assert not processes.is_ours(p.pid, started + 1)  # same pid, another process
        assert not processes.signal_ours(p.pid, started + 1, 9)
        assert p.poll() is None  # the mismatch was not signalled
        processes.end(p.pid, started, grace=2.0, child=p)
        assert p.returncode is not None
        assert not processes.is_ours(p.pid, started)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigkill_without_grace_and_zombies_are_not_ours() -> None:
    p = sleeper()
    started = processes.start_time(p.pid)
    assert processes.signal_ours(p.pid, started, 9)
    deadline = time.monotonic() + 5
    while processes._state_letter(p.pid) not in ("Z", None) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not processes.is_ours(p.pid, started)  # a zombie holds nothing: not "running"
    p.wait()
    assert processes.start_time(p.pid) is None


def test_find_by_argument_matches_the_exact_fragment(tmp_path: object) -> None:
    marker = f"/nonexistent/meshbed-test-{time.time_ns()}/local/"
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "peer", marker + "x/data"])
    try:
        deadline = time.monotonic() + 5
        while p.pid not in processes.find_by_argument(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes.find_by_argument(marker) == [p.pid]
        assert processes.find_by_argument(marker + "other") == []
    finally:
        p.kill()
        p.wait()
