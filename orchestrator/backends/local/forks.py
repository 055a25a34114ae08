"""The local backend's fork server (peer/forkserver.py): started on the first launch of a
mesh, recorded in state before it is waited for, asked over its abstract unix socket to fork
each agent. A forked agent shares the server's loaded modules, so it starts in milliseconds
and costs a few MB instead of an interpreter's ~19 MB.

The server's command line holds the mesh's ``local/`` folder (``--data-dir``), so the
orphan search and teardown's safety net find it like any agent; its children rewrite their
command lines to an ordinary agent's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from orchestrator.errors import DeployError
from orchestrator.hostnet import processes
from peer import forkserver

ROOM = 4096  # argv bytes the server keeps for its children's command lines (peer.forkserver)
READY_TIMEOUT = 30.0
FOLDER = ".forkserver"  # a node name cannot start with a dot


def socket_name(root: Path) -> str:
    return "meshbed-fork-" + hashlib.sha256(str(root).encode()).hexdigest()[:24]


class ForkServer:
    """One mesh's fork server. ``entry`` is its section of the backend's state (pid and start
    time), ``save`` writes the state."""

    def __init__(self, root: Path, entry: dict[str, Any], save: Callable[[], None]) -> None:
        self.root = root
        self.entry = entry
        self.save = save
        self.name = socket_name(root)
        self._lock = asyncio.Lock()

    @property
    def target(self) -> processes.Target:
        return int(self.entry.get("pid") or 0), self.entry.get("start_time")

    async def spawn(self, args: list[str], cmdline: list[str], log: Path,
                    exit_file: Path) -> processes.Target:
        """Fork one agent running ``python -m peer ARGS``; its (pid, start time)."""
        exit_file.unlink(missing_ok=True)
        request = {"args": args, "cmdline": cmdline, "log": str(log), "exit_file": str(exit_file)}
        await self._ensure()
        try:
            answer = await self._ask(request)
        except OSError:  # the server went away since: start another, once
            self.entry.clear()
            await self._ensure()
            answer = await self._ask(request)
        if "pid" not in answer:
            raise DeployError(f"local: fork server refused: {answer.get('error', answer)}")
        pid = int(answer["pid"])
        return pid, processes.start_time(pid)

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(forkserver.address(self.name))
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), READY_TIMEOUT)
        finally:
            writer.close()
        if not line:
            raise ConnectionResetError("fork server closed the connection")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _ensure(self) -> None:
        async with self._lock:
            if processes.alive(*self.target):
                return
            folder = self.root / FOLDER
            (folder / "data").mkdir(parents=True, exist_ok=True)
            log = folder / "server.log"
            argv = [sys.executable, "-m", "peer", "fork-server", "--socket", self.name,
                    "--data-dir", str(folder / "data"), "--room", " " * ROOM]
            pid, started = await asyncio.to_thread(processes.spawn, argv, log_path=log)
            self.entry.update(pid=pid, start_time=started)
            self.save()  # before waiting: `down` after a crash must find it
            await self._wait_listening(pid, log)

    async def _wait_listening(self, pid: int, log: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        error: Optional[Exception] = None
        while loop.time() < deadline:
            try:
                if "pid" in await self._ask({"ping": True}):
                    return
            except (OSError, ValueError) as exc:
                error = exc
            if processes.exit_code(pid) is not None or not processes.alive(pid):
                break
            await asyncio.sleep(0.05)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else ""
        raise DeployError(f"local: fork server did not start ({error}); log {log}:\n{tail}")
