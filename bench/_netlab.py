"""A namespace testbed for benchmarks: hosts on one bridge with tbf-shaped access links.

It is the netns backend's own plumbing (same bridge, veths, tbf parameters, iptables rule),
driven without agents so any program (libtorrent, aria2c, transmission-cli, opentracker)
can run in the hosts. Everything is recorded in a state file first; ``close()`` (also on
Ctrl-C) removes it all, and ``Lab.cleanup_stale()`` removes what a killed bench left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from orchestrator.backends.base import MeshContext
from orchestrator.backends.netns import NetnsBackend, namespaces
from orchestrator.hostnet import processes
from orchestrator.model import Link, Node

LAB_HOME = Path(os.environ.get("MESHBED_BENCH_HOME", "/tmp/meshbed-bench"))


@dataclass(frozen=True)
class Host:
    name: str
    ns: str
    ip: str
    dir: Path  # a private directory for the host's files


class Lab:
    def __init__(self, name: str, home: Path = LAB_HOME) -> None:
        self.name = name
        self.home = home
        self.state: dict[str, Any] = {}
        self.ctx = MeshContext(mesh=name, token="bench", state_dir=home / name,
                               state=self.state, save=self._save, say=lambda _m: None)
        self.backend = NetnsBackend(self.ctx)
        self.hosts: dict[str, Host] = {}
        self._procs: list[tuple[int, Optional[int]]] = []

    def _save(self) -> None:
        path = self.home / self.name / "state.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as f:
            json.dump({"mesh": self.name, "backends": {"netns": self.state}}, f)
        os.replace(f.name, path)

    async def open(self, hosts: Sequence[tuple[str, str, Link]]) -> None:
        """``hosts``: (name, group, link). Creates bridge, namespaces, veths, tbf caps and
        the permanent neighbour entries every host needs (the netns backend pins them: ARP
        flooded by 64 clients dialing at once is mostly lost on a loaded host)."""
        nodes = [Node(name=n, group=g, index=i, backend="netns", link=link)
                 for i, (n, g, link) in enumerate(hosts)]
        await self.backend.prepare(nodes)
        for node in nodes:
            rec = self.state["nodes"][node.name]
            d = Path(rec["data_dir"])
            d.mkdir(parents=True, exist_ok=True)
            self.hosts[node.name] = Host(node.name, rec["ns"], rec["ip"], d)

    def spawn(self, host: str, argv: Sequence[str], *, log: str = "out.log",
              env: Optional[dict[str, str]] = None) -> int:
        h = self.hosts[host]
        pid, started = processes.spawn(["ip", "netns", "exec", h.ns, *argv],
                                       log_path=h.dir / log, cwd=h.dir, env=env)
        self._procs.append((pid, started))
        return pid

    async def kill_all(self) -> None:
        """Kill every process in the lab's namespaces (between contestants)."""
        in_ns = namespaces.pids_by_ns(h.ns for h in self.hosts.values())
        targets = self._procs + [(p, None) for pids in in_ns.values() for p in pids]
        await processes.terminate(targets, grace=3.0)
        self._procs = []

    def reset_dirs(self) -> None:
        for h in self.hosts.values():
            shutil.rmtree(h.dir, ignore_errors=True)
            h.dir.mkdir(parents=True)

    async def close(self) -> None:
        await self.kill_all()
        await self.backend.teardown()
        shutil.rmtree(self.home / self.name, ignore_errors=True)

    @classmethod
    async def cleanup_stale(cls, home: Path = LAB_HOME) -> list[str]:
        """Tear down labs a killed bench left behind (from their state files)."""
        done = []
        for path in sorted(home.glob("*/state.json")):
            try:
                section = json.loads(path.read_text())["backends"]["netns"]
            except (OSError, ValueError, KeyError):
                continue
            lab = cls(path.parent.name, home)
            lab.state.update(section)
            await lab.backend.teardown()
            shutil.rmtree(path.parent, ignore_errors=True)
            done.append(path.parent.name)
        return done


def install_sigterm_as_interrupt() -> None:
    """SIGTERM ends the bench like Ctrl-C, so its `finally` clean-up runs."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


async def wait_for_files(paths: Sequence[Path], timeout: float, poll: float = 0.2) -> dict[Path, float]:
    """mtime-free completion markers: each file holds a unix time; wait (bounded) for all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: dict[Path, float] = {}
    while loop.time() < deadline and len(found) < len(paths):
        for p in paths:
            if p in found:
                continue
            try:
                text = p.read_text().strip()
            except OSError:
                continue
            if text:
                found[p] = float(text.split()[0])
        await asyncio.sleep(poll)
    return found
