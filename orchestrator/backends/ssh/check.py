"""`meshbed devices check`: reach every device in parallel and judge it against its profile."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Optional

from devices import ProfileError, load_profile
from orchestrator.backends.ssh import deploy as steps
from orchestrator.backends.ssh.connection import ConnectionPool, DeviceError, target_for
from orchestrator.backends.ssh.remote import python_problem, size_text, space_problem
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
    need_bytes: int = 0  # what the content needs on the device (0: not asked)
    problems: list[str] = field(default_factory=list)  # each makes the device unusable
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.reachable and not self.problems


async def check_device(device: Device, inventory: Inventory, pool: ConnectionPool,
                       need_bytes: int = 0) -> DeviceCheck:
    result = DeviceCheck(name=device.name, host=f"{device.host}:{device.port}", profile=device.profile,
                         need_bytes=need_bytes)
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
        result.skew_seconds = await steps.measure_skew(
            conn, python=python if probe.python_version is not None else None
        )
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
    for problem in (
        python_problem(probe.python_version, probe.python_text, python, profile.min_python),
        space_problem(probe.free_bytes, probe.data_dir, need_bytes),
    ):
        if problem:
            result.problems.append(problem)
    if probe.free_bytes is not None and need_bytes <= probe.free_bytes < profile.data_cap_bytes:
        result.warnings.append(f"{size_text(probe.free_bytes)} free, below the data cap {size_text(profile.data_cap_bytes)}")
    if result.detach is None:
        result.problems.append(f"none of {', '.join(profile.detach)} available to start agents")
    if result.skew_seconds is None:
        result.warnings.append("clock unreadable")
    elif abs(result.skew_seconds) > SKEW_WARN_SECONDS:
        result.warnings.append(f"clock off by {result.skew_seconds:+.2f}s (run NTP)")
    return result


async def check_inventory(inventory: Inventory, connect_timeout: float = 10.0,
                          need_bytes: int = 0) -> list[DeviceCheck]:
    """All devices in parallel; jump hosts shared through one pool."""
    pool = ConnectionPool(connect_timeout)
    try:
        return list(
            await asyncio.gather(*(check_device(d, inventory, pool, need_bytes) for d in inventory.devices))
        )
    finally:
        await pool.close()


def summary_line(r: DeviceCheck) -> str:
    """One line for one device: verdict first, then what was found, then why it is refused."""
    if not r.reachable:
        return f"{r.name}: REFUSED  {r.host}  {'; '.join(r.problems)}"
    skew = "?" if r.skew_seconds is None else f"{r.skew_seconds * 1000:+.0f} ms"
    free = size_text(r.free_bytes) + " free"
    facts = [r.arch or "?", f"Python {r.python or '?'}", free, f"clock {skew}",
             f"start {r.detach or '-'}", "shaping " + ("tc" if r.kernel_shaping else "agent"),
             f"profile {r.profile}", r.host]
    line = f"{r.name}: {'ok' if r.usable else 'REFUSED'}  " + ", ".join(facts)
    notes = r.problems + ([f"warning: {w}" for w in r.warnings] if r.warnings else [])
    return line + (" -- " + "; ".join(notes) if notes else "")
