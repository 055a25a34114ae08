"""Agents as detached processes inside a namespace: start, identify (pid + start time), kill."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

# Children we started in this process, reaped on kill so they do not linger as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def start_time(pid: int) -> Optional[int]:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat), or
    None when there is no such live process. Pid + start time identify a process even
    after pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    if not rest or rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def alive(pid: int, started: Optional[int] = None) -> bool:
    st = start_time(pid)
    return st is not None and (started is None or st == started)


def spawn(
    ns: str, argv: Sequence[str], *, log_path: Path, cwd: Path, env: Optional[dict[str, str]] = None
) -> tuple[int, Optional[int]]:
    """Start ``argv`` inside ``ns``, detached (own session, no terminal) so it outlives us.

    `ip netns exec` execs the command, so the returned pid is the agent's own.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc.pid, start_time(proc.pid)


def _reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def signal_all(targets: Iterable[tuple[int, Optional[int]]], sig: int) -> list[int]:
    """Send ``sig`` to each (pid, start time) that is still that process; return those hit."""
    hit: list[int] = []
    for pid, started in targets:
        if not alive(pid, started):
            continue
        try:
            os.kill(pid, sig)
            hit.append(pid)
        except ProcessLookupError:
            pass
    return hit


async def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait (bounded) until the processes are gone; return those still alive."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        _reap()
        pending = [p for p in pending if alive(p)]
        if not pending or time.monotonic() >= deadline:
            return pending
        await asyncio.sleep(0.05)


async def kill(targets: Iterable[tuple[int, Optional[int]]], *, timeout: float = 10.0) -> None:
    hit = signal_all(targets, signal.SIGKILL)
    await wait_gone(hit, timeout)


async def terminate(
    targets: Iterable[tuple[int, Optional[int]]], *, grace: float = 10.0
) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace`` seconds."""
    targets = list(targets)
    hit = signal_all(targets, signal.SIGTERM)
    left = set(await wait_gone(hit, grace))
    await kill([t for t in targets if t[0] in left])
