"""Agent processes of the local backend: spawn detached, identify by (pid, start time), end.

A pid alone is not an identity: after a crash and a reboot-free day it may belong to
someone else. We record the process start time (field 22 of /proc/<pid>/stat, clock ticks
since boot) next to the pid and only ever signal a pid whose start time still matches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

PROC = Path("/proc")


def start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot, or None when it does not exist."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall; fields[0] is field 3


def _state_letter(pid: int) -> Optional[str]:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()[0]


def is_ours(pid: int, started: Optional[int]) -> bool:
    """True when ``pid`` still runs and is the very process we started (not a zombie)."""
    if not pid or started is None:
        return False
    if start_time(pid) != started:
        return False
    return _state_letter(pid) not in (None, "Z", "X")


def spawn(args: Sequence[str], log_file: Path, env: Optional[dict[str, str]] = None) -> subprocess.Popen[bytes]:
    """Start ``python -m peer ARGS`` in its own session (it outlives `meshbed up`)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "peer", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )


def signal_ours(pid: int, started: Optional[int], sig: int) -> bool:
    if not is_ours(pid, started):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, started: Optional[int], timeout: float, child: Optional[subprocess.Popen[bytes]] = None) -> bool:
    """Wait until the process is gone (reaping it when it is our child); True when gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                return True
        elif not is_ours(pid, started):
            return True
        time.sleep(0.02)
    return False


def end(pid: int, started: Optional[int], grace: float, child: Optional[subprocess.Popen[bytes]] = None) -> None:
    """SIGTERM (when ``grace`` > 0), wait, then SIGKILL; only if it is still our process."""
    if grace > 0 and signal_ours(pid, started, signal.SIGTERM) and wait_gone(pid, started, grace, child):
        return
    if signal_ours(pid, started, signal.SIGKILL):
        wait_gone(pid, started, 5.0, child)
    elif child is not None:
        child.poll()


def find_by_argument(fragment: str) -> list[int]:
    """Pids of processes whose command line contains ``fragment`` (an absolute data-dir
    path unique to one mesh): the safety net for an orchestrator killed between spawning an
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
