"""`backend: netns`: Mininet-style mesh of Linux network namespaces on one bridge.

Per mesh: bridge ``mb-<tag>`` holding the host's ``.1`` address of a free private /20,
one namespace ``mb-<tag>-<i>`` per node with a veth (``eth0`` inside, ``mb<tag>v<i>`` on
the bridge), agents at NODE_IP:7000 (API) / NODE_IP:6881 (wire), links shaped with tbf
(up: the node's eth0, down: the bridge-side veth), partitions with iptables rules scoped to
the mesh's bridge ports. Everything is recorded in ``ctx.state`` before it is created, so
`teardown()` works from the state alone after a crash and is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from orchestrator.backends import tc
from orchestrator.backends.base import (
    API_PORT,
    WIRE_PORT,
    Backend,
    Capability,
    Description,
    Endpoint,
    HasState,
    MeshContext,
    Orphan,
    agent_args,
)
from orchestrator.backends.netns import addressing, bridge, firewall, namespaces, orphans
from orchestrator.clients import MESHBED, client_of, client_option, node_command
from orchestrator.errors import DeployError
from orchestrator.hostnet import processes, subnets
from orchestrator.hostnet.files import write_token_file
from orchestrator.model import Link, Node
from orchestrator.options import GroupInput

NO_ROOT = "backend netns needs root (CAP_NET_ADMIN); use backend: local to run without root"
RATE_FIELDS = frozenset({"up_bps", "down_bps"})
DELAY_FIELDS = frozenset({"latency_ms", "jitter_ms", "loss"})
TRACKER_PORT = 6969  # opentracker (HTTP and UDP) on the mesh bridge's address
CONCURRENCY = 8  # parallel `ip`/`tc` processes during deploy (2-core hosts)


class NetnsBackend(Backend):
    name = "netns"
    capabilities = Capability.REACHABLE | Capability.TRACKER
    group_options = (client_option(),)  # real clients: shaped and partitioned in the kernel

    @classmethod
    def plan_nodes(cls, group: GroupInput, options: dict[str, Any]) -> list[dict[str, Any]]:
        client = client_of(options)
        return [{} if client == MESHBED else {"client": client} for _ in range(group.count())]

    @classmethod
    def describe(cls) -> Description:
        return tc.describe_kernel_shaping()

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._lock = asyncio.Lock()
        self._said_netem = False

    # --- availability -------------------------------------------------------------------
    @classmethod
    def conflict(cls, mesh: str) -> Optional[str]:
        tag = namespaces.mesh_tag(mesh)
        taken = sorted(n for n in namespaces.existing() if n.startswith(f"mb-{tag}-"))
        if not taken:
            return None
        return (
            f"network namespaces of a mesh named {mesh!r} already exist ({taken[0]} ...; another "
            f"MESHBED_HOME, or a crash without state): `meshbed down {mesh}` there, "
            f"`meshbed doctor --clean-orphans {mesh}`, or pick another name"
        )

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        if os.geteuid() != 0:
            return NO_ROOT
        for tool, pkg in (("ip", "iproute2"), ("tc", "iproute2"), ("iptables", "iptables"),
                          ("iptables-restore", "iptables")):
            if shutil.which(tool) is None:
                return f"backend netns needs `{tool}` (install {pkg})"
        if not os.path.isdir("/sys/class/net"):
            return "backend netns needs /sys/class/net (sysfs)"
        return None

    @classmethod
    def find_orphans(cls, has_state: HasState) -> list[Orphan]:
        """Namespaces, bridges, veths, chains and rules named after a mesh tag whose state
        is gone (the bridge's mark names its state folder; else the rules name the mesh)."""
        out = []
        for tag, info in sorted(orphans.find().items()):
            state_dir = Path(info["state_dir"]) if info["state_dir"] else None
            mesh = info["mesh"] or f"netns-{tag}"  # nothing left says the name
            if info["mesh"] and has_state(mesh, state_dir):
                continue
            out.append(Orphan(cls.name, mesh, tuple(info["things"]), {"tag": tag, "info": info}))
        return out

    @classmethod
    def remove_orphan(cls, orphan: Orphan) -> list[str]:
        import tempfile

        tag = orphan.detail["tag"]
        with tempfile.TemporaryDirectory() as tmp:
            ctx = MeshContext(mesh=orphan.mesh, token="", state_dir=Path(tmp),
                              state=orphans.state_for(tag, orphan.detail["info"]),
                              save=lambda: None, say=lambda _: None)
            try:
                asyncio.run(cls(ctx).teardown())
                asyncio.run(orphans.delete_veths(tag))
            except (DeployError, RuntimeError) as exc:
                return [str(exc)]
        left = orphans.find().get(tag)
        return list(left["things"]) if left else []

    # --- state helpers ------------------------------------------------------------------
    @property
    def st(self) -> dict[str, Any]:
        return self.ctx.state

    def _data_root(self) -> Path:
        return self.ctx.state_dir / "netns"

    def _init_mesh(self) -> None:
        """Pick names and the subnet, and record them (before anything is created)."""
        if "tag" in self.st:
            return
        tag = namespaces.mesh_tag(self.ctx.mesh)
        home = self.ctx.state_dir.parent
        home.mkdir(parents=True, exist_ok=True)
        # The host-wide lock, held until the bridge holds its address (so the next mesh,
        # of any backend, sees the route), keeps meshes coming up at once apart.
        with subnets.host_lock():
            net = addressing.choose(tag, addressing.used_networks(), _subnets_of_other_meshes(
                home, self.ctx.mesh))
            self.st.update(
                tag=tag,
                bridge=bridge.bridge_name(tag),
                subnet=str(net),
                host_ip=str(addressing.host_address(net)),
                data_root=str(self._data_root()),
                rules=[],
                chains=[],
                nodes={},
                next_index=0,
                partition=None,
            )
            self.ctx.save()
            bridge.create_bridge_sync(self.st["bridge"], self.st["host_ip"], net.prefixlen)
            orphans.mark_bridge(self.st["bridge"], self.ctx.state_dir)  # whose it is, after a crash

    def _record_nodes(self, nodes: Sequence[Node]) -> list[dict[str, Any]]:
        import ipaddress

        net = ipaddress.IPv4Network(self.st["subnet"])
        out = []
        for node in nodes:
            rec = self.st["nodes"].get(node.name)
            if rec is None:
                i = int(self.st["next_index"])
                self.st["next_index"] = i + 1
                rec = {
                    "index": i,
                    "ns": namespaces.ns_name(self.st["tag"], i),
                    "veth": bridge.veth_name(self.st["tag"], i),
                    "ip": str(addressing.node_address(net, i)),
                    "data_dir": str(self._data_root() / node.name),
                    "group": node.group,
                    "pid": None,
                    "start_time": None,
                    "rates": None,  # [up, down] bits/s in force in the kernel
                }
                self.st["nodes"][node.name] = rec
            out.append(rec)
        self.ctx.save()
        return out

    def _node(self, node: Node) -> dict[str, Any]:
        try:
            rec: dict[str, Any] = self.st["nodes"][node.name]
        except KeyError:
            raise RuntimeError(f"netns: node {node.name} was never deployed") from None
        return rec

    # --- lifecycle ----------------------------------------------------------------------
    async def prepare(self, nodes: Sequence[Node]) -> None:
        """Bridge, firewall rule, namespaces, veths, addresses and link caps for ``nodes``,
        batched (`ip -batch`, `tc -batch`) so hundreds of nodes come up in seconds."""
        async with self._lock:
            await tc.probe_async()  # cached from here on: later sync reads cost nothing
            await asyncio.to_thread(self._init_mesh)  # a lock and `ip`: not on the loop
            recs = self._record_nodes(nodes)
            net_prefix = int(self.st["subnet"].split("/")[1])
            await bridge.create_bridge(self.st["bridge"], self.st["host_ip"], net_prefix)
            rule = firewall.accept_rule(self.st["bridge"], f"meshbed:{self.ctx.mesh}")
            if rule not in self.st["rules"]:
                self.st["rules"].append(rule)
                self.ctx.save()
            await firewall.insert_rule(rule)
            await namespaces.create([r["ns"] for r in recs])
            await bridge.add_ports(self.st["bridge"], [(r["veth"], r["ns"], r["ip"]) for r in recs])
            sem = asyncio.Semaphore(CONCURRENCY)

            async def configure(rec: dict[str, Any], node: Node) -> None:
                async with sem:
                    await bridge.configure_node(rec["ns"], rec["ip"], net_prefix)
                    if node.link.up_bps:
                        await tc.run(["tc", "-n", rec["ns"],
                                      *tc.tbf_args(bridge.NODE_DEV, node.link.up_bps)[1:]])

            await asyncio.gather(*(configure(r, n) for r, n in zip(recs, nodes)))
            await bridge.pin_neighbours(self.st["bridge"], self.st["host_ip"],
                                        [(r["ns"], r["ip"]) for r in self.st["nodes"].values()],
                                        CONCURRENCY)
            down = [tc.tbf_args(r["veth"], n.link.down_bps)[1:]
                    for r, n in zip(recs, nodes) if n.link.down_bps]
            if down:
                body = "".join(" ".join(line) + "\n" for line in down)
                await tc.run(["tc", "-batch", "-"], input=body.encode())
            for r, n in zip(recs, nodes):
                r["rates"] = [n.link.up_bps, n.link.down_bps]
                self._note_delay(n.link)
            self.ctx.save()

    async def deploy(self, node: Node) -> Endpoint:
        if node.name not in self.st.get("nodes", {}):
            await self.prepare([node])
        rec = self._node(node)
        if rec.get("pid"):  # a re-deploy replaces a running agent
            await processes.kill(self._targets(rec))
        data_dir = Path(rec["data_dir"])
        if data_dir.exists():
            shutil.rmtree(data_dir)  # a fresh data dir: deploy never resumes old pieces
        (data_dir / "inbox").mkdir(parents=True, exist_ok=True)
        return await self._spawn(node, rec)

    async def start(self, node: Node) -> Endpoint:
        rec = self._node(node)
        if processes.alive(rec["pid"] or 0, rec["start_time"]):
            return self._endpoint(rec)
        return await self._spawn(node, rec)

    async def kill(self, node: Node) -> None:
        rec = self._node(node)
        await processes.kill(self._targets(rec))

    async def stop(self, node: Node) -> None:
        rec = self._node(node)
        await processes.terminate(self._targets(rec))

    def _targets(self, rec: dict[str, Any]) -> list[tuple[int, Optional[int]]]:
        """The recorded agent plus anything else living in the node's namespace."""
        targets: list[tuple[int, Optional[int]]] = []
        if rec.get("pid"):
            targets.append((int(rec["pid"]), rec.get("start_time")))
        targets += [(p, None) for p in namespaces.pids(rec["ns"]) if p != rec.get("pid")]
        return targets

    def _endpoint(self, rec: dict[str, Any]) -> Endpoint:
        return Endpoint(api=f"{rec['ip']}:{API_PORT}", wire=f"{rec['ip']}:{WIRE_PORT}")

    async def _spawn(self, node: Node, rec: dict[str, Any]) -> Endpoint:
        data_dir = Path(rec["data_dir"])
        (data_dir / "inbox").mkdir(parents=True, exist_ok=True)
        # beside the data dir, not in it: /share {"file": ...} reaches only the data dir
        token_file = await asyncio.to_thread(
            write_token_file, self.ctx.state_dir / "netns" / "token", self.ctx.token)
        ready = data_dir / "ready.json"
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        run_args = agent_args(
                node,
                mesh=self.ctx.mesh,
                data_dir=str(data_dir),
                api=f"{rec['ip']}:{API_PORT}",
                wire=f"{rec['ip']}:{WIRE_PORT}",
                token_file=str(token_file),
                ready_file=str(ready),
                link=self._agent_link(node.link),
                backend=self.name,
                log_file=str(data_dir / "agent.log"),
            )
        client = client_of(node.options)
        argv = ([sys.executable, "-m", "peer", *run_args] if client == MESHBED
                else node_command(client, run_args))
        # `ip netns exec` execs the command, so the pid is the agent's own
        pid, started = await asyncio.to_thread(
            processes.spawn, ["ip", "netns", "exec", rec["ns"], *argv],
            log_path=data_dir / "stdout.log", cwd=data_dir,
        )
        rec["pid"], rec["start_time"] = pid, started
        self.ctx.save()
        return self._endpoint(rec)

    def _agent_link(self, link: Link) -> Link:
        """What the agent must emulate itself: everything the kernel does not do here."""
        keep_delay = not tc.probe()["netem"]
        return Link(
            up_bps=None,
            down_bps=None,
            latency_ms=link.latency_ms if keep_delay else 0.0,
            jitter_ms=link.jitter_ms if keep_delay else 0.0,
            loss=link.loss if keep_delay else 0.0,
        )

    def _note_delay(self, link: Link) -> None:
        if self._said_netem or not (link.latency_ms or link.jitter_ms or link.loss):
            return
        self._said_netem = True
        if tc.probe()["netem"]:
            self.ctx.say("netns: latency/jitter/loss by the kernel (netem), rates by tbf")
        else:
            self.ctx.say("netns: this kernel has no netem; latency/jitter/loss are emulated "
                         "by the agents, rates by tbf")

    # --- links --------------------------------------------------------------------------
    async def set_link(self, node: Node, link: Link) -> frozenset[str]:
        rec = self._node(node)
        inside = ["ip", "netns", "exec", rec["ns"]]
        applied = set(RATE_FIELDS)
        rates = [link.up_bps, link.down_bps]
        if not tc.probe()["netem"] and rec.get("rates") == rates:
            self._note_delay(link)  # already in force (prepare shapes the topology's links)
            return frozenset(applied)
        rec["rates"] = None  # unknown while it changes
        if tc.probe()["netem"]:
            await tc.netem(bridge.NODE_DEV, link.latency_ms, link.jitter_ms, link.loss,
                           prefix=inside)
            applied |= DELAY_FIELDS
        await tc.shape_egress(bridge.NODE_DEV, link.up_bps, prefix=inside)
        await tc.shape_egress(rec["veth"], link.down_bps)
        rec["rates"] = rates
        self.ctx.save()
        self._note_delay(link)
        return frozenset(applied)

    async def partition(self, sides: Sequence[Sequence[str]]) -> bool:
        if not firewall.bridged_iptables() or "tag" not in self.st:
            self.st["partition"] = "agents"
            self.ctx.save()
            return False
        tag = self.st["tag"]
        main = firewall.partition_chain(tag)
        ports = [[self.st["nodes"][n]["veth"] for n in side if n in self.st["nodes"]]
                 for side in sides]
        chains = [main] + [firewall.side_chain(tag, i) for i in range(len(sides))]
        jump = firewall.jump_rule(self.st["bridge"], main, f"meshbed:{self.ctx.mesh}")
        self.st["chains"] = sorted(set(self.st["chains"]) | set(chains))
        if jump not in self.st["rules"]:
            self.st["rules"].append(jump)
        self.st["partition"] = "kernel"
        self.ctx.save()
        await firewall.remove_chains(main, keep=main)  # a new partition replaces the old one
        await firewall.apply_partition(tag, ports)
        await firewall.insert_rule(jump)  # on top of the ACCEPT rule
        return True

    async def heal(self) -> None:
        if self.st.get("partition") == "agents":
            self.st["partition"] = None
            self.ctx.save()
            return
        if "tag" in self.st:
            main = firewall.partition_chain(self.st["tag"])
            await firewall.remove_chains(main, keep=main)
        self.st["partition"] = None
        self.ctx.save()

    # --- tracker ------------------------------------------------------------------------
    @classmethod
    def tracker_unavailable(cls) -> Optional[str]:
        if shutil.which("opentracker") is None:
            return "opentracker is not installed on this host (apt-get install opentracker)"
        return None

    async def start_tracker(self, infohashes: Sequence[str]) -> str:
        """Debian's opentracker (whitelist build) on the bridge address, in the host's
        namespace: every node reaches it, nothing outside the mesh's subnet is announced."""
        folder = self._data_root() / "tracker"
        self.st["tracker"] = {"dir": str(folder), "pid": None, "start_time": None}
        self.ctx.save()
        await asyncio.to_thread(_write_whitelist, folder, infohashes)
        ip = self.st["host_ip"]
        pid, started = processes.spawn(
            ["opentracker", "-i", ip, "-p", str(TRACKER_PORT), "-P", str(TRACKER_PORT),
             "-d", str(folder), "-w", "whitelist"], log_path=folder.parent / "tracker.log")
        self.st["tracker"].update(pid=pid, start_time=started)
        self.ctx.save()
        url = f"http://{ip}:{TRACKER_PORT}/announce"
        await _wait_answers(f"http://{ip}:{TRACKER_PORT}/stats", 15.0, pid)
        return url

    # --- files --------------------------------------------------------------------------
    async def put_file(self, node: Node, src: Path, name: str) -> str:
        rec = self._node(node)
        dest = Path(rec["data_dir"]) / "inbox" / name
        dest.parent.mkdir(parents=True, exist_ok=True)

        def place() -> None:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            try:
                os.link(src, dest)  # same file system: no copy
            except OSError:
                shutil.copyfile(src, dest)

        await asyncio.to_thread(place)
        return f"inbox/{name}"

    async def logs(self, node: Node) -> str:
        rec = self.st.get("nodes", {}).get(node.name)
        if not rec:
            return ""
        parts = []
        for fname in ("stdout.log", "agent.log"):
            path = Path(rec["data_dir"]) / fname
            with contextlib.suppress(OSError), open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4000))
                parts.append(f.read().decode(errors="replace"))
        return "\n".join(p for p in parts if p)

    # --- teardown -----------------------------------------------------------------------
    async def teardown(self) -> None:
        st = self.st
        if "tag" not in st:
            return
        tag = st["tag"]
        recs = list(st.get("nodes", {}).values())
        ns_names = {r["ns"] for r in recs}
        # Namespaces of this mesh that a crash left unrecorded cannot exist (recorded first),
        # but a prefix scan costs nothing and also catches a half-written state.
        ns_names |= {n for n in namespaces.existing() if n.startswith(f"mb-{tag}-")}
        in_ns = namespaces.pids_by_ns(ns_names)
        targets: list[tuple[int, Optional[int]]] = [
            (int(r["pid"]), r.get("start_time")) for r in recs if r.get("pid")
        ]
        targets += [(p, None) for pids in in_ns.values() for p in pids]
        tracker = st.get("tracker") or {}
        if tracker.get("pid"):
            targets.append((int(tracker["pid"]), tracker.get("start_time")))
        survivors = await processes.kill(targets)
        for rule in st.get("rules", []):
            await firewall.delete_rule(rule)
        chains_left = await firewall.remove_chains(firewall.partition_chain(tag))
        veths = [r["veth"] for r in recs]
        await bridge.delete_links(veths)
        await namespaces.delete(sorted(ns_names))
        await bridge.delete_links([st["bridge"]])
        await _wait_links_gone([*veths, st["bridge"]], 10.0)
        # what is still there stays in state, so the next `down` finds it again
        ns_left = namespaces.existing() & ns_names
        links_left = [n for n in [*veths, st["bridge"]] if bridge.exists(n)]
        if survivors or chains_left or ns_left or links_left:
            st["nodes"] = {name: r for name, r in st.get("nodes", {}).items()
                           if r["ns"] in ns_left or r["veth"] in links_left
                           or r.get("pid") in survivors}
            self.ctx.save()
            what = [f"processes {', '.join(map(str, survivors))}" if survivors else "",
                    f"iptables chains {', '.join(chains_left)}" if chains_left else "",
                    f"namespaces {', '.join(sorted(ns_left))}" if ns_left else "",
                    f"links {', '.join(links_left)}" if links_left else ""]
            raise DeployError("netns: could not remove " + "; ".join(w for w in what if w)
                               + " (kept in state: run `meshbed down` again)")
        root = Path(st.get("data_root") or self._data_root())
        if root.exists():
            await asyncio.to_thread(shutil.rmtree, root, True)
        st.clear()
        self.ctx.save()


async def _wait_links_gone(names: Sequence[str], timeout: float) -> None:
    """The kernel removes a veth's peer asynchronously after its namespace goes."""
    deadline = time.monotonic() + timeout
    while any(bridge.exists(n) for n in names) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if any(bridge.exists(n) for n in names):
        await bridge.delete_links(names)


def _write_whitelist(folder: Path, infohashes: Sequence[str]) -> None:
    """opentracker reads it from its chroot (``-d``) as user nobody."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "whitelist").write_text("".join(f"{h}\n" for h in infohashes))
    folder.chmod(0o755)
    (folder / "whitelist").chmod(0o644)


async def _wait_answers(url: str, timeout: float, pid: int) -> None:
    """Any HTTP answer (opentracker's /stats says 403 to strangers) means it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await asyncio.to_thread(_get_status, url)
            return
        except OSError as exc:
            if time.monotonic() > deadline or not processes.alive(pid, None):
                raise DeployError(f"netns: opentracker did not answer at {url}: {exc}") from None
        await asyncio.sleep(0.1)


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _subnets_of_other_meshes(home: Path, mesh: str) -> list[str]:
    """Subnets recorded by other meshes' netns sections (they may not be up yet)."""
    found: list[str] = []
    for state_file in home.glob("*/state.json"):
        if state_file.parent.name == mesh:
            continue
        try:
            data = json.loads(state_file.read_text())
            subnet = data.get("backends", {}).get("netns", {}).get("subnet")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(subnet, str):
            found.append(subnet)
    return found
