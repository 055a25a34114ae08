"""Network namespace names and batch creation/removal with `ip -batch`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence

from orchestrator.backends.tc import run

NETNS_DIR = "/run/netns"


def mesh_tag(mesh: str) -> str:
    """Six hex characters naming a mesh's kernel objects (interface names are <= 15 chars)."""
    return hashlib.sha1(mesh.encode()).hexdigest()[:6]


def ns_name(tag: str, index: int) -> str:
    return f"mb-{tag}-{index}"


def existing() -> set[str]:
    """Names of the namespaces `ip netns` knows (files under /run/netns)."""
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


async def batch(lines: Iterable[str], *, force: bool = False, ns: str | None = None) -> None:
    """Feed `ip` a batch of commands in one process (``force`` keeps going past errors)."""
    body = "".join(f"{line}\n" for line in lines)
    if not body:
        return
    cmd = ["ip"]
    if ns:
        cmd += ["-n", ns]
    if force:
        cmd.append("-force")
    cmd += ["-batch", "-"]
    await run(cmd, input=body.encode(), check=not force)


async def create(names: Sequence[str]) -> None:
    have = existing()
    await batch(f"netns add {n}" for n in names if n not in have)


async def delete(names: Sequence[str]) -> None:
    """Delete namespaces that exist; missing ones are fine (idempotent)."""
    have = existing()
    await batch((f"netns del {n}" for n in names if n in have), force=True)


def pids(ns: str) -> list[int]:
    """Processes whose network namespace is ``ns`` (what `ip netns pids` reports)."""
    return pids_by_ns([ns]).get(ns, [])


def pids_by_ns(names: Iterable[str]) -> dict[str, list[int]]:
    """One scan of /proc for many namespaces (teardown of 300 nodes stays one pass)."""
    wanted: dict[tuple[int, int], str] = {}
    for ns in names:
        try:
            st = os.stat(os.path.join(NETNS_DIR, ns))
        except FileNotFoundError:
            continue
        wanted[(st.st_dev, st.st_ino)] = ns
    out: dict[str, list[int]] = {ns: [] for ns in wanted.values()}
    if not wanted:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in wanted:
            out[wanted[key]].append(int(entry))
    return out
