"""Nothing of a docker mesh is left behind: after `down`, after `down` with a partition in
force, and after the orchestrator was SIGKILLed in the middle of a deploy. Plus the
unreachable-daemon path: exit 2, one line, nothing deployed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.docker import DockerBackend, client, containers, shaping
from orchestrator.mesh import Mesh
from tests.integration.docker_support import (
    leftovers,
    mesh_name,
    require_docker,
    topology,
    write_topology,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]


def _meshbed(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("attach", ["veth", "docker"])
def test_cli_up_then_down_leaves_nothing(tmp_path: Path, attach: str) -> None:
    """Both ways of attaching containers: our own veth (root, local daemon: the default
    here) and docker's network attach (the fallback, forced by MESHBED_DOCKER_ATTACH)."""
    require_docker()
    name = mesh_name("dcli")
    env = {**os.environ, "MESHBED_HOME": str(tmp_path / "home"), "MESHBED_DOCKER_ATTACH": attach}
    path = write_topology(
        tmp_path, name,
        {"peers": {"count": 2, "link": {"up": "20mbit"}},
         "small": {"count": 1, "resources": {"cpus": 0.5, "memory": "128MiB"}}},
        {"blob": {"size": "1MiB", "seeders": ["peers[0]"]}}, [])
    try:
        up = _meshbed("up", str(path), env=env)
        assert up.returncode == 0, up.stderr + up.stdout
        found = leftovers(name)
        assert sum(x.startswith("container ") for x in found) == 3, found
        assert any(x.startswith("network ") for x in found), found
        c = client()
        try:
            small = c.api.inspect_container(f"meshbed-{name}-small-0")["HostConfig"]
            peer = c.api.inspect_container(f"meshbed-{name}-peers-0")["HostConfig"]
        finally:
            c.close()
        assert small["NanoCpus"] == 500_000_000 and small["Memory"] == 128 << 20
        assert not peer["NanoCpus"] and not peer["Memory"]
        if os.geteuid() == 0:
            assert peer["NetworkMode"] == ("none" if attach == "veth" else f"meshbed-{name}")
        status = _meshbed("status", name, env=env)
        assert status.returncode == 0 and "peers-1" in status.stdout, status.stderr
    finally:
        down = _meshbed("down", name, env=env)
    assert down.returncode == 0, down.stderr + down.stdout
    assert leftovers(name) == []
    assert not (tmp_path / "home" / name).exists()


def test_orchestrator_killed_mid_deploy_then_down(tmp_path: Path) -> None:
    require_docker()
    name = mesh_name("dkill")
    env = {**os.environ, "MESHBED_HOME": str(tmp_path / "home")}
    path = write_topology(tmp_path, name, {"peers": {"count": 24, "link": {"up": "50mbit"}}},
                          {"blob": {"size": "1MiB", "seeders": ["peers[0]"]}}, [])
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "up", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = client()
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                if containers.find(c, name):
                    break
                time.sleep(0.05)
            started = len(containers.find(c, name))
        finally:
            c.close()
        assert proc.poll() is None, "the deploy ended before the first container appeared"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert started >= 1
    print(f"killed with {started} of 24 containers started")
    assert leftovers(name) != []  # the kill left a half-deployed mesh behind
    down = _meshbed("down", name, env=env)
    assert down.returncode == 0, down.stderr + down.stdout
    assert leftovers(name) == []


def test_down_with_partition_in_force_removes_rules(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    require_docker()
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    name = mesh_name("dpart")
    topo = topology(tmp_path, name, {"a": {"count": 2}, "b": {"count": 2}},
                    {"blob": {"size": "1MiB", "seeders": ["a[0]"]}}, [])

    async def go() -> None:
        mesh = Mesh(topo)
        try:
            await mesh.up()
            await mesh.partition([["a-0", "a-1"], ["b-0", "b-1"]])
            # as root with br_netfilter the kernel does it; else the agents' blocklists
            assert mesh.kernel_partition is shaping.partition_available()
            if mesh.kernel_partition:
                assert any(x.startswith("iptables ") for x in leftovers(name)), leftovers(name)
        finally:
            await mesh.down()

    asyncio.run(go())
    assert leftovers(name) == []


def test_unreachable_daemon_is_bad_input(tmp_path: Path) -> None:
    env = {**os.environ, "MESHBED_HOME": str(tmp_path / "home"),
           "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    name = mesh_name("dnone")
    path = write_topology(tmp_path, name, {"peers": {"count": 2}},
                          {"blob": {"size": "1MiB", "seeders": ["peers[0]"]}}, [])
    up = _meshbed("up", str(path), env=env, timeout=60)  # a hang fails here
    assert up.returncode == 2, up.stderr + up.stdout
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Docker engine" in lines[0], up.stderr
    assert "backend: local" in lines[0]
    assert not (tmp_path / "home" / name).exists()


def test_unavailable_reason_names_the_cause(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    reason = DockerBackend.unavailable_reason()
    assert reason is not None and reason.startswith("cannot reach the Docker engine (")


def test_failed_deploy_rolls_back_everything(tmp_path: Path) -> None:
    """One group names an image that does not exist: `up` exits 1 and leaves nothing."""
    require_docker()
    name = mesh_name("dfail")
    env = {**os.environ, "MESHBED_HOME": str(tmp_path / "home")}
    path = write_topology(
        tmp_path, name,
        {"good": {"count": 4}, "bad": {"count": 1, "image": "meshbed/absent-image:0"}},
        {"blob": {"size": "1MiB", "seeders": ["good"]}}, [])
    up = _meshbed("up", str(path), env=env)
    assert up.returncode == 1, up.stderr + up.stdout
    assert "absent-image" in up.stderr + up.stdout
    assert leftovers(name) == []
    assert not (tmp_path / "home" / name).exists()


def test_lost_state_folder_is_cleaned_by_label(tmp_path: Path) -> None:
    """The state folder is gone: the mesh's objects are still found by label."""
    require_docker()
    name = mesh_name("dorph")
    home = tmp_path / "home"
    env = {**os.environ, "MESHBED_HOME": str(home)}
    path = write_topology(tmp_path, name, {"peers": {"count": 2, "link": {"down": "30mbit"}}},
                          {"blob": {"size": "1MiB", "seeders": ["peers[0]"]}}, [])
    up = _meshbed("up", str(path), env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    shutil.rmtree(home / name)
    c = client()
    # a look-alike: the mesh's container name pattern, no meshbed label
    image = c.api.inspect_container(f"meshbed-{name}-peers-0")["Config"]["Image"]
    impostor = c.api.create_container(image, name=f"meshbed-{name}-impostor")["Id"]
    try:
        doctor = _meshbed("doctor", env=env)
        assert f"{name} (docker, " in doctor.stdout, doctor.stdout
        clean = _meshbed("doctor", "--clean-orphans", name, env=env)
        assert clean.returncode == 0 and f"docker: {name}: removed" in clean.stdout, \
            clean.stderr + clean.stdout
        assert leftovers(name) == []
        assert c.api.inspect_container(impostor)["Name"] == f"/meshbed-{name}-impostor"
    finally:
        c.api.remove_container(impostor, force=True)
        c.close()
