"""SshBackend: agents on physical lab devices (Raspberry Pis, laptops, routers) over SSH.

One asyncssh connection per device carries every step (probe, push peer.pyz, start, kill,
read the ready file, clean up); a device may host several nodes. Devices are worked on in
parallel. Links: rates in the device's kernel where allowed (shaping.py), the rest by agent
emulation (POST /link); partitions through the agents' blocklists. Client nodes (a real
client beside the translator, clients.py) get kernel rates and iptables partitions only.
See docs/ssh.md and docs/clients.md.

State section (enough for `meshbed down` from another shell, after a crash)::

    {"devices": {DEV: {"target": {...SshTarget...}, "profile", "python", "detach",
                       "mesh_dirs": [...], "created": bool, "chain": iptables chain}},
     "nodes": {NODE: {"device", "run_dir", "data_dir", "pyz", "client", "unit", "pid",
                      "api_port", "wire_port", "tc": {...}}}}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Optional

from devices import Profile, ProfileError, load_profile
from orchestrator.backends.base import (
    Backend,
    Capability,
    Description,
    Endpoint,
    HasState,
    MeshContext,
    Orphan,
    agent_args,
)
from orchestrator.backends.ssh import clients as client_nodes
from orchestrator.backends.ssh import deploy as steps
from orchestrator.backends.ssh import journal, remote, shaping
from orchestrator.backends.ssh import options as group_options
from orchestrator.backends.ssh.connection import (
    CONNECT_TIMEOUT,
    ConnectionPool,
    DeviceConnection,
    DeviceError,
    SshTarget,
    target_for,
)
from orchestrator.clients import MESHBED, client_of
from orchestrator.errors import DeployError, MeshbedError
from orchestrator.model import Device, Link, Node, Topology
from orchestrator.options import GroupInput

PER_DEVICE_CHANNELS = 8  # sshd's MaxSessions defaults to 10 per connection
CLIENT_READY_TIMEOUT = 90.0


def target_from_dict(d: dict[str, Any]) -> SshTarget:
    jump = d.get("jump")
    return SshTarget(**{**d, "jump": target_from_dict(jump) if jump else None})


def local_pyz() -> Path:
    from orchestrator.pyz import ensure_pyz

    return ensure_pyz()


def is_client(entry_or_node: Any) -> bool:
    options = entry_or_node.options if isinstance(entry_or_node, Node) else entry_or_node
    return client_of(options) != MESHBED


class _DeviceSession:
    """What we know about one device during this process's life."""

    def __init__(self, conn: DeviceConnection, profile: Profile, python: str, probe: remote.Probe) -> None:
        self.conn = conn
        self.profile = profile
        self.python = python
        self.probe = probe
        self.pyz: Optional[str] = None
        self.client_pyz: Optional[str] = None  # the translator of client nodes, when pushed
        self.pushed = False
        self.channels = asyncio.Semaphore(PER_DEVICE_CHANNELS)


class SshBackend(Backend):
    name: ClassVar[str] = "ssh"
    capabilities: ClassVar[Capability] = Capability.REACHABLE
    group_options = group_options.GROUP_OPTIONS

    @classmethod
    def plan_nodes(cls, group: GroupInput, options: dict[str, Any]) -> list[dict[str, Any]]:
        return group_options.plan_nodes(group, options)

    @classmethod
    def validate(cls, topology: Topology) -> None:
        client_nodes.check_alone(topology)
        client_nodes.check_links(topology)

    @classmethod
    def describe(cls) -> Description:
        # the kernel only where the device allows it (root, profile tc, one node on the
        # device): set_link's return value says per node
        return Description(rate="device kernel (tbf) where allowed, else agent",
                           partition="agent blocklists (device iptables with client nodes)")

    def __init__(self, ctx: MeshContext, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(ctx)
        self.pool = ConnectionPool(connect_timeout)
        self.sessions: dict[str, _DeviceSession] = {}
        self._session_locks: dict[str, asyncio.Lock] = {}
        self._pyz: Optional[tuple[Path, str]] = None
        self._client_pyz: Optional[tuple[Path, str]] = None
        self.launched_at: dict[str, float] = {}  # node -> monotonic time its start returned
        self._need: dict[str, int] = {}  # device -> bytes its nodes' content may take
        self.ctx.state.setdefault("devices", {})
        self.ctx.state.setdefault("nodes", {})

    def _save(self) -> None:
        """Save the state, and its journal copy (what `doctor` finds if the folder is lost)."""
        self.ctx.save()
        journal.write(self.ctx.state_dir, self.ctx.mesh, self.ctx.state)

    @classmethod
    def find_orphans(cls, has_state: HasState) -> list[Orphan]:
        """Devices' dirs and agents recorded in the journal for state folders without state."""
        out = []
        for data in journal.entries():
            state_dir, mesh = Path(data["state_dir"]), str(data["mesh"])
            if has_state(mesh, state_dir):
                continue
            section = data["section"]
            things = [f"dir {d} on {dev}" for dev, e in section.get("devices", {}).items()
                      for d in e.get("mesh_dirs") or []]
            things += [f"agent {n} on {e.get('device')}" for n, e in section.get("nodes", {}).items()]
            out.append(Orphan(cls.name, mesh, tuple(things), {"entry": data}))
        return out

    @classmethod
    def remove_orphan(cls, orphan: Orphan) -> list[str]:
        """The backend's teardown from the journal's copy of the section."""
        data = orphan.detail["entry"]
        ctx = MeshContext(mesh=str(data["mesh"]), token="", state_dir=Path(data["state_dir"]),
                          state=data["section"], save=lambda: None, say=lambda _: None)
        try:
            asyncio.run(cls(ctx).teardown())
        except DeployError as exc:
            return [str(exc)]
        return []

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        try:
            import asyncssh  # noqa: F401
        except ImportError as exc:
            return f"the ssh backend needs asyncssh (pip install asyncssh): {exc}"
        return None

    # --- devices ------------------------------------------------------------------------
    def _device(self, name: str) -> Device:
        topo = self.ctx.topology
        if topo is None or topo.inventory is None:
            raise DeployError(f"device {name}: no inventory in the topology")
        try:
            return topo.inventory.get(name)
        except KeyError:
            raise DeployError(f"device {name}: not in inventory {topo.inventory.path}") from None

    def _device_of(self, node: Node) -> str:
        device = group_options.device_of(node.options)
        if not device:
            raise DeployError(f"{node.name}: ssh node without a device (group needs devices: [...])")
        return device

    async def _pyz_file(self) -> tuple[Path, str]:
        if self._pyz is None:
            path = await asyncio.to_thread(local_pyz)
            self._pyz = (path, await asyncio.to_thread(steps.file_sha256, path))
        return self._pyz

    async def _client_pyz_file(self) -> tuple[Path, str]:
        if self._client_pyz is None:
            from orchestrator.clients.shipping import ensure_client_pyz

            path = await asyncio.to_thread(ensure_client_pyz)
            self._client_pyz = (path, await asyncio.to_thread(steps.file_sha256, path))
        return self._client_pyz

    async def _ensure_client_pyz(self, session: _DeviceSession) -> str:
        """The translator's zipapp on the device (pushed when missing or different)."""
        if session.client_pyz is None:
            local, sha = await self._client_pyz_file()
            session.client_pyz, _ = await steps.ensure_pyz(
                session.conn, local, sha, session.probe.install_dir, stem="client")
        return session.client_pyz

    async def session(self, name: str) -> _DeviceSession:
        """Connect, probe and check the device once; push peer.pyz if it lacks it."""
        lock = self._session_locks.setdefault(name, asyncio.Lock())
        async with lock:
            cached = self.sessions.get(name)
            if cached is not None:
                if cached.conn.conn.is_closed():  # the device rebooted or the link dropped
                    cached.conn = await self.pool.get(cached.conn.target)
                return cached
            device = self._device(name)
            try:
                profile = load_profile(device.profile)
            except ProfileError as exc:
                raise DeviceError(name, str(exc)) from None
            target = target_for(device, self.ctx.topology.inventory if self.ctx.topology else None)
            python = device.python or profile.python
            entry = self.ctx.state["devices"].setdefault(name, {})
            entry.update({"target": asdict(target), "profile": profile.name, "python": python})
            self._save()
            conn = await self.pool.get(target)
            found = await steps.probe(conn, profile, python)
            for problem in (
                remote.python_problem(found.python_version, found.python_text, python, profile.min_python),
                remote.space_problem(found.free_bytes, found.data_dir, self._need.get(name, 0)),
            ):
                if problem:
                    raise DeviceError(name, f"{problem} (profile {profile.name})")
            method = found.detach_method(profile)
            if method is None:
                raise DeviceError(name, f"none of {', '.join(profile.detach)} found to start agents")
            # Record what we are about to create before creating it.
            entry.update({
                "detach": method,
                "mesh_dirs": steps.mesh_dirs(found, self.ctx.mesh),
                "install_dir": found.install_dir,
                "data_dir": found.data_dir,
                "created": True,
            })
            self._save()
            session = _DeviceSession(conn, profile, python, found)
            local, sha = await self._pyz_file()
            session.pyz, session.pushed = await steps.ensure_pyz(conn, local, sha, found.install_dir)
            self.sessions[name] = session
            return session

    def _content_bytes(self) -> int:
        """All of the mesh's content, the most one node can come to hold."""
        topo = self.ctx.topology
        if topo is None:
            return 0
        total = 0
        for c in topo.contents:
            if c.size is not None:
                total += c.size
            elif c.path is not None and c.path.is_file():
                total += c.path.stat().st_size
        return total

    async def prepare(self, nodes: Sequence[Node]) -> None:
        """Every device of ``nodes`` in parallel: connect, probe, check, push peer.pyz."""
        names = list(dict.fromkeys(self._device_of(n) for n in nodes))
        for node in nodes:  # every node of a device may end up holding all the content
            device = self._device_of(node)
            self._need[device] = self._need.get(device, 0) + self._content_bytes()
        topo = self.ctx.topology
        if topo is not None and client_nodes.client_nodes(nodes):
            # before anything is created: a device that cannot run its client refuses `up`
            await client_nodes.check_devices(topo, self.pool)
        await self._pyz_file()
        results = await asyncio.gather(*(self.session(n) for n in names), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            for r in failed:
                if not isinstance(r, Exception):
                    raise r
            lines = "; ".join(str(r) for r in failed)
            raise DeployError(f"{len(failed)} of {len(names)} devices failed: {lines}")
        pushed = sum(1 for n in names if self.sessions[n].pushed)
        self.ctx.say(f"ssh: {len(names)} devices ready, peer.pyz pushed to {pushed}")

    # --- agents -------------------------------------------------------------------------
    def _paths(self, node: Node, session: _DeviceSession) -> steps.NodePaths:
        return steps.node_paths(
            session.probe.install_dir, session.probe.data_dir, self.ctx.mesh, node.name
        )

    async def deploy(self, node: Node) -> Endpoint:
        device = self._device_of(node)
        try:
            session = await self.session(device)
            paths = self._paths(node, session)
            client = client_of(node.options)
            self.ctx.state["nodes"][node.name] = {
                "device": device,
                "run_dir": paths.run_dir,
                "data_dir": paths.data_dir,
                "pyz": await self._ensure_client_pyz(session) if client != MESHBED else session.pyz,
                "client": client,
                "unit": remote.unit_name(self.ctx.mesh, node.name)
                if self.ctx.state["devices"][device]["detach"] == "systemd-run" else None,
            }
            self._save()
            return await self._launch(node, session, paths, 0, 0, fresh=True)
        except DeviceError as exc:
            raise DeployError(str(exc)) from None

    async def _launch(
        self,
        node: Node,
        session: _DeviceSession,
        paths: steps.NodePaths,
        api_port: int,
        wire_port: int,
        fresh: bool = False,
    ) -> Endpoint:
        entry = self.ctx.state["nodes"][node.name]
        args = agent_args(
            node,
            mesh=self.ctx.mesh,
            data_dir=paths.data_dir,
            api=f"0.0.0.0:{api_port}",
            wire=f"0.0.0.0:{wire_port}",
            token_file=paths.token_file,
            ready_file=paths.ready_file,
            backend=self.name,
        )
        assert session.pyz is not None
        client = client_of(entry)
        if client != MESHBED:  # the translator takes the agent's arguments after the kind
            args = [client, *args]
        async with session.channels:
            pid = await steps.start_agent(
                session.conn,
                method=self.ctx.state["devices"][entry["device"]]["detach"],
                python=session.python,
                pyz=entry["pyz"] if client != MESHBED else session.pyz,
                paths=paths,
                args=args,
                unit=entry.get("unit") or remote.unit_name(self.ctx.mesh, node.name),
                fresh_token=self.ctx.token if fresh else None,
            )
        entry["pid"] = pid
        self.launched_at[node.name] = time.monotonic()
        self._save()
        async with session.channels:
            # a client node is ready once its client answers (deluged may take ~60 s)
            ready = await steps.wait_ready(session.conn, node.name, paths,
                                           CLIENT_READY_TIMEOUT if client != MESHBED else steps.READY_TIMEOUT)
        api, wire = remote.ports_of(ready)
        entry.update({"pid": ready.get("pid", pid), "api_port": api, "wire_port": wire})
        self._save()
        host = session.conn.target.host
        why = await steps.tcp_reachable(host, api)
        if why is not None:
            raise DeviceError(
                session.conn.name,
                f"agent of {node.name} listens on port {api} but {host}:{api} is not reachable "
                f"from here ({why}); open the control port (docs/ssh.md)",
            )
        return Endpoint(api=f"{host}:{api}", wire=f"{host}:{wire}")

    async def kill(self, node: Node) -> None:
        await self._signal(node, graceful=False)

    async def stop(self, node: Node) -> None:
        await self._signal(node, graceful=True)

    async def _signal(self, node: Node, graceful: bool) -> None:
        entry = self.ctx.state["nodes"].get(node.name)
        if not entry:
            return
        session = await self._session_or_raise(entry["device"])
        cmd = (remote.stop_command if graceful else remote.kill_command)(
            entry["run_dir"], entry.get("unit"), group=is_client(entry))
        async with session.channels:
            await session.conn.run(cmd, timeout=30)

    async def _session_or_raise(self, device: str) -> _DeviceSession:
        try:
            return await self.session(device)
        except DeviceError as exc:
            raise DeployError(str(exc)) from None

    async def start(self, node: Node) -> Endpoint:
        entry = self.ctx.state["nodes"][node.name]
        session = await self._session_or_raise(entry["device"])
        paths = steps.NodePaths(run_dir=entry["run_dir"], data_dir=entry["data_dir"])
        assert session.pyz is not None
        pyz = entry["pyz"] if is_client(entry) else session.pyz
        async with session.channels:
            alive = await session.conn.run(
                remote.alive_command(paths.run_dir) + "; " + remote.present_command(pyz, paths.token_file)
            )
        host = session.conn.target.host
        if "alive" in alive.stdout.split() and entry.get("api_port"):
            return Endpoint(api=f"{host}:{entry['api_port']}", wire=f"{host}:{entry['wire_port']}")
        # A device that rebooted with its files in RAM (a router's /tmp) lost the agent and the
        # node's dirs: push peer.pyz again and start the node afresh; else resume from its data.
        present = set(alive.stdout.split())
        if "pyz" not in present:
            try:
                if is_client(entry):
                    session.client_pyz = None
                    entry["pyz"] = await self._ensure_client_pyz(session)
                else:
                    local, sha = await self._pyz_file()
                    session.pyz, _ = await steps.ensure_pyz(session.conn, local, sha, session.probe.install_dir)
            except DeviceError as exc:
                raise DeployError(str(exc)) from None
        if "token" not in present:  # the run dir is gone; data that survived is kept
            try:
                async with session.channels:
                    await session.conn.run(steps.restore_dirs_command(paths), stdin=self.ctx.token)
            except DeviceError as exc:
                raise DeployError(str(exc)) from None
        try:  # same ports again, so peers and reports keep one address
            return await self._launch(
                node, session, paths, int(entry.get("api_port") or 0), int(entry.get("wire_port") or 0)
            )
        except DeviceError:
            try:  # a port was taken meanwhile: any free one
                return await self._launch(node, session, paths, 0, 0)
            except DeviceError as exc:
                raise DeployError(str(exc)) from None

    # --- links --------------------------------------------------------------------------
    async def set_link(self, node: Node, link: Link) -> frozenset[str]:
        """Rates in the device's kernel when allowed (see shaping.py), else nothing: the
        engine then sends the whole link to the agent's own emulation. A client node has no
        emulation: its rates go to the kernel or the event fails."""
        applied = await self._set_link(node, link)
        if not applied and is_client(node):
            raise DeployError(f"{node.name}: the link of a client node cannot be shaped on its "
                              "device (another mesh shapes its interface, or tc failed there)")
        return applied

    async def _set_link(self, node: Node, link: Link) -> frozenset[str]:
        entry = self.ctx.state["nodes"].get(node.name)
        if not entry:
            return frozenset()
        device = entry["device"]
        session = await self._session_or_raise(device)
        alone = sum(1 for e in self.ctx.state["nodes"].values() if e.get("device") == device) == 1
        if not (alone and session.probe.tc_usable(session.profile)):
            return frozenset()
        async with session.channels:
            if not entry.get("tc"):
                out = await session.conn.run(shaping.iface_command(session.conn.target.host))
                dev = out.stdout.strip()
                if not dev:
                    return frozenset()
                owner = shaping.owner_path(session.probe.install_dir, dev, session.conn.target.host)
                claim = await session.conn.run(shaping.claim_command(dev, owner, self.ctx.mesh))
                other = shaping.other_owner(claim.stdout)
                if other is not None:
                    self.ctx.say(f"ssh: {dev} on {device} is shaped by mesh {other}: not touching its "
                                 f"qdiscs; {node.name}'s link is emulated by the agent")
                    return frozenset()
                entry["tc"] = {"dev": dev, "ifb": shaping.ifb_name(self.ctx.mesh, node.name), "owner": owner}
                self._save()  # recorded before the qdiscs exist
            rec = entry["tc"]
            try:
                await session.conn.run(
                    shaping.apply_command(rec["dev"], rec["ifb"], link.up_bps, link.down_bps)
                )
            except DeviceError as exc:
                self.ctx.say(f"ssh: tc on {device} failed, agent emulation instead: {exc.message}")
                await session.conn.run(shaping.clear_command(rec["dev"], rec["ifb"]), check=False)
                if rec.get("owner"):
                    await session.conn.run(shaping.release_command(rec["owner"], self.ctx.mesh), check=False)
                entry.pop("tc", None)
                self._save()
                return frozenset()
        return frozenset({"up_bps", "down_bps"})

    # --- partitions -----------------------------------------------------------------------
    async def partition(self, sides: Sequence[Sequence[str]]) -> bool:
        """A mesh with client nodes (which have no blocklist): DROP rules in every device's
        kernel (clients.py); other meshes keep the agents' blocklists."""
        nodes: dict[str, dict[str, Any]] = self.ctx.state["nodes"]
        if not any(is_client(e) for e in nodes.values()):
            return False
        try:
            side_of = client_nodes.device_sides(sides, nodes)
        except ValueError as exc:
            raise DeployError(f"ssh: {exc}") from None
        devices = self.ctx.state["devices"]
        chain = client_nodes.chain_name(self.ctx.mesh)

        async def one(device: str) -> None:
            others = [devices[d]["target"]["host"] for d, i in side_of.items() if i != side_of[device]]
            session = await self._session_or_raise(device)
            devices[device]["chain"] = chain
            self._save()  # recorded before the chain exists
            async with session.channels:
                await session.conn.run(client_nodes.partition_command(chain, others))

        try:
            await asyncio.gather(*(one(d) for d in side_of))
            await self._heal_devices([d for d in devices if d not in side_of])  # an earlier cut
        except DeviceError as exc:
            raise DeployError(str(exc)) from None
        return True

    async def heal(self) -> None:
        try:
            await self._heal_devices(list(self.ctx.state["devices"]))
        except DeviceError as exc:
            raise DeployError(str(exc)) from None

    async def _heal_devices(self, names: list[str]) -> None:
        async def one(device: str, chain: str) -> None:
            session = await self._session_or_raise(device)
            async with session.channels:
                await session.conn.run(client_nodes.heal_command(chain))

        devices = self.ctx.state["devices"]
        await asyncio.gather(*(one(d, devices[d]["chain"]) for d in names if devices[d].get("chain")))

    async def put_file(self, node: Node, src: Path, name: str) -> str:
        entry = self.ctx.state["nodes"][node.name]
        session = await self._session_or_raise(entry["device"])
        rel = f"inbox/{name}"
        async with session.channels:
            await session.conn.put(src, f"{entry['data_dir']}/{rel}")
        return rel

    async def logs(self, node: Node) -> str:
        entry = self.ctx.state["nodes"].get(node.name)
        if not entry:
            return ""
        try:
            session = await self.session(entry["device"])
        except MeshbedError as exc:
            return f"(no log: {exc})"
        return await steps.log_tail(
            session.conn, steps.NodePaths(run_dir=entry["run_dir"], data_dir=entry["data_dir"])
        )

    # --- teardown -----------------------------------------------------------------------
    async def teardown(self) -> None:
        """Stop this mesh's agents and remove its dirs on every device, from state alone.

        Two phases: every agent everywhere is stopped before any directory is removed, since
        devices may share a filesystem (NFS homes, the test lab) and one device's `rm -rf`
        must not take the pid file of an agent another device has yet to stop."""
        devices: dict[str, dict[str, Any]] = self.ctx.state.get("devices", {})
        nodes: dict[str, dict[str, Any]] = self.ctx.state.get("nodes", {})
        names = list(devices)

        def on(name: str) -> dict[str, dict[str, Any]]:
            return {n: e for n, e in nodes.items() if e.get("device") == name}

        stopped = await asyncio.gather(
            *(self._teardown_device(n, devices[n], on(n), remove=False) for n in names),
            return_exceptions=True,
        )
        ok = [n for n, r in zip(names, stopped) if not isinstance(r, BaseException)]
        removed = await asyncio.gather(
            *(self._teardown_device(n, devices[n], {}, remove=True) for n in ok),
            return_exceptions=True,
        )
        left = [str(r) for r in list(stopped) + list(removed) if isinstance(r, BaseException)]
        for name, r in zip(ok, removed):
            if not isinstance(r, BaseException):
                devices.pop(name, None)
                for n in on(name):
                    nodes.pop(n, None)
        self._save()
        await self.pool.close()
        self.sessions.clear()
        if left:  # the state keeps those devices, so a later `meshbed down` retries them
            raise DeployError("ssh: left on devices: " + "; ".join(left))

    async def _teardown_device(
        self, name: str, entry: dict[str, Any], nodes: dict[str, dict[str, Any]], remove: bool
    ) -> None:
        if not entry.get("created") and not nodes:
            return  # never got past connecting: nothing of ours is there
        session = self.sessions.get(name)
        if session is not None and not session.conn.conn.is_closed():
            conn = session.conn
        else:
            conn = await self.pool.get(target_from_dict(entry["target"]))
        if nodes:
            # in parallel on the device: one slow agent does not serialize the others
            stops = [remote.stop_command(e["run_dir"], e.get("unit"), group=is_client(e))
                     for e in nodes.values()]
            stops += [
                shaping.clear_command(e["tc"]["dev"], e["tc"]["ifb"])
                + ("; " + shaping.release_command(e["tc"]["owner"], self.ctx.mesh) if e["tc"].get("owner") else "")
                for e in nodes.values() if e.get("tc")
            ]
            await conn.run(" ".join(f"( {s} ) &" for s in stops) + " wait", timeout=60)
        if remove and entry.get("chain"):
            await conn.run(client_nodes.remove_chain_command(entry["chain"]), timeout=60)
        dirs = list(entry.get("mesh_dirs") or [])
        if remove and dirs:
            await conn.run(remote.remove_command(dirs, self.ctx.mesh), timeout=60)
