"""The CLI as a user runs it, on the local backend: `meshbed run/up/status/watch/down`
as separate processes, with ``MESHBED_HOME`` in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.contract.harness import local as local_harness

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = dict(os.environ, MESHBED_HOME=str(tmp_path / "home"), COLUMNS="120")
    e.pop("CI_FORCE_TTY", None)
    yield e
    # Whatever a failed test left: tear down so the next tests start clean.
    subprocess.run([sys.executable, "-m", "orchestrator", "down", "--all"], env=e, cwd=REPO,
                   capture_output=True, timeout=60)


def meshbed(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


agents_of = local_harness.agent_pids


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(env: dict[str, str], mesh: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((Path(env["MESHBED_HOME"]) / mesh / "state.json").read_text())
        return data
    except (OSError, json.JSONDecodeError):
        return {}


def write_topo(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"name: {name}\nbackend: local\nseed: 5\n" + body)
    return path


SLOW = """
defaults:
  link: {up: 4mbit, down: 40mbit}
groups:
  seeders: {count: 1}
  leechers: {count: 3}
content:
  blob: {size: 8MiB, seeders: [seeders]}
scenario:
  - {at: 0s, fetch: {content: blob, by: leechers}}
"""


def assert_gone(env: dict[str, str], mesh: str) -> None:
    assert agents_of(mesh, Path(env["MESHBED_HOME"])) == []
    assert not (Path(env["MESHBED_HOME"]) / mesh).exists()


def test_quickstart_run_writes_a_verified_report(env: dict[str, str], tmp_path: Path) -> None:
    report_path = tmp_path / "r.json"
    res = meshbed(env, "run", "examples/quickstart.yaml", "--report", str(report_path))
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(report_path.read_text())
    assert {"name", "backend", "ok", "contents", "distribution", "nodes"} <= set(r)
    assert r["ok"] is True and r["backend"] == "local" and r["name"] == "quickstart"
    for c in r["contents"].values():
        assert {"size", "chunks", "infohash", "sha256"} <= set(c)
    for d in r["distribution"].values():
        assert {"seconds", "lower_bound_seconds", "efficiency", "client_server_bound_seconds"} <= set(d)
        assert d["seconds"] >= d["lower_bound_seconds"] * 0.9
    fetches = [f for n in r["nodes"].values() for f in n["fetches"].values()]
    assert len(fetches) == 8
    for n in r["nodes"].values():
        assert n["address"].startswith("127.0.0.1:") and n["metrics_url"].endswith("/metrics")
        for f in n["fetches"].values():
            assert f["complete"] and f["verified"] and f["seconds"] > 0 and f["bytes_from"]
    assert "distribution" in res.stdout and "leechers-7" in res.stdout  # the summary table
    assert_gone(env, "quickstart")


def test_unmeetable_expectation_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    topo = write_topo(tmp_path, "too-fast", SLOW + "expect:\n  all_complete_within: 1s\n")
    report_path = tmp_path / "r.json"
    res = meshbed(env, "run", str(topo), "--report", str(report_path))
    assert res.returncode == 1, res.stderr[-3000:]
    r = json.loads(report_path.read_text())
    assert r["ok"] is False and r["expect"]["all_complete_within"]["met"] is False
    assert "NOT met" in res.stdout
    assert_gone(env, "too-fast")


def test_bad_input_exits_2_and_deploys_nothing(env: dict[str, str], tmp_path: Path) -> None:
    topo = write_topo(tmp_path, "bad", "groups:\n  a: {count: 1, colour: red}\n")
    res = meshbed(env, "run", str(topo))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and str(topo) in res.stderr
    assert not (Path(env["MESHBED_HOME"]) / "bad").exists()


def test_up_status_watch_down_from_separate_processes(env: dict[str, str], tmp_path: Path) -> None:
    topo = write_topo(tmp_path, "detached", SLOW)
    up = meshbed(env, "up", str(topo))
    assert up.returncode == 0, up.stderr[-3000:]
    assert len(agents_of("detached", Path(env["MESHBED_HOME"]))) == 4  # `up` returned, the agents run on
    st = meshbed(env, "status")
    assert st.returncode == 0, st.stderr
    for node in ("seeders-0", "leechers-0", "leechers-2"):
        assert node in st.stdout
    assert "blob" in st.stdout and "127.0.0.1:" in st.stdout
    w = meshbed(env, "watch", "detached", "--once")
    assert w.returncode == 0, w.stderr
    assert "swarm" in w.stdout and "leechers-1" in w.stdout
    down = meshbed(env, "down", "detached")
    assert down.returncode == 0, down.stderr
    assert_gone(env, "detached")
    again = meshbed(env, "down", "detached")  # idempotent
    assert again.returncode == 0


@pytest.mark.parametrize("command", ["up", "run"])
def test_kill_9_of_the_orchestrator_then_down_leaves_nothing(
    env: dict[str, str], tmp_path: Path, command: str
) -> None:
    name = f"crash-{command}"
    topo = write_topo(tmp_path, name, SLOW.replace("count: 3", "count: 6"))
    proc = spawn(env, command, str(topo))
    try:
        if command == "up":  # mid-deploy: some agents recorded, maybe not all
            wait_for(lambda: state_of(env, name).get("backends", {}).get("local", {}).get("nodes"), 60,
                     "a recorded agent")
        else:  # mid-scenario
            wait_for(lambda: state_of(env, name).get("phase") == "running", 60, "the scenario to start")
            time.sleep(1.0)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    down = meshbed(env, "down", name)
    assert down.returncode == 0, down.stderr
    assert_gone(env, name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_run_tears_down_and_exits_130(
    env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    topo = write_topo(tmp_path, "interrupted", SLOW)
    proc = spawn(env, "run", str(topo))
    try:
        wait_for(lambda: state_of(env, "interrupted").get("phase") == "running", 60, "the scenario")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130, err[-2000:]
    assert_gone(env, "interrupted")
