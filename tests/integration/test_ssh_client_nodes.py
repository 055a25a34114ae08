"""Real BitTorrent clients as nodes on ssh devices (orchestrator/backends/ssh/clients.py), on
lab devices with their own sshd (tests/sshlab.py). The ``host`` devices share this host's
files, where the Debian clients are installed; the ``router`` stand-in has none of them.

One mesh carries the fetch, kill/start, partition, metrics and `down` checks: an agent
seeder and one node of every client kind, each on its own device."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import monitor
from orchestrator.backends.ssh.clients import chain_name
from orchestrator.clients import ADAPTERS, installed
from orchestrator.errors import InputError
from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from tests.facilities import require
from tests.integration.client_support import check_kill_start
from tests.sshlab import SshLab, lab_fixture

pytestmark = [pytest.mark.sshd, pytest.mark.root, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
KINDS = {"leech": "libtorrent", "trans": "transmission", "qb": "qbittorrent", "aria": "aria2",
         "del": "deluge"}  # group -> client, on dev-1 .. dev-5
ssh_lab = lab_fixture(7, kinds=("host",) * 6 + ("router",))


def _write(lab: SshLab, tmp: Path, doc: dict[str, Any], inventory: Path | None = None) -> Path:
    path = tmp / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump({"inventory": str(inventory or lab.inventory_path),
                                    "backend": "ssh", **doc}, sort_keys=False))
    return path


def _mixed_swarm(lab: SshLab, tmp: Path) -> Path:
    """The leechers' 16 Mbit/s links hold 8 MiB for ~4 s, so the kill at 1 s lands mid-transfer."""
    groups: dict[str, Any] = {"seed": {"devices": ["dev-0"], "link": {"up": "100mbit"}}}
    for i, (group, kind) in enumerate(KINDS.items(), 1):
        groups[group] = {"devices": [f"dev-{i}"], "client": kind}
        if group in ("leech", "trans"):
            groups[group]["link"] = {"down": "16mbit"}
    return _write(lab, tmp, {
        "name": f"sshcl-{os.getpid() % 10000}",
        "seed": 5,
        "chunk_size": "256KiB",
        "groups": groups,
        "content": {"blob": {"size": "8MiB", "seeders": ["seed"]}},
        "scenario": [
            {"at": "0s", "fetch": {"content": "blob", "by": list(KINDS)}},
            {"at": "1s", "kill": ["leech", "trans"]},
            {"at": "2s", "start": ["leech", "trans"]},
        ],
        "expect": {"all_complete_within": "90s"},
    })


def _dial(lab: SshLab, device: int, host: str, port: int) -> bool:
    """Whether a TCP connection from lab device ``device`` to host:port opens within 2 s."""
    code = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)"
            "\nexcept OSError:\n    sys.exit(1)")
    proc = subprocess.run(["ip", "netns", "exec", lab.devices[device].namespace, sys.executable,
                           "-c", code, host, str(port)], capture_output=True, timeout=30)
    return proc.returncode == 0


def _metrics(api: str) -> str:
    with urllib.request.urlopen(f"http://{api}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_client_nodes_on_devices_fetch_resume_partition_and_leave_nothing(
        ssh_lab: SshLab, tmp_path: Path) -> None:
    for kind in KINDS.values():
        require(None if installed(kind) else
                f"{kind} not installed (apt-get install {ADAPTERS[kind].package})")
    topo = load_topology(_mixed_swarm(ssh_lab, tmp_path))
    aria_host = ssh_lab.devices[4].host

    async def go() -> tuple[dict[str, Any], dict[str, bool], dict[str, str], list[dict[str, Any]]]:
        mesh = Mesh(topo, home=tmp_path / "home")
        try:
            await mesh.up()
            assert mesh.state is not None
            # aria2 listens for peers only once it has a torrent: dial its node's API port
            aria_port = int(mesh.state.nodes["aria-0"]["api"].rsplit(":", 1)[1])
            # the seeder's device cannot reach aria's device while cut off (a client has no
            # blocklist: the cut is in the devices' kernels), and can again after the heal
            dialled = {"before": await asyncio.to_thread(_dial, ssh_lab, 0, aria_host, aria_port)}
            await mesh.partition([["seed-0"], ["aria-0"]])
            dialled["cut"] = await asyncio.to_thread(_dial, ssh_lab, 0, aria_host, aria_port)
            await mesh.heal()
            dialled["healed"] = await asyncio.to_thread(_dial, ssh_lab, 0, aria_host, aria_port)
            await mesh.play()
            report = mesh.report()
            scraped = {n: await asyncio.to_thread(_metrics, e["api"])
                       for n, e in mesh.state.nodes.items()}
            targets = monitor.target_groups(mesh.name, mesh.state.nodes)
            return report, dialled, scraped, targets
        finally:
            await mesh.down()

    report, dialled, scraped, targets = asyncio.run(go())
    assert dialled == {"before": True, "cut": False, "healed": True}, dialled
    check_kill_start(report, "libtorrent", "leech-0")
    check_kill_start(report, "transmission", "trans-0")
    for group, kind in KINDS.items():
        node = report["nodes"][f"{group}-0"]
        fetch = node["fetches"]["blob"]
        assert node["client"] == kind and fetch["complete"] and fetch["verified"], (group, fetch)
        assert fetch["seconds"] is not None
        if kind in ("libtorrent", "qbittorrent"):  # per-peer bytes, named by the node
            assert set(fetch["bytes_from"]) <= set(report["nodes"]), fetch["bytes_from"]
        elif kind in ("transmission", "aria2"):
            assert fetch["bytes_from"] is None, fetch
        assert 'meshbed_completion_ratio{' in scraped[f"{group}-0"]
    labels = {t["labels"]["node"]: t["labels"]["client"] for t in targets}
    assert labels == {"seed-0": "meshbed", **{f"{g}-0": k for g, k in KINDS.items()}}, labels
    # `down` left no translator, client, chain or qdisc on any device
    assert ssh_lab.agent_pids() == [], ssh_lab.describe(ssh_lab.agent_pids())
    assert ssh_lab.shaping_left() == []
    chain = chain_name(topo.name)
    for dev in ssh_lab.devices[:6]:
        rules = subprocess.run(["ip", "netns", "exec", dev.namespace, "iptables", "-S"],
                               capture_output=True, text=True, timeout=30).stdout
        assert chain not in rules, (dev.name, rules)


def test_a_client_missing_on_its_device_is_refused_before_anything_is_deployed(
        ssh_lab: SshLab, tmp_path: Path) -> None:
    router = ssh_lab.devices[6]
    # its profile (openwrt-router) forbids tc, which `validate` refuses without asking the
    # device: give it one that allows tc, so the device itself is asked for the client
    inventory = yaml.safe_load(ssh_lab.inventory_path.read_text())
    inventory["devices"][router.name]["profile"] = "generic-linux"
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    path = _write(ssh_lab, tmp_path, {
        "name": f"sshclno-{os.getpid() % 10000}",
        "groups": {"seed": {"devices": ["dev-0"]},
                   "qb": {"devices": [router.name], "client": "qbittorrent"}},
        "content": {"f": {"size": "1MiB", "seeders": ["seed"]}},
    }, tmp_path / "inventory.yaml")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "client:" in t)
    want = (f"{path}:{line}: group qb: device {router.name}: client qbittorrent is not "
            "installed (apt-get install qbittorrent-nox there)")
    env = dict(os.environ, MESHBED_HOME=str(tmp_path / "home"))
    checked = subprocess.run([sys.executable, "-m", "orchestrator", "validate", "-q", str(path)],
                             env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert (checked.returncode, checked.stderr.strip()) == (2, want), checked
    with pytest.raises(InputError) as refused:
        asyncio.run(Mesh(load_topology(path), home=tmp_path / "home").up())
    assert str(refused.value) == want
    assert not (tmp_path / "home" / path.stem / "state.json").exists()
    for dev in (router, ssh_lab.devices[0]):  # nothing of the mesh on either device
        assert not list(ssh_lab.data_home(dev).glob(f"meshbed/{path.stem}")), dev.name
        assert not [p for p in ssh_lab.agent_pids_of(dev)
                    if path.stem in " ".join(ssh_lab.describe([p]))], dev.name
