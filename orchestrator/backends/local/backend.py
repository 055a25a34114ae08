"""LocalBackend: one detached `python -m peer run` process per node on 127.0.0.1, forked by
the mesh's fork server (forks.py: the agent's modules are loaded once and shared).

Links are emulated by the agents themselves (the engine sends POST /link), partitions by
their blocklists (POST /block). Everything lives under ``$MESHBED_HOME/<mesh>/local/``:
``token`` (0600) and per node ``<node>/data`` (the agent's data dir), ``<node>/agent.log``,
``<node>/ready.json``, ``<node>/exit_status`` (written by the fork server when the agent
exits), and ``.forkserver/``. The state section records pid + start time of every agent and
of the fork server *before* we wait for them, so `meshbed down` after a crash ends exactly
our processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Optional

from orchestrator import state
from orchestrator.backends.base import (
    Backend,
    Capability,
    Endpoint,
    HasState,
    MeshContext,
    Orphan,
    agent_args,
)
from orchestrator.backends.local.forks import FOLDER as FORK_FOLDER
from orchestrator.backends.local.forks import ForkServer
from orchestrator.errors import DeployError
from orchestrator.hostnet import processes
from orchestrator.hostnet.files import write_token_file
from orchestrator.model import Node

READY_TIMEOUT = 30.0
STOP_GRACE = 5.0
TEARDOWN_GRACE = 2.0


class LocalBackend(Backend):
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capability] = Capability.NONE  # listens on the host's loopback

    def __init__(self, ctx: MeshContext) -> None:
        super().__init__(ctx)
        self.ctx.state.setdefault("root", str(self.root))
        self.ctx.state.setdefault("nodes", {})
        self.forks = ForkServer(self.root, self.ctx.state.setdefault("forkserver", {}),
                                self.ctx.save)

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        if not Path("/proc/self/stat").exists():
            return "the local backend needs Linux /proc (to track its agent processes)"
        return None

    # --- orphans ------------------------------------------------------------------------
    @classmethod
    def find_orphans(cls, has_state: HasState) -> list[Orphan]:
        """Agents whose data dir (``<state folder>/local/<node>/data``) lies in a state folder
        without state (the fork server's is ``local/.forkserver/data``), and such folders'
        ``local/`` homes under $MESHBED_HOME."""
        homes: dict[Path, list[processes.Target]] = {}
        servers: set[int] = set()
        for target, data_dir in processes.agents_with_data_dirs():
            path = Path(data_dir)
            if path.name == "data" and path.parent.parent.name == "local":
                homes.setdefault(path.parents[2], []).append(target)
                if path.parent.name == FORK_FOLDER:
                    servers.add(target[0])
        for mesh_dir in state.mesh_dirs(state.home()):
            if (mesh_dir / "local").is_dir():
                homes.setdefault(mesh_dir, [])
        out = []
        for state_dir, targets in sorted(homes.items()):
            if has_state(state_dir.name, state_dir):
                continue
            things = [f"{'fork server' if pid in servers else 'agent'} process {pid}"
                      for pid, _ in targets]
            if (state_dir / "local").is_dir():
                things.append(f"folder {state_dir / 'local'}")
            out.append(Orphan(cls.name, state_dir.name, tuple(things),
                              {"state_dir": str(state_dir), "targets": targets}))
        return out

    @classmethod
    def remove_orphan(cls, orphan: Orphan) -> list[str]:
        targets = [(int(p), s) for p, s in orphan.detail["targets"]]
        survivors = asyncio.run(processes.terminate(targets, grace=TEARDOWN_GRACE))
        left = [f"agent process {pid}" for pid in survivors]
        state_dir = Path(orphan.detail["state_dir"])
        if not survivors and not (state_dir / state.STATE_FILE).exists():
            shutil.rmtree(state_dir / "local", ignore_errors=True)
            with contextlib.suppress(OSError):
                state_dir.rmdir()  # when nothing else is in it
            if (state_dir / "local").exists():
                left.append(f"folder {state_dir / 'local'}")
        return left

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
            write_token_file(path, self.ctx.token)
        return path

    def _target(self, name: str) -> processes.Target:
        entry = self._entry(name)
        return int(entry.get("pid") or 0), entry.get("start_time")

    # --- lifecycle ----------------------------------------------------------------------
    async def deploy(self, node: Node) -> Endpoint:
        node_dir = self._node_dir(node.name)
        if node_dir.exists():
            shutil.rmtree(node_dir)
        (node_dir / "data").mkdir(parents=True)
        return await self._launch(node, "127.0.0.1:0", "127.0.0.1:0")

    async def start(self, node: Node) -> Endpoint:
        entry = self._entry(node.name)
        if processes.alive(*self._target(node.name)):
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
        log.touch()
        exit_file = node_dir / "exit_status"
        pid, started = await self.forks.spawn(
            args, [sys.executable, "-m", "peer", *args], log, exit_file)
        entry = self._entry(node.name)
        entry.update(pid=pid, start_time=started, log=str(log), data_dir=str(node_dir / "data"))
        self.ctx.save()  # before waiting: `down` after a crash must find it
        info = await self._wait_ready(node, (pid, started), ready, log, exit_file)
        entry.update(api=info["api"], wire=info["wire"])
        self.ctx.save()
        return Endpoint(api=info["api"], wire=info["wire"])

    async def _wait_ready(self, node: Node, target: processes.Target, ready: Path, log: Path,
                          exit_file: Path) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline:
            if ready.exists():
                try:
                    info = json.loads(ready.read_text())
                    return {"api": str(info["api"]), "wire": str(info["wire"])}
                except (json.JSONDecodeError, KeyError):
                    pass  # written atomically, but be lenient
            if not processes.alive(*target):
                code = exit_file.read_text().strip() if exit_file.exists() else "unknown status"
                raise DeployError(
                    f"{node.name}: agent exited ({code}) before it was ready; "
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
        target = self._target(name)
        if grace > 0:
            await processes.terminate([target], grace=grace)
        else:
            await processes.kill([target])

    async def teardown(self) -> None:
        """End every agent (SIGTERM, a short grace, SIGKILL); what survives stays in state
        (and so does its folder) for the next `down`."""
        nodes: dict[str, dict[str, Any]] = self.ctx.state.get("nodes", {})
        targets = {name: self._target(name) for name in nodes}
        survivors = set(await processes.terminate(targets.values(), grace=TEARDOWN_GRACE))
        # the fork server after its agents (it reaps them)
        survivors |= set(await processes.terminate([self.forks.target], grace=TEARDOWN_GRACE))
        root = Path(self.ctx.state.get("root") or self.root)
        # Safety net: agents spawned but not yet recorded when the orchestrator died.
        recorded = {pid for pid, _ in targets.values()} | {self.forks.target[0]}
        strays = [(pid, processes.start_time(pid))
                  for pid in processes.find_by_argument(str(root) + os.sep) if pid not in recorded]
        survivors |= set(await processes.kill(strays))
        left = {name: nodes[name] for name, (pid, _) in targets.items() if pid in survivors}
        self.ctx.state["nodes"] = left
        if self.forks.target[0] not in survivors:
            self.forks.entry.clear()
        self.ctx.save()
        if survivors:
            raise DeployError(
                f"local: processes {', '.join(map(str, sorted(survivors)))} survived SIGKILL "
                f"(kept in state, and {root}); run `meshbed down` again"
            )
        await asyncio.to_thread(shutil.rmtree, root, True)

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
