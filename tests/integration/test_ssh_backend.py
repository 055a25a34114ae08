"""The ssh backend end to end against real sshd "devices" (network namespaces)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import DeployError
from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from tests.sshlab import SshLab, lab_fixture

pytestmark = [pytest.mark.sshd, pytest.mark.root, pytest.mark.timeout(240)]
ssh_lab = lab_fixture(3)


def topology(lab: SshLab, tmp: Path, name: str, inventory: Path | None = None, extra_group: bool = True) -> Path:
    groups: dict[str, object] = {
        "seeders": {"devices": ["dev-0"]},
        "leechers": {"devices": ["dev-1", "dev-2"]},
    }
    if extra_group:  # a second node on dev-1: two agents share one device (and one connection)
        groups["more"] = {"devices": ["dev-1"]}
    doc = {
        "name": name,
        "backend": "ssh",
        "inventory": str(inventory or lab.inventory_path),
        "seed": 3,
        "groups": groups,
        "content": {"blob": {"size": "3MiB", "seeders": ["seeders"]}},
        "scenario": [
            {"at": "0s", "fetch": {"content": "blob", "by": ["leechers", "more"] if extra_group else "leechers"}}
        ],
        "expect": {"all_complete_within": "60s"},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_up_fetch_kill_start_down(ssh_lab: SshLab, tmp_path: Path) -> None:
    said: list[str] = []
    topo = load_topology(topology(ssh_lab, tmp_path, "sshfetch"))
    home = tmp_path / "home"

    async def go() -> None:
        mesh = Mesh(topo, home=home, say=said.append)
        await mesh.up()
        try:
            assert mesh.state is not None
            hosts = {d.name: d.host for d in ssh_lab.devices}
            for node in topo.nodes:
                ep = mesh.endpoints[node.name]
                assert ep.api.startswith(hosts[node.options.get("device") or ""] + ":")
                assert ep.wire.startswith(hosts[node.options.get("device") or ""] + ":")
            # per-mesh, per-node paths on the (shared) filesystem; token readable by owner only
            run_dir = ssh_lab.shared_dir / "meshbed" / "sshfetch" / "more-0"
            assert stat.S_IMODE((run_dir / "token").stat().st_mode) == 0o600
            assert (run_dir / "token").read_text() == mesh.state.token
            assert len(ssh_lab.agent_pids()) == 4
            result = await mesh.play()
            report = mesh.report()
            assert report["ok"], report
            for n in ("leechers-0", "leechers-1", "more-0"):
                fetch = report["nodes"][n]["fetches"]["blob"]
                assert fetch["complete"] and fetch["verified"]
            del result
            # kill: the process is gone; start: same ports again
            before = mesh.endpoints["leechers-1"]
            backend = mesh.backends["ssh"]
            device = topo.node("leechers-1").options.get("device") or ""
            backend.sessions[device].conn.conn.close()  # the link dropped: reconnect on next use
            await asyncio.sleep(0.1)
            await mesh.kill(["leechers-1"])
            assert len(ssh_lab.agent_pids()) == 3
            ep = await backend.start(topo.node("leechers-1"))
            assert ep == before
            await mesh.wait_ready("leechers-1")
            assert len(ssh_lab.agent_pids()) == 4
            # stop is graceful (SIGTERM): the agent logs its own shutdown
            await mesh.kill(["more-0"], graceful=True)
            assert len(ssh_lab.agent_pids()) == 3
            assert "stopping" in await backend.logs(topo.node("more-0"))
        finally:
            await mesh.down()

    asyncio.run(go())
    assert ssh_lab.describe(ssh_lab.agent_pids()) == []
    assert not (ssh_lab.shared_dir / "meshbed" / "sshfetch").exists()
    # peer.pyz stays for the next mesh; nothing else of ours is left
    assert [p.name for p in (ssh_lab.shared_dir / "meshbed").iterdir() if p.name.startswith("peer-")]
    assert not (home / "sshfetch").exists()
    assert any("devices ready" in s for s in said)


def test_real_file_content_is_pushed_to_the_seeder(ssh_lab: SshLab, tmp_path: Path) -> None:
    paper = tmp_path / "paper.bin"
    paper.write_bytes(bytes(range(256)) * 4096 + b"tail")  # 1 MiB + 4 bytes
    doc = {
        "name": "sshfile",
        "backend": "ssh",
        "inventory": str(ssh_lab.inventory_path),
        "groups": {"seeders": {"devices": ["dev-0"]}, "leechers": {"devices": ["dev-1"]}},
        "content": {"paper": {"path": str(paper), "seeders": ["seeders"]}},
        "scenario": [{"at": "0s", "fetch": {"content": "paper", "by": "leechers"}}],
        "expect": {"all_complete_within": "60s"},
    }
    path = tmp_path / "file.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    async def go() -> dict[str, object]:
        mesh = Mesh(load_topology(path), home=tmp_path / "home")
        await mesh.up()
        try:
            inbox = ssh_lab.shared_dir / "meshbed" / "sshfile" / "seeders-0" / "data" / "inbox"
            assert (inbox / "paper.bin").read_bytes() == paper.read_bytes()
            await mesh.play()
            return mesh.report()
        finally:
            await mesh.down()

    report = asyncio.run(go())
    assert report["ok"], report
    assert ssh_lab.agent_pids() == []


def test_second_mesh_reuses_pushed_pyz(ssh_lab: SshLab, tmp_path: Path) -> None:
    async def up_down(name: str) -> list[str]:
        said: list[str] = []
        mesh = Mesh(load_topology(topology(ssh_lab, tmp_path, name, extra_group=False)), home=tmp_path / "h", say=said.append)
        await mesh.up()
        await mesh.down()
        return said

    asyncio.run(up_down("first"))
    said = asyncio.run(up_down("second"))
    assert any("peer.pyz pushed to 0" in s for s in said), said
    assert ssh_lab.agent_pids() == []


def test_unreachable_device_rolls_back(ssh_lab: SshLab, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    doc = yaml.safe_load(ssh_lab.inventory_path.read_text())
    doc["devices"]["dev-2"]["host"] = ssh_lab.unused_address()  # dev-2 went away
    inv.write_text(yaml.safe_dump(doc))
    topo = load_topology(topology(ssh_lab, tmp_path, "broken", inventory=inv))

    async def go() -> None:
        mesh = Mesh(topo, home=tmp_path / "home", say=lambda s: None)
        await mesh.up()

    with pytest.raises(DeployError, match="dev-2.*unreachable"):
        asyncio.run(go())
    assert ssh_lab.agent_pids() == []
    assert not (ssh_lab.shared_dir / "meshbed" / "broken").exists()
    assert not (tmp_path / "home" / "broken").exists()


def test_rates_shaped_with_tc_on_the_device(ssh_lab: SshLab, tmp_path: Path) -> None:
    """Root on the device, profile allows tc, one node per device: rates go to the kernel
    (tbf egress, ifb+tbf ingress); latency stays with the agent; down removes it all."""
    doc = {
        "name": "sshtc",
        "backend": "ssh",
        "inventory": str(ssh_lab.inventory_path),
        "groups": {
            "seeders": {"devices": ["dev-0"], "link": {"up": "8mbit", "down": "20mbit", "latency": "5ms"}},
            "leechers": {"devices": ["dev-1"]},
        },
        "content": {"blob": {"size": "1MiB", "seeders": ["seeders"]}},
        "scenario": [],
    }
    path = tmp_path / "tc.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    topo = load_topology(path)
    dev0 = ssh_lab.devices[0]

    async def go() -> tuple[str, str, dict[str, object]]:
        mesh = Mesh(topo, home=tmp_path / "home")
        await mesh.up()
        try:
            import subprocess

            qd = subprocess.run(["tc", "-n", dev0.namespace, "qdisc", "show"], capture_output=True,
                                text=True, timeout=10).stdout
            links = subprocess.run(["ip", "-n", dev0.namespace, "-o", "link"], capture_output=True,
                                   text=True, timeout=10).stdout
            st = await mesh.client("seeders-0").status()
            return qd, links, st["link"]
        finally:
            await mesh.down()

    qdiscs, links, agent_link = asyncio.run(go())
    assert "tbf" in qdiscs and "rate 8Mbit" in qdiscs, qdiscs
    assert "rate 20Mbit" in qdiscs and "ingress" in qdiscs, qdiscs
    assert ": mbi" in links
    # the kernel has the rates, so the agent must not cap them again; latency is the agent's
    assert agent_link["up_bps"] is None and agent_link["down_bps"] is None, agent_link
    assert agent_link["latency_ms"] == 5, agent_link
    assert ssh_lab.shaping_left() == []
    assert ssh_lab.agent_pids() == []


def test_down_from_state_alone(ssh_lab: SshLab, tmp_path: Path) -> None:
    """`meshbed down` from another shell / after a crash: a new process, no topology, no
    open connections, only state.json."""
    import subprocess
    import sys

    topo_path = topology(ssh_lab, tmp_path, "crashy", extra_group=False)
    home = tmp_path / "home"
    repo = Path(__file__).resolve().parents[2]
    env = {**__import__("os").environ, "MESHBED_HOME": str(home), "PYTHONPATH": str(repo)}
    up = subprocess.run([sys.executable, "-m", "orchestrator", "up", str(topo_path)],
                        capture_output=True, text=True, timeout=120, env=env)
    assert up.returncode == 0, up.stderr
    assert len(ssh_lab.agent_pids()) == 3  # `up` returned; the agents live on (detached)
    assert (ssh_lab.shared_dir / "meshbed" / "crashy").exists()

    async def down() -> None:
        await Mesh.attach("crashy", home=home).down()

    asyncio.run(down())
    assert ssh_lab.agent_pids() == []
    assert not (ssh_lab.shared_dir / "meshbed" / "crashy").exists()
    assert not (home / "crashy").exists()


def test_lost_state_folder_is_cleaned_by_doctor_from_the_journal(ssh_lab: SshLab, tmp_path: Path) -> None:
    """The state folder is gone: the journal copy of the ssh section still names the
    devices, dirs and agents, and `meshbed doctor --clean-orphans` removes them."""
    import os
    import shutil
    import subprocess
    import sys

    topo_path = topology(ssh_lab, tmp_path, "orphy", extra_group=False)
    home = tmp_path / "home"
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MESHBED_HOME": str(home), "PYTHONPATH": str(repo),
           "XDG_STATE_HOME": str(tmp_path / "xdg")}
    journal = tmp_path / "xdg" / "meshbed" / "ssh"

    def meshbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    up = meshbed("up", str(topo_path))
    assert up.returncode == 0, up.stderr
    assert len(ssh_lab.agent_pids()) == 3 and len(list(journal.glob("*.json"))) == 1
    shutil.rmtree(home / "orphy")
    listed = meshbed("doctor")
    assert "orphy (ssh, " in listed.stdout, listed.stdout
    clean = meshbed("doctor", "--clean-orphans", "orphy")
    assert clean.returncode == 0 and "ssh: orphy: removed" in clean.stdout, clean.stderr + clean.stdout
    assert ssh_lab.agent_pids() == []
    assert not (ssh_lab.shared_dir / "meshbed" / "orphy").exists()
    assert list(journal.glob("*.json")) == []  # the journal entry went with them


def test_deploy_through_a_jump_host(ssh_lab: SshLab, tmp_path: Path) -> None:
    """dev-2 is reached through dev-0 (a bastion that is itself an inventory device)."""
    inv = tmp_path / "inv.yaml"
    doc = yaml.safe_load(ssh_lab.inventory_path.read_text())
    doc["devices"]["dev-2"]["jump"] = "dev-0"
    inv.write_text(yaml.safe_dump(doc))
    topo = load_topology(topology(ssh_lab, tmp_path, "viajump", inventory=inv, extra_group=False))
    hosts = {d.name: d.host for d in ssh_lab.devices}

    async def go() -> dict[str, object]:
        mesh = Mesh(topo, home=tmp_path / "home")
        await mesh.up()
        try:
            backend = mesh.backends["ssh"]
            # the bastion got its own (one) connection, reused as the tunnel
            assert sorted(backend.pool.names()) == ["dev-0", "dev-1", "dev-2"]
            assert backend.sessions["dev-2"].conn.target.jump is not None
            assert mesh.endpoints["leechers-1"].api.startswith(hosts["dev-2"] + ":")
            await mesh.play()
            return mesh.report()
        finally:
            await mesh.down()

    report = asyncio.run(go())
    assert report["ok"], report
    assert ssh_lab.agent_pids() == []
    # dev-2's sshd saw the login come from the bastion's address, not from this host
    accepted = [line for line in (ssh_lab.devices[2].dir / "sshd.log").read_text().splitlines()
                if "Accepted publickey" in line]
    assert accepted and f"from {hosts['dev-0']} " in accepted[-1], accepted[-3:]
