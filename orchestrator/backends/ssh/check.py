"""`meshbed devices check`: reach every device in parallel and judge it against its profile."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Optional

from devices import ProfileError, load_profile
from orchestrator.backends.ssh import deploy as steps
from orchestrator.backends.ssh.connection import ConnectionPool, DeviceError, target_for
from orchestrator.model import Device, Inventory

SKEW_WARN_SECONDS = 1.0  # metrics timestamps and fetch times get misleading beyond this


@dataclass
class DeviceCheck:
    name: str
    host: str
    profile: str
    reachable: bool = False
    python: Optional[str] = None
    arch: Optional[str] = None
    free_bytes: Optional[int] = None
    cap_bytes: Optional[int] = None
    skew_seconds: Optional[float] = None
    detach: Optional[str] = None
    kernel_shaping: bool = False  # tc usable: root there and the profile allows it
    problems: list[str] = field(default_factory=list)  # each makes the device unusable
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.reachable and not self.problems


async def check_device(device: Device, inventory: Inventory, pool: ConnectionPool) -> DeviceCheck:
    result = DeviceCheck(name=device.name, host=f"{device.host}:{device.port}", profile=device.profile)
    try:
        profile = load_profile(device.profile)
    except ProfileError as exc:
        result.problems.append(str(exc))
        return result
    result.cap_bytes = profile.data_cap_bytes
    python = device.python or profile.python
    try:
        conn = await pool.get(target_for(device, inventory))
        result.reachable = True
        probe = await steps.probe(conn, profile, python)
        result.skew_seconds = await steps.measure_skew(conn)
    except DeviceError as exc:
        result.problems.append(exc.message)
        return result
    try:  # deploys push peer.pyz and read ready files over SFTP
        await conn.sftp()
    except DeviceError as exc:
        result.problems.append(f"{exc.message} (OpenWrt/dropbear: opkg install openssh-sftp-server)")
    result.arch = probe.arch
    result.free_bytes = probe.free_bytes
    result.python = probe.python_text
    result.detach = probe.detach_method(profile)
    result.kernel_shaping = probe.tc_usable(profile)
    if probe.python_version is None:
        result.problems.append(f"no Python at {python!r}")
    elif probe.python_version[:2] < profile.min_python:
        result.problems.append(f"Python {probe.python_text} < {profile.min_python_text}")
    if probe.free_bytes is None:
        result.problems.append(f"cannot read free disk of {probe.data_dir}")
    elif probe.free_bytes < profile.data_cap_bytes:
        result.problems.append(
            f"{_size(probe.free_bytes)} free in {probe.data_dir} < data cap {_size(profile.data_cap_bytes)}"
        )
    if result.detach is None:
        result.problems.append(f"none of {', '.join(profile.detach)} available to start agents")
    if result.skew_seconds is None:
        result.warnings.append("clock unreadable")
    elif abs(result.skew_seconds) > SKEW_WARN_SECONDS:
        result.warnings.append(f"clock off by {result.skew_seconds:+.2f}s (run NTP)")
    return result


async def check_inventory(inventory: Inventory, connect_timeout: float = 10.0) -> list[DeviceCheck]:
    """All devices in parallel; jump hosts shared through one pool."""
    pool = ConnectionPool(connect_timeout)
    try:
        return list(
            await asyncio.gather(*(check_device(d, inventory, pool) for d in inventory.devices))
        )
    finally:
        await pool.close()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def size_text(n: Optional[int]) -> str:
    return "-" if n is None else _size(n)
