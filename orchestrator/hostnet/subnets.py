"""Private subnets for meshes: disjoint pools per kind of network, one host-wide lock.

Each backend that puts nodes on their own addresses takes its subnets from its own pool,
and the pools do not overlap, so a netns mesh and a docker mesh never pick the same
addresses even when neither is up yet. A pick avoids every route and address of the host;
it is made under ``host_lock()``, held until the new network exists (so the next pick,
from any backend and any process, sees its route).

A network that leaves no route on this host (a swarm overlay lives in namespaces of its
own, on every engine) is also entered in a host-wide ledger (``reserve``) until its mesh
is torn down (``release``): the next pick sees it there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from orchestrator.hostnet.files import write_atomic

Net = ipaddress.IPv4Network

# 10.64.0.0 - 10.207.255.255: namespaces on a bridge (netns backend)
NETNS_POOL: tuple[Net, ...] = (Net("10.64.0.0/10"), Net("10.128.0.0/10"), Net("10.192.0.0/12"))
# 10.208.0.0/12: docker bridge networks (docker backend)
DOCKER_POOL: tuple[Net, ...] = (Net("10.208.0.0/12"),)
# 10.224.0.0/12: swarm overlay networks
SWARM_POOL: tuple[Net, ...] = (Net("10.224.0.0/12"),)
POOLS = {"netns": NETNS_POOL, "docker": DOCKER_POOL, "swarm": SWARM_POOL}

LOCK_FILE = "/tmp/meshbed-hostnet.lock"  # one path for every user: the lock is host-wide
LOCK_TIMEOUT = 120.0
LEDGER_FILE = "/tmp/meshbed-hostnet-subnets.json"  # reservations, read and written under the lock


def host_networks() -> list[Net]:
    """Networks of every IPv4 route (but the default) and interface address on the host."""
    out: list[Net] = []
    for cmd in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr"]):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
            data = json.loads(text or "[]")
        except (OSError, subprocess.TimeoutExpired, ValueError):
            continue
        for item in data:
            dst = item.get("dst")
            if dst and dst not in ("default", "0.0.0.0/0"):
                with contextlib.suppress(ValueError):
                    out.append(Net(dst, strict=False))
            for info in item.get("addr_info", []):
                with contextlib.suppress(KeyError, ValueError):
                    out.append(Net(f"{info['local']}/{info['prefixlen']}", strict=False))
    return out


def candidates(pool: Sequence[Net], prefix: int, start: int) -> list[Net]:
    """Every /prefix of the pool, beginning at index ``start`` (modulo their number), so
    meshes of different names start at different places and rarely race."""
    nets = [n for block in pool for n in block.subnets(new_prefix=prefix)]
    start %= len(nets)
    return nets[start:] + nets[:start]


def start_for(key: str) -> int:
    """A stable starting index derived from a mesh name or tag."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16)


def free(pool: Sequence[Net], prefix: int, start: int, used: Iterable[Net]) -> list[Net]:
    """The candidates that overlap nothing in ``used``, in preference order."""
    blocked = list(used)
    return [n for n in candidates(pool, prefix, start) if not any(n.overlaps(b) for b in blocked)]


def choose(pool: Sequence[Net], prefix: int, start: int, used: Iterable[Net]) -> Net:
    found = free(pool, prefix, start, used)
    if not found:
        span = ", ".join(str(b) for b in pool)
        raise RuntimeError(f"no free /{prefix} left in {span}")
    return found[0]


@contextlib.contextmanager
def host_lock(path: Optional[str] = None, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive, host-wide, across processes and users. Blocking: call it in a thread."""
    path = path or LOCK_FILE
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"another meshbed has held {path} for {timeout:.0f}s (choosing a subnet)"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- the ledger: subnets reserved by meshes whose networks leave no route here -----------


@dataclass(frozen=True)
class Reservation:
    subnet: Net
    kind: str  # the pool it came from (a key of POOLS)
    mesh: str
    owner: str  # unique per deploy (backend, mesh, a run id): what `release` names

    def to_json(self) -> dict[str, str]:
        return {"subnet": str(self.subnet), "kind": self.kind, "mesh": self.mesh, "owner": self.owner}


def reservations(path: Optional[str] = None) -> list[Reservation]:
    """Every entry of the ledger (an unreadable ledger reads as empty: the host routes and
    the engines' own network lists still guard the pick)."""
    try:
        data = json.loads(Path(path or LEDGER_FILE).read_text() or "[]")
        return [Reservation(Net(d["subnet"]), str(d["kind"]), str(d["mesh"]), str(d["owner"]))
                for d in data]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _write(items: Sequence[Reservation], path: Optional[str]) -> None:
    body = json.dumps([r.to_json() for r in items], indent=1).encode()
    write_atomic(Path(path or LEDGER_FILE), body, mode=0o644)


def reserve(kind: str, mesh: str, owner: str, prefix: int, used: Iterable[Net],
            path: Optional[str] = None) -> Net:
    """A /prefix of pool ``kind`` overlapping nothing in ``used`` nor in the ledger, entered
    in the ledger for ``owner`` (the one it already holds, when it holds one).
    Hold ``host_lock()`` around this and the creation of the network."""
    items = reservations(path)
    for r in items:
        if r.owner == owner:
            return r.subnet
    net = choose(POOLS[kind], prefix, start_for(mesh), [*used, *(r.subnet for r in items)])
    _write([*items, Reservation(net, kind, mesh, owner)], path)
    return net


def claim(kind: str, mesh: str, owner: str, net: Net, path: Optional[str] = None) -> None:
    """Enter an existing network's ``net`` for ``owner``, replacing whoever held it (a
    crashed deploy whose network a new deploy of the mesh takes over). Under ``host_lock()``."""
    kept = [r for r in reservations(path) if r.subnet != net and r.owner != owner]
    _write([*kept, Reservation(net, kind, mesh, owner)], path)


def release(owner: str, path: Optional[str] = None) -> bool:
    """Drop ``owner``'s reservation; False when it held none. Under ``host_lock()``."""
    items = reservations(path)
    kept = [r for r in items if r.owner != owner]
    if len(kept) == len(items):
        return False
    _write(kept, path)
    return True
