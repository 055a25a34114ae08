"""Shared steps for external BitTorrent clients: markers, hashing, the run loop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Callable, Optional

from bench._netlab import wait_for_files
from bench.contestants import Outcome, Swarm


def marker_script(path: Path, marker: Path) -> Path:
    """A hook script that writes the current unix time to ``marker`` atomically."""
    path.write_text(
        "#!/bin/sh\n"
        f"date +%s.%N > '{marker}.tmp' && mv '{marker}.tmp' '{marker}'\n"
    )
    path.chmod(0o755)
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def place_content(swarm: Swarm, host: str, subdir: str = "data") -> Path:
    """The complete file in the seeder's directory (hard link: no copy)."""
    d = swarm.lab.hosts[host].dir / subdir
    d.mkdir(parents=True, exist_ok=True)
    dest = d / swarm.name
    if not dest.exists():
        try:
            os.link(swarm.content, dest)
        except OSError:
            shutil.copyfile(swarm.content, dest)
    return d


async def run_swarm(
    contestant: str,
    swarm: Swarm,
    start_seeder: Callable[[], Awaitable[None]],
    start_leecher: Callable[[str], None],
    marker: Callable[[str], Path],
    downloaded: Callable[[str], Path],
    prestart: Optional[Callable[[], Awaitable[None]]] = None,
) -> Outcome:
    """Seeder first (until it seeds), then every leecher at once; wait for all markers;
    then hash every leecher's file (after the clock stopped, so hashing costs nothing).
    ``prestart`` brings idle leechers up before the clock starts, where a client can."""
    await start_seeder()
    if prestart is not None:
        await prestart()
    t0 = time.time()
    for leecher in swarm.leechers:
        start_leecher(leecher)
    paths = [marker(h) for h in swarm.leechers]
    found = await wait_for_files(paths, swarm.timeout)
    completions = sorted(found[p] - t0 for p in paths if p in found)
    verified = 0
    for h in swarm.leechers:
        if marker(h) not in found:
            continue
        f = downloaded(h)
        if f.exists() and await asyncio.to_thread(sha256_file, f) == swarm.sha256:
            verified += 1
    ok = verified == len(swarm.leechers)
    err = None
    if len(found) < len(swarm.leechers):
        err = f"{len(swarm.leechers) - len(found)} leechers not done within {swarm.timeout:.0f}s"
    elif not ok:
        err = f"{len(swarm.leechers) - verified} downloaded files failed the SHA-256 check"
    return Outcome(contestant, ok, max(completions) if ok and completions else None,
                   completions, verified, err)


async def wait_file(path: Path, timeout: float) -> None:
    """Wait (bounded) until a file exists: the seeder's "I am seeding" marker."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear within {timeout:.0f}s")
        await asyncio.sleep(0.1)
