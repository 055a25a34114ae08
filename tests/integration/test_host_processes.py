"""Host process tracking (orchestrator.hostnet.processes, used by the local and netns
backends): a pid is only signalled while its start time matches; zombies count as gone;
waiting does not block the event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.hostnet import processes

pytestmark = pytest.mark.timeout(30)

SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]


def test_start_time_identifies_a_live_process(tmp_path: Path) -> None:
    pid, started = processes.spawn(SLEEP, log_path=tmp_path / "log")
    try:
        assert started is not None and started > 0
        assert processes.alive(pid, started)
        assert not processes.alive(pid, started + 1)  # same pid, another process
        assert processes.signal_all([(pid, started + 1)], 9) == []
        assert processes.alive(pid, started)  # the mismatch was not signalled
        assert asyncio.run(processes.terminate([(pid, started)], grace=2.0)) == []
        assert not processes.alive(pid, started)
        assert processes.exit_code(pid) is not None or processes.start_time(pid) is None
    finally:
        processes.signal_all([(pid, started)], 9)


def test_zombies_are_not_alive() -> None:
    p = subprocess.Popen(SLEEP)  # not spawned by hostnet: nobody reaps it but us
    started = processes.start_time(p.pid)
    assert processes.signal_all([(p.pid, started)], 9) == [p.pid]
    deadline = time.monotonic() + 5
    while processes.start_time(p.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (Path(f"/proc/{p.pid}/stat").read_text().split(") ")[1][0]) == "Z"  # still a zombie
    assert not processes.alive(p.pid, started)
    p.wait()


def test_the_loop_keeps_running_while_a_process_is_waited_for(tmp_path: Path) -> None:
    """A process that ignores SIGTERM is waited for (grace) and killed; meanwhile other
    coroutines run (nothing sleeps on the loop)."""
    stubborn = [sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "open(__import__('sys').argv[1], 'w').close(); time.sleep(30)",
                str(tmp_path / "ready")]
    target = processes.spawn(stubborn, log_path=tmp_path / "log")

    async def go() -> tuple[list[int], int]:
        while not (tmp_path / "ready").exists():
            await asyncio.sleep(0.01)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        left = await processes.terminate([target], grace=0.5)
        ticker.cancel()
        return left, ticks

    left, ticks = asyncio.run(go())
    assert left == [] and not processes.alive(*target)
    assert ticks >= 10  # the loop ran the other coroutine during the 0.5 s grace


def test_find_by_argument_matches_the_exact_fragment() -> None:
    marker = f"/nonexistent/meshbed-test-{time.time_ns()}/local/"
    p = subprocess.Popen([*SLEEP, "peer", marker + "x/data"])
    try:
        deadline = time.monotonic() + 5
        while p.pid not in processes.find_by_argument(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes.find_by_argument(marker) == [p.pid]
        assert processes.find_by_argument(marker + "other") == []
    finally:
        p.kill()
        p.wait()


def test_spawn_does_not_pass_the_token_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHBED_TOKEN", "secret")
    out = tmp_path / "env"
    pid, started = processes.spawn(
        [sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write(os.environ.get('MESHBED_TOKEN', '-'))"],
        log_path=tmp_path / "log")
    assert asyncio.run(processes.wait_gone([pid], 10)) == []
    assert out.read_text() == "-"
