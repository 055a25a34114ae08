"""A mixed mesh: local peers (processes on this host) and ssh devices in one swarm."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from tests.sshlab import SshLab, lab_fixture

pytestmark = [pytest.mark.sshd, pytest.mark.root, pytest.mark.timeout(240)]
ssh_lab = lab_fixture(2)


def test_mixed_local_and_ssh_mesh_completes_a_fetch(ssh_lab: SshLab, tmp_path: Path) -> None:
    # Local agents listen on 127.0.0.1, which the devices cannot reach; the devices' ports are
    # reachable from here. So the seeder sits on a device and local peers dial out to the
    # devices: a BitTorrent connection carries pieces both ways (docs/ssh.md, "Mixed meshes").
    doc = {
        "name": "mixedmesh",
        "backend": "local",
        "inventory": str(ssh_lab.inventory_path),
        "seed": 5,
        "groups": {
            "seeders": {"devices": ["dev-0"]},
            "pis": {"devices": ["dev-1"]},
            "locals": {"count": 2},
        },
        "content": {"movie": {"size": "4MiB", "seeders": ["seeders"]}},
        "scenario": [{"at": "0s", "fetch": {"content": "movie", "by": ["pis", "locals"]}}],
        "expect": {"all_complete_within": "90s"},
    }
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    topo = load_topology(path)
    assert {n.name: n.backend for n in topo.nodes} == {
        "seeders-0": "ssh", "pis-0": "ssh", "locals-0": "local", "locals-1": "local",
    }

    async def go() -> dict[str, object]:
        mesh = Mesh(topo, home=tmp_path / "home")
        await mesh.up()
        try:
            await mesh.play()
            return mesh.report()
        finally:
            await mesh.down()

    report = asyncio.run(go())
    assert report["ok"], report
    nodes = report["nodes"]
    assert isinstance(nodes, dict)
    for name in ("pis-0", "locals-0", "locals-1"):
        fetch = nodes[name]["fetches"]["movie"]
        assert fetch["complete"] and fetch["verified"], (name, fetch)
    assert nodes["pis-0"]["address"].startswith(ssh_lab.devices[1].host + ":")
    assert ssh_lab.agent_pids() == []
