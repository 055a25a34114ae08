"""Two meshes with kernel-shaped links on one device: the second does not overwrite the
first's qdiscs (a device interface has one root and one ingress qdisc); it is told which mesh
holds them and its agent emulates the link instead."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from tests.sshlab import SshLab, lab_fixture

pytestmark = [pytest.mark.sshd, pytest.mark.root, pytest.mark.timeout(240)]
ssh_lab = lab_fixture(2)


def _topology(lab: SshLab, tmp: Path, name: str, up: str) -> Path:
    doc = {
        "name": name,
        "backend": "ssh",
        "inventory": str(lab.inventory_path),
        "groups": {
            "seeders": {"devices": ["dev-0"], "link": {"up": up, "down": "20mbit"}},
            "leechers": {"devices": ["dev-1"]},
        },
        "content": {"blob": {"size": "1MiB", "seeders": ["seeders"]}},
        "scenario": [],
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_second_mesh_leaves_the_first_meshs_qdiscs_alone(ssh_lab: SshLab, tmp_path: Path) -> None:
    dev0 = ssh_lab.devices[0]
    said: list[str] = []

    def qdiscs() -> str:
        return subprocess.run(["tc", "-n", dev0.namespace, "qdisc", "show"], capture_output=True,
                              text=True, timeout=10).stdout

    async def go() -> tuple[str, str, dict[str, Any], str]:
        first = Mesh(load_topology(_topology(ssh_lab, tmp_path, "tcown-a", "8mbit")), home=tmp_path / "home")
        await first.up()
        try:
            second = Mesh(load_topology(_topology(ssh_lab, tmp_path, "tcown-b", "12mbit")),
                          home=tmp_path / "home", say=said.append)
            await second.up()
            try:
                during = qdiscs()
                link = (await second.client("seeders-0").status())["link"]
            finally:
                await second.down()
            after_second = qdiscs()
        finally:
            await first.down()
        return during, after_second, link, qdiscs()

    during, after_second, second_link, after_both = asyncio.run(go())
    assert "rate 8Mbit" in during and "12Mbit" not in during, during
    assert any("shaped by mesh tcown-a" in s for s in said), said
    assert second_link["up_bps"] == 12_000_000, second_link  # emulated by the agent instead
    assert "rate 8Mbit" in after_second and "ingress" in after_second, after_second
    assert " tbf " not in after_both and "ingress" not in after_both, after_both
    assert ssh_lab.shaping_left() == []
    assert not list((ssh_lab.shared_dir / "meshbed").glob("tc-*.owner"))
