"""The local backend's fork server (peer/forkserver.py, orchestrator/backends/local/forks.py):
agents are its children yet look like `meshbed-peer run` agents; a lost server is replaced;
only its own user may ask it for a process; a failing agent's exit status reaches `up`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.local.forks import ForkServer, socket_name
from orchestrator.hostnet import processes
from peer import forkserver
from tests.facilities import require

pytestmark = pytest.mark.timeout(120)

TOPOLOGY = """\
name: {name}
backend: local
groups:
  n: {{count: 2}}
"""


def _meshbed(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHBED_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env,
                          capture_output=True, text=True, timeout=100)


def _state(home: Path, name: str) -> dict:
    return json.loads((home / name / "state.json").read_text())


def _argv(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")


def _ppid(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2 :].split()[1])


def _ignored(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                if x.startswith("SigIgn:"))
    return int(line.split()[1], 16)


@pytest.fixture
def mesh(tmp_path: Path):
    name = f"forks-{os.getpid() % 100000}"
    home = tmp_path / "home"
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY.format(name=name))
    up = _meshbed(home, "up", str(topo))
    assert up.returncode == 0, up.stderr
    yield home, name
    down = _meshbed(home, "down", name)
    assert down.returncode == 0, down.stderr
    assert not (home / name).exists()


def _local(state: dict) -> dict:
    return next(b for b in state["backends"].values() if "forkserver" in b)


def test_agents_are_forked_yet_look_like_agents(mesh: tuple[Path, str]) -> None:
    home, name = mesh
    local = _local(_state(home, name))
    server = local["forkserver"]["pid"]
    assert processes.alive(server, local["forkserver"]["start_time"])
    for node, entry in local["nodes"].items():
        argv = _argv(entry["pid"])
        assert _ppid(entry["pid"]) == server
        assert argv[1:4] == [b"-m", b"peer", b"run"]
        assert argv[argv.index(b"--node") + 1] == node.encode()
        assert argv[argv.index(b"--data-dir") + 1] == str(
            home / name / "local" / node / "data").encode()
        # SIGPIPE ignored, as in any Python: a write to a closed socket raises, never kills
        assert _ignored(entry["pid"]) & (1 << (signal.SIGPIPE - 1))


def test_a_lost_fork_server_is_replaced_on_the_next_launch(tmp_path: Path) -> None:
    root = tmp_path / "local"
    root.mkdir()
    entry: dict = {}
    saved = []
    forks = ForkServer(root, entry, lambda: saved.append(dict(entry)))
    sleeper = ["--version"]  # prints and exits 0: all a launch needs here

    async def launch(n: int) -> processes.Target:
        return await forks.spawn(sleeper, [sys.executable, "-m", "peer", *sleeper],
                                 tmp_path / f"{n}.log", tmp_path / f"{n}.exit")

    try:
        asyncio.run(launch(1))
        first = forks.target
        assert saved and saved[0]["pid"] == first[0]  # recorded before it was waited for
        os.kill(first[0], signal.SIGKILL)
        asyncio.run(processes.wait_gone([first[0]], timeout=10))
        asyncio.run(launch(2))
        second = forks.target
        assert second[0] != first[0] and processes.alive(*second)
        deadline = time.monotonic() + 20
        while not (tmp_path / "2.exit").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the new server reaps its child on its next turn
        assert (tmp_path / "2.exit").read_text().strip() == "0"
        assert "meshbed-peer" in (tmp_path / "2.log").read_text()
    finally:
        asyncio.run(processes.terminate([forks.target], grace=5))


def test_another_user_gets_no_answer(mesh: tuple[Path, str], tmp_path: Path) -> None:
    require(None if os.getuid() == 0 else "root (to act as another user)")
    home, name = mesh
    log = tmp_path / "stranger.log"
    address = forkserver.address(socket_name(home / name / "local"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # as nobody: ask for a process, report what came back
        code = 1
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(address)
                try:
                    s.sendall(json.dumps({"args": ["--version"], "log": str(log)}).encode()
                              + b"\n")
                    os.write(write, b"answer:" + s.recv(100))
                except (BrokenPipeError, ConnectionResetError):
                    os.write(write, b"answer:")  # closed before or after we asked
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report it, the parent asserts
            os.write(write, repr(exc).encode()[:150])
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    got = os.read(read, 200)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0, got
    assert got == b"answer:"  # closed without a word
    assert not log.exists()  # and nothing was started


def test_the_exit_status_of_a_failing_agent_is_recorded(tmp_path: Path) -> None:
    """`run` without --data-dir exits 2 at once: the server reaps it and writes 2 where the
    request asked; the child's output went to its log."""
    root = tmp_path / "local"
    root.mkdir()
    entry: dict = {}
    forks = ForkServer(root, entry, lambda: None)

    async def go() -> processes.Target:
        target = await forks.spawn(["run"], [sys.executable, "-m", "peer", "run"],
                                   tmp_path / "agent.log", tmp_path / "exit_status")
        await processes.wait_gone([target[0]], timeout=20)
        return target

    try:
        asyncio.run(go())
        deadline = time.monotonic() + 20
        while not (tmp_path / "exit_status").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the server reaps on its next turn
        assert (tmp_path / "exit_status").read_text().strip() == "2"
        assert "--data-dir" in (tmp_path / "agent.log").read_text()
    finally:
        asyncio.run(processes.terminate([forks.target], grace=5))
