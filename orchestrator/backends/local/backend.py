"""LocalBackend: one detached `python -m peer run` process per node on 127.0.0.1.

Links are emulated by the agents themselves (the engine sends POST /link), partitions by
their blocklists (POST /block). Everything lives under ``$MESHBED_HOME/<mesh>/local/``:
``token`` (0600) and per node ``<node>/data`` (the agent's data dir), ``<node>/agent.log``,
``<node>/ready.json``. The state section records pid + start time of every agent *before*
we wait for it, so `meshbed down` after a crash ends exactly our processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Optional

from orchestrator.backends.base import Backend, Capability, Endpoint, MeshContext, agent_args
from orchestrator.backends.local import processes
from orchestrator.errors import DeployError
from orchestrator.model import Node

READY_TIMEOUT = 30.0
STOP_GRACE = 5.0


class LocalBackend(Backend):
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capability] = Capability.NONE  # listens on the host's loopback

    def __init__(self, ctx: MeshContext) -> None:
        super().__init__(ctx)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self.ctx.state.setdefault("root", str(self.root))
        self.ctx.state.setdefault("nodes", {})

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        if not Path("/proc/self/stat").exists():
            return "the local backend needs Linux /proc (to track its agent processes)"
        return None

    # --- paths --------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.ctx.state_dir / "local"

    def _node_dir(self, name: str) -> Path:
        return self.root / name

    def _entry(self, name: str) -> dict[str, Any]:
        nodes: dict[str, dict[str, Any]] = self.ctx.state["nodes"]
        return nodes.setdefault(name, {})

    def _token_file(self) -> Path:
        path = self.root / "token"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.ctx.token)
        return path

    # --- lifecycle ----------------------------------------------------------------------
    async def deploy(self, node: Node) -> Endpoint:
        node_dir = self._node_dir(node.name)
        if node_dir.exists():
            shutil.rmtree(node_dir)
        (node_dir / "data").mkdir(parents=True)
        return await self._launch(node, "127.0.0.1:0", "127.0.0.1:0")

    async def start(self, node: Node) -> Endpoint:
        entry = self._entry(node.name)
        if processes.is_ours(int(entry.get("pid") or 0), entry.get("start_time")):
            return Endpoint(api=entry["api"], wire=entry["wire"])
        # Same ports again when they are free, so peers and reports keep one address.
        try:
            return await self._launch(node, entry.get("api", "127.0.0.1:0"), entry.get("wire", "127.0.0.1:0"))
        except DeployError:
            return await self._launch(node, "127.0.0.1:0", "127.0.0.1:0")

    async def _launch(self, node: Node, api: str, wire: str) -> Endpoint:
        node_dir = self._node_dir(node.name)
        ready = node_dir / "ready.json"
        ready.unlink(missing_ok=True)
        log = node_dir / "agent.log"
        args = agent_args(
            node,
            mesh=self.ctx.mesh,
            data_dir=str(node_dir / "data"),
            api=api,
            wire=wire,
            token_file=str(self._token_file()),
            ready_file=str(ready),
            backend=self.name,
        )
        env = {k: v for k, v in os.environ.items() if k != "MESHBED_TOKEN"}
        child = await asyncio.to_thread(processes.spawn, args, log, env)
        self._children[node.name] = child
        entry = self._entry(node.name)
        entry.update(
            pid=child.pid,
            start_time=processes.start_time(child.pid),
            log=str(log),
            data_dir=str(node_dir / "data"),
        )
        self.ctx.save()  # before waiting: `down` after a crash must find it
        info = await self._wait_ready(node, child, ready, log)
        entry.update(api=info["api"], wire=info["wire"])
        self.ctx.save()
        return Endpoint(api=info["api"], wire=info["wire"])

    async def _wait_ready(
        self, node: Node, child: subprocess.Popen[bytes], ready: Path, log: Path
    ) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline:
            if ready.exists():
                try:
                    info = json.loads(ready.read_text())
                    return {"api": str(info["api"]), "wire": str(info["wire"])}
                except (json.JSONDecodeError, KeyError):
                    pass  # written atomically, but be lenient
            if child.poll() is not None:
                raise DeployError(
                    f"{node.name}: agent exited with {child.returncode} before it was ready; "
                    f"log {log}:\n{_tail(log)}"
                )
            await asyncio.sleep(0.05)
        raise DeployError(
            f"{node.name}: agent not ready after {READY_TIMEOUT:.0f}s; log {log}:\n{_tail(log)}"
        )

    async def kill(self, node: Node) -> None:
        await self._end(node.name, grace=0.0)

    async def stop(self, node: Node) -> None:
        await self._end(node.name, grace=STOP_GRACE)

    async def _end(self, name: str, grace: float) -> None:
        entry = self._entry(name)
        pid, started = int(entry.get("pid") or 0), entry.get("start_time")
        await asyncio.to_thread(processes.end, pid, started, grace, self._children.get(name))

    async def teardown(self) -> None:
        nodes: dict[str, dict[str, Any]] = self.ctx.state.get("nodes", {})
        # SIGTERM everyone first, then wait, then SIGKILL stragglers: fast for big meshes.
        for entry in nodes.values():
            processes.signal_ours(int(entry.get("pid") or 0), entry.get("start_time"), signal.SIGTERM)
        await asyncio.gather(
            *(
                asyncio.to_thread(
                    processes.end,
                    int(entry.get("pid") or 0),
                    entry.get("start_time"),
                    2.0,
                    self._children.get(name),
                )
                for name, entry in nodes.items()
            )
        )
        root = Path(self.ctx.state.get("root") or self.root)
        # Safety net: agents spawned but not yet recorded when the orchestrator died.
        for pid in processes.find_by_argument(str(root) + os.sep):
            started = processes.start_time(pid)
            processes.end(pid, started, 0.0)
        shutil.rmtree(root, ignore_errors=True)
        self.ctx.state["nodes"] = {}
        self.ctx.save()

    # --- files --------------------------------------------------------------------------
    async def put_file(self, node: Node, src: Path, name: str) -> str:
        inbox = self._node_dir(node.name) / "data" / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, src, inbox / name)
        return f"inbox/{name}"

    async def logs(self, node: Node) -> str:
        return _tail(self._node_dir(node.name) / "agent.log")

    async def prepare(self, nodes: Sequence[Node]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._token_file()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
