"""Agent processes on this host: spawn detached, identify by (pid, start time), signal, end.

A pid alone is not an identity: after a crash it may belong to someone else by the time
``meshbed down`` runs. We record the process start time (field 22 of /proc/PID/stat, clock
ticks since boot) with the pid and only signal a pid whose start time still matches. A
zombie counts as gone. Children we spawned are reaped as soon as they exit. Waiting is
asynchronous (nothing here blocks the event loop for longer than a /proc read).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

PROC = Path("/proc")
Target = tuple[int, Optional[int]]  # (pid, start time); None: whatever process has the pid

_children: dict[int, subprocess.Popen[bytes]] = {}  # spawned here, reaped when they exit


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode(errors="replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return raw[raw.rfind(")") + 2 :].split() or None


def start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot, or None when there is no such
    live process (gone, or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 overall; fields[0] is field 3


def alive(pid: int, started: Optional[int] = None) -> bool:
    """``pid`` runs and, when ``started`` is given, is the very process we started."""
    if not pid:
        return False
    st = start_time(pid)
    return st is not None and (started is None or st == started)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
) -> Target:
    """Start ``argv`` in its own session (it outlives `meshbed up`), output to ``log_path``.
    ``MESHBED_TOKEN`` is never passed on: agents read the token from a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env)
    env.pop("MESHBED_TOKEN", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd is not None else None,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc.pid, start_time(proc.pid)


def exit_code(pid: int) -> Optional[int]:
    """The exit status of a child spawned here once it has exited, else None."""
    proc = _children.get(pid)
    return proc.poll() if proc is not None else None


def _reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def signal_all(targets: Iterable[Target], sig: int) -> list[int]:
    """Send ``sig`` to each target that is still that process; return the pids hit."""
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
        await asyncio.sleep(0.02)


async def kill(targets: Iterable[Target], *, timeout: float = 10.0) -> list[int]:
    """SIGKILL; return the pids still alive after ``timeout``."""
    return await wait_gone(signal_all(targets, signal.SIGKILL), timeout)


async def terminate(targets: Iterable[Target], *, grace: float = 10.0) -> list[int]:
    """SIGTERM, SIGKILL what is still there after ``grace`` seconds; return the pids that
    survived even that."""
    targets = list(targets)
    left = set(await wait_gone(signal_all(targets, signal.SIGTERM), grace))
    return await kill([t for t in targets if t[0] in left])


def find_by_argument(fragment: str) -> list[int]:
    """Pids of agent processes whose command line contains ``fragment`` (an absolute path
    unique to one mesh): the safety net for an orchestrator killed between spawning an
    agent and recording its pid."""
    found: list[int] = []
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fragment.encode() in cmdline and b"peer" in cmdline:
            found.append(int(entry.name))
    return found


def agents_with_data_dirs() -> list[tuple[Target, str]]:
    """Every agent process on this host (``peer`` in its command line, a ``--data-dir``
    argument) with its data dir: what orphan searches match against their own layouts."""
    found: list[tuple[Target, str]] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--data-dir" not in argv or not any(b"peer" in a for a in argv):
            continue
        i = argv.index(b"--data-dir")
        if i + 1 < len(argv):
            pid = int(entry.name)
            started = start_time(pid)
            if started is not None:
                found.append(((pid, started), argv[i + 1].decode(errors="replace")))
    return found
