"""The ssh backend on stand-in devices (tests/sshlab.py kinds): a Debian 11 arm64 "pi" with
Python 3.9 under qemu-user, a busybox "router" (ash, no bash, no systemd, 48 MiB tmpfs /tmp,
Python 3.9) and a "laptop" (this host's Debian), each behind its own sshd in a namespace."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from tests.integration import docker_support as ds
from tests.sshlab import SshLab, lab_fixture

pytestmark = [pytest.mark.sshd, pytest.mark.root, pytest.mark.timeout(300)]
KINDS = ("pi", "router", "laptop")
ssh_lab = lab_fixture(len(KINDS), kinds=KINDS)
REPO = Path(__file__).resolve().parents[2]


def meshbed(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if home is not None:
        env["MESHBED_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "orchestrator", *args],
                          capture_output=True, text=True, timeout=240, env=env)


def line_of(out: str, device: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith(f"{device}: ")]
    assert len(lines) == 1, out
    return lines[0]


def ssh(lab: SshLab, dev_index: int, command: str) -> str:
    dev = lab.devices[dev_index]
    r = subprocess.run(["ssh", "-i", str(lab.user_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                        "-o", "BatchMode=yes", f"root@{dev.host}", command],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_stand_ins_are_what_they_stand_in_for(ssh_lab: SshLab) -> None:
    probe = ("uname -m; python3 -c 'import sys; print(sys.version.split()[0])'; "
             "[ -e /bin/bash ] && echo bash; [ -d /run/systemd/system ] && echo systemd; "
             "readlink /bin/sh; df -k /tmp | tail -1")
    pi = ssh(ssh_lab, 0, probe).split("\n")
    assert pi[:2] == ["aarch64", "3.9.2"] and "systemd" not in pi, pi
    router = ssh(ssh_lab, 1, probe).split("\n")
    assert router[:3] == [os.uname().machine, "3.9.2", "/bin/busybox"], router  # no bash, no systemd
    assert router[3].split()[0] == "tmpfs" and int(router[3].split()[1]) == 48 * 1024, router


def test_check_reports_each_stand_in(ssh_lab: SshLab) -> None:
    r = meshbed("devices", "check", str(ssh_lab.inventory_path))
    assert r.returncode == 0, r.stdout + r.stderr
    pi, router, laptop = (line_of(r.stdout, d.name) for d in ssh_lab.devices)
    host_py = subprocess.run(["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert pi.startswith("pi-0: ok  aarch64, Python 3.9.2,"), pi
    assert "profile raspberry-pi-4" in pi and "start setsid" in pi
    assert router.startswith(f"router-1: ok  {os.uname().machine}, Python 3.9.2, "), router
    assert "MiB free" in router and "below the data cap 64.0 MiB" in router  # the 48 MiB tmpfs
    assert laptop.startswith(f"laptop-2: ok  {os.uname().machine}, Python {host_py},"), laptop
    for line in (pi, router, laptop):  # one kernel clock: sub-second even on busybox (no date +%N)
        m = re.search(r" clock ([+-]\d+) ms,", line)
        assert m and abs(int(m.group(1))) < 500, line
    assert len(r.stdout.splitlines()) == 4 and all(len(ln) < 200 for ln in r.stdout.splitlines())


def test_check_refuses_a_device_too_small_for_the_content(ssh_lab: SshLab) -> None:
    r = meshbed("devices", "check", str(ssh_lab.inventory_path), "--need", "100MiB")
    assert r.returncode == 1
    router = line_of(r.stdout, "router-1")
    assert router.startswith("router-1: REFUSED") and "free in /tmp < 100.0 MiB the content needs" in router
    assert line_of(r.stdout, "pi-0").startswith("pi-0: ok")
    assert r.stderr.strip().splitlines() == ["meshbed: 1 of 3 devices not usable: router-1"]


def _mixed_topology(lab: SshLab, tmp: Path, name: str, size: str, extra: dict[str, Any] | None = None) -> Path:
    groups: dict[str, Any] = {
        "pis": {"devices": ["pi-0"]},
        "routers": {"devices": ["router-1"]},
        "laptops": {"devices": ["laptop-2"]},
        **(extra or {}),
    }
    doc = {
        "name": name,
        "backend": "ssh",
        "inventory": str(lab.inventory_path),
        "seed": 7,
        "groups": groups,
        "content": {"blob": {"size": size, "seeders": ["laptops"]}},
        "scenario": [{"at": "0s", "fetch": {"content": "blob", "by": [g for g in groups if g != "laptops"]}}],
        "expect": {"all_complete_within": "120s"},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_mixed_mesh_docker_local_and_stand_ins(ssh_lab: SshLab, tmp_path: Path) -> None:
    """One mesh: a container, a local peer and the three stand-ins; each device starts its
    agent the way its profile picks (no systemd in any of them: setsid, busybox's on the
    router). `down` leaves nothing on any of them."""
    ds.require_docker()
    ds.docker_harness.setup()  # the peer image (offline base) exists after this
    name = ds.mesh_name("standins")
    extra = {"locals": {"count": 1, "backend": "local"}, "dockers": {"count": 1, "backend": "docker"}}
    topo = load_topology(_mixed_topology(ssh_lab, tmp_path, name, "3MiB", extra))

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        mesh = Mesh(topo, home=tmp_path / "home")
        await mesh.up()
        try:
            await mesh.play()
            assert mesh.state is not None
            return mesh.report(), dict(mesh.state.data["backends"]["ssh"]["devices"])
        finally:
            await mesh.down()

    report, devices = asyncio.run(go())
    assert report["ok"], report
    assert set(report["backend"].split("+")) == {"docker", "local", "ssh"}, report["backend"]
    for node in ("pis-0", "routers-0", "locals-0", "dockers-0"):
        fetch = report["nodes"][node]["fetches"]["blob"]
        assert fetch["complete"] and fetch["verified"], (node, fetch)
    assert {d: devices[d]["detach"] for d in devices} == {"pi-0": "setsid", "router-1": "setsid", "laptop-2": "setsid"}
    assert devices["router-1"]["data_dir"] == "/tmp"
    assert ssh_lab.agent_pids() == []
    for dev in ssh_lab.devices:
        assert not (ssh_lab.data_home(dev) / "meshbed" / name).exists()
    assert ds.leftovers(name) == []


def test_up_is_refused_when_the_router_cannot_hold_the_content(ssh_lab: SshLab, tmp_path: Path) -> None:
    r = meshbed("up", str(_mixed_topology(ssh_lab, tmp_path, "toobig", "60MiB")), home=tmp_path / "home")
    assert r.returncode != 0
    assert "router-1" in r.stderr and "the content needs" in r.stderr, r.stderr
    assert ssh_lab.agent_pids() == []


def test_reboot_then_start_resumes_and_down_cleans_up(ssh_lab: SshLab, tmp_path: Path) -> None:
    """A device power-cycled mid-mesh (namespace gone and back, every process killed): the
    Pi's agent restarts from the verified pieces on its disk; the router, whose files were
    in RAM, gets peer.pyz and its dirs again and starts empty; `meshbed down` from the state
    file alone then removes everything, on rebooted devices too."""
    topo = load_topology(_mixed_topology(ssh_lab, tmp_path, "reboots", "2MiB"))
    home = tmp_path / "home"
    pi, router = ssh_lab.devices[0], ssh_lab.devices[1]

    async def up_fetch_reboot_start() -> tuple[dict[str, Any], dict[str, Any]]:
        import time
        T = time.monotonic()
        mesh = Mesh(topo, home=home)
        await mesh.up()
        print("up", time.monotonic() - T)
        await mesh.play()
        print("play", time.monotonic() - T)
        assert mesh.report()["ok"]
        await asyncio.to_thread(ssh_lab.reboot, pi)
        assert ssh_lab.agent_pids_of(pi) == []
        print("reboot", time.monotonic() - T)
        await mesh.backends["ssh"].start(topo.node("pis-0"))
        print("start", time.monotonic() - T)
        status = await mesh.wait_ready("pis-0")
        print("ready", time.monotonic() - T)
        await asyncio.to_thread(ssh_lab.reboot, router)  # its /tmp (pyz, dirs, data) is gone now
        assert not list(ssh_lab.data_home(router).iterdir())
        await mesh.backends["ssh"].start(topo.node("routers-0"))
        router_status = await mesh.wait_ready("routers-0")
        await asyncio.to_thread(ssh_lab.reboot, router)  # and down again, agent and all
        torrents: dict[str, Any] = status["torrents"]
        return next(iter(torrents.values())), router_status

    torrent, router_status = asyncio.run(up_fetch_reboot_start())
    assert router_status["node"] == "routers-0" and router_status["torrents"] == {}, router_status
    assert torrent["complete"] and torrent["verified"], torrent
    assert torrent["resumed_pieces"] == torrent["pieces"] and torrent["downloaded"] == 0, torrent
    assert len(ssh_lab.agent_pids_of(pi)) == 1
    r = meshbed("down", "reboots", home=home)
    assert r.returncode == 0, r.stderr
    assert ssh_lab.agent_pids() == []
    for dev in ssh_lab.devices:
        assert not (ssh_lab.data_home(dev) / "meshbed" / "reboots").exists()
    assert not (home / "reboots").exists()


def test_the_lab_example_runs_on_the_stand_ins(ssh_lab: SshLab, tmp_path: Path) -> None:
    """examples/lab-devices.yaml (laptop seeds; the pis and the router fetch, by tag) with its
    inventory pointed at the stand-ins, run as a user runs it."""
    doc = yaml.safe_load((REPO / "examples" / "lab-devices.yaml").read_text())
    doc["inventory"] = str(ssh_lab.inventory_path)
    path = tmp_path / "lab-devices.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    report_path = tmp_path / "report.json"
    r = meshbed("run", str(path), "--report", str(report_path), home=tmp_path / "home")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = yaml.safe_load(report_path.read_text())  # JSON is YAML
    for node in ("pis-0", "routers-0"):
        fetch = report["nodes"][node]["fetches"]["firmware"]
        assert fetch["complete"] and fetch["verified"], (node, fetch)
    assert ssh_lab.agent_pids() == []
