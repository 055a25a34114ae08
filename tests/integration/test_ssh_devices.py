"""`meshbed devices check` and host-key verification against real sshd in namespaces."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.backends.ssh.check import check_inventory
from orchestrator.backends.ssh.connection import ConnectionPool, HostKeyError, target_for
from orchestrator.inventory import load_inventory
from tests.sshlab import SshLab, lab_fixture

pytestmark = [pytest.mark.sshd, pytest.mark.root, pytest.mark.timeout(120)]
ssh_lab = lab_fixture(3)
REPO = Path(__file__).resolve().parents[2]


def meshbed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, timeout=90, env=env
    )


def write_inventory(lab: SshLab, path: Path, devices: dict[str, dict[str, object]], **defaults: object) -> Path:
    doc = {
        "defaults": {"user": "root", "key": str(lab.user_key), "known_hosts": str(lab.known_hosts), **defaults},
        "devices": devices,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_devices_check_all_usable(ssh_lab: SshLab) -> None:
    r = meshbed("devices", "check", str(ssh_lab.inventory_path))
    assert r.returncode == 0, r.stderr
    py = ".".join(map(str, sys.version_info[:2]))
    for dev in ssh_lab.devices:  # one line each, verdict first
        assert f"\n{dev.name}: ok  " in f"\n{r.stdout}"
    assert r.stdout.count(": ok  ") == len(ssh_lab.devices)
    assert py in r.stdout  # the devices run this host's python3
    assert os.uname().machine in r.stdout
    assert " ms," in r.stdout  # clock skew


def test_devices_check_in_process_figures(ssh_lab: SshLab) -> None:
    results = asyncio.run(check_inventory(load_inventory(ssh_lab.inventory_path)))
    for r in results:
        assert r.usable, r.problems
        assert r.free_bytes and r.free_bytes > 0
        # same kernel clock on both ends: the half-RTT corrected skew must be tiny
        assert r.skew_seconds is not None and abs(r.skew_seconds) < 0.05
        assert r.detach == "setsid"


def test_unreachable_device_fails_check_named(ssh_lab: SshLab, tmp_path: Path) -> None:
    devices: dict[str, dict[str, object]] = {d.name: {"host": d.host} for d in ssh_lab.devices}
    devices["ghost-pi"] = {"host": ssh_lab.unused_address(), "profile": "raspberry-pi-4"}
    inv = write_inventory(ssh_lab, tmp_path / "inv.yaml", devices)
    r = meshbed("devices", "check", str(inv), "--timeout", "3")
    assert r.returncode == 1
    assert "ghost-pi: REFUSED" in r.stdout and "unreachable" in r.stdout
    assert r.stderr.strip() == f"meshbed: 1 of {len(ssh_lab.devices) + 1} devices not usable: ghost-pi"
    for dev in ssh_lab.devices:  # the others are still checked and usable
        assert f"{dev.name}: ok  " in r.stdout


def test_profile_misfit_is_unusable(ssh_lab: SshLab, tmp_path: Path) -> None:
    dev = ssh_lab.devices[0]
    inv = write_inventory(
        ssh_lab, tmp_path / "inv.yaml", {"old": {"host": dev.host, "python": "/nonexistent/python3"}}
    )
    r = meshbed("devices", "check", str(inv))
    assert r.returncode == 1
    assert "old" in r.stderr and "old: REFUSED" in r.stdout and "no Python" in r.stdout


def test_wrong_host_key_is_refused(ssh_lab: SshLab, tmp_path: Path) -> None:
    dev = ssh_lab.devices[1]
    other = ssh_lab.devices[0]
    known = tmp_path / "known_hosts"
    known.write_text(f"{dev.host} {other.host_key_pub}\n")  # someone else's key
    inv = write_inventory(ssh_lab, tmp_path / "inv.yaml", {"pi-swapped": {"host": dev.host}}, known_hosts=str(known))
    r = meshbed("devices", "check", str(inv))
    assert r.returncode == 1
    assert "pi-swapped" in r.stderr and "HOST KEY CHANGED" in r.stdout
    # trust_on_first_use never overrides a recorded key
    inv = write_inventory(
        ssh_lab, tmp_path / "inv2.yaml", {"pi-swapped": {"host": dev.host, "trust_on_first_use": True}},
        known_hosts=str(known),
    )
    with pytest.raises(HostKeyError, match="pi-swapped.*HOST KEY CHANGED"):
        asyncio.run(_connect(inv, "pi-swapped"))
    assert known.read_text().count("\n") == 1


def test_unknown_host_refused_without_tofu_and_recorded_with_it(ssh_lab: SshLab, tmp_path: Path) -> None:
    dev = ssh_lab.devices[2]
    known = tmp_path / "known_hosts"
    known.write_text("")
    inv = write_inventory(ssh_lab, tmp_path / "inv.yaml", {"new-pi": {"host": dev.host}}, known_hosts=str(known))
    with pytest.raises(HostKeyError, match="new-pi.*not in"):
        asyncio.run(_connect(inv, "new-pi"))
    assert known.read_text() == ""
    inv = write_inventory(
        ssh_lab, tmp_path / "inv.yaml", {"new-pi": {"host": dev.host, "trust_on_first_use": True}},
        known_hosts=str(known),
    )
    asyncio.run(_connect(inv, "new-pi"))
    assert known.read_text() == f"{dev.host} {dev.host_key_pub}\n"
    # recorded now: a later connection without trust_on_first_use verifies against it
    inv = write_inventory(ssh_lab, tmp_path / "inv.yaml", {"new-pi": {"host": dev.host}}, known_hosts=str(known))
    asyncio.run(_connect(inv, "new-pi"))


def test_missing_known_hosts_file_is_refused(ssh_lab: SshLab, tmp_path: Path) -> None:
    inv = write_inventory(
        ssh_lab, tmp_path / "inv.yaml", {"x": {"host": ssh_lab.devices[0].host}},
        known_hosts=str(tmp_path / "nope"),
    )
    with pytest.raises(HostKeyError, match="does not exist"):
        asyncio.run(_connect(inv, "x"))
    # trust_on_first_use creates it
    fresh = tmp_path / "sub" / "known_hosts"
    inv = write_inventory(
        ssh_lab, tmp_path / "inv.yaml", {"x": {"host": ssh_lab.devices[0].host, "trust_on_first_use": True}},
        known_hosts=str(fresh),
    )
    asyncio.run(_connect(inv, "x"))
    assert fresh.read_text() == f"{ssh_lab.devices[0].host} {ssh_lab.devices[0].host_key_pub}\n"


def test_jump_host(ssh_lab: SshLab, tmp_path: Path) -> None:
    """dev-1 reached through dev-0 (a bastion): one connection each, the inner one tunnelled."""
    a, b = ssh_lab.devices[0], ssh_lab.devices[1]
    inv = write_inventory(
        ssh_lab, tmp_path / "inv.yaml", {"bastion": {"host": a.host}, "inner": {"host": b.host, "jump": "bastion"}}
    )

    async def go() -> str:
        inventory = load_inventory(inv)
        pool = ConnectionPool(5)
        try:
            conn = await pool.get(target_for(inventory.get("inner"), inventory))
            out = (await conn.run("ip -4 -o addr show dev eth0")).stdout
            assert sorted(pool.names()) == ["bastion", "inner"]
            return out
        finally:
            await pool.close()

    assert b.host in asyncio.run(go())


async def _connect(inv: Path, name: str) -> None:
    inventory = load_inventory(inv)
    pool = ConnectionPool(5)
    try:
        conn = await pool.get(target_for(inventory.get(name), inventory))
        await conn.run("true")
    finally:
        await pool.close()


def test_bad_inventory_is_exit_2(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  pi: {host: 10.0.0.1, password: hunter2}\n")
    r = meshbed("devices", "check", str(inv))
    assert r.returncode == 2
    assert f"{inv}:2:" in r.stderr and "password" in r.stderr
