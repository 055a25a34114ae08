"""Real BitTorrent clients as nodes on ssh devices (`client:` in a group; docs/clients.md).

A client node runs the client's Debian build installed on the device beside the translator
(``client-<sha>.pyz``, orchestrator/clients/shipping.py), started like the agent. A client
has no link emulation of its own, so everything of its links and partitions happens in the
device's kernel, which needs:

- root on the device, with ``tc`` and ``iptables`` (checked over ssh before anything is
  deployed, by `validate` and `up`: one FILE:LINE line naming the device, exit 2);
- the node alone on its device in the mesh (the device's interface is shaped as a whole;
  checked at load);
- partitions cut by device: a chain of DROP rules per mesh (``meshbed-<hash>``), jumped to
  from INPUT and OUTPUT, on every device of the mesh.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Optional

from devices import Profile, ProfileError, load_profile
from orchestrator.backends.ssh import options as group_options
from orchestrator.backends.ssh.connection import ConnectionPool, DeviceError, target_for
from orchestrator.backends.ssh.remote import q
from orchestrator.clients import ADAPTERS, MESHBED, client_of
from orchestrator.errors import InputError
from orchestrator.model import LinkEvent, Node, Topology

LINE = "client_line"  # node option: the line of the group's `client:` (errors point there)
DELAY_FIELDS = ("latency_ms", "jitter_ms", "loss")  # not in a device's kernel (no netem there)


def client_nodes(nodes: Sequence[Node], backend: str = "ssh") -> list[Node]:
    return [n for n in nodes if n.backend == backend and client_of(n.options) != MESHBED]


def check_alone(topology: Topology) -> None:
    """A client node must be the only node of the mesh on its device, one whose profile
    allows tc."""
    on: dict[str, list[str]] = defaultdict(list)
    for n in topology.nodes:
        if n.backend == "ssh":
            on[group_options.device_of(n.options)].append(n.name)
    for n in client_nodes(topology.nodes):
        device = group_options.device_of(n.options)
        if len(on[device]) > 1:
            raise InputError(
                f"group {n.group}: client node {n.name} shares device {device} with "
                f"{', '.join(x for x in on[device] if x != n.name)}; a client node needs a device "
                "of its own (its link is shaped on the device's interface)",
                topology.source, n.options.get(LINE))
        profile = _profile_of(topology, device)
        if profile is not None and not profile.tc:
            raise InputError(
                f"group {n.group}: device {device}'s profile {profile.name} does not allow tc; "
                "a client node's link is shaped in the device's kernel", topology.source,
                n.options.get(LINE))


def _profile_of(topology: Topology, device: str) -> Optional[Profile]:
    if topology.inventory is None:
        return None
    try:
        return load_profile(topology.inventory.get(device).profile)
    except (KeyError, ProfileError):
        return None  # the loader and `up` report those


def check_links(topology: Topology) -> None:
    """A client node's link on a device is its rates: latency, jitter and loss (which the
    agent emulates) would silently not apply, so they are refused, in the group's link and
    in `link:` events."""
    clients = {n.name: n for n in client_nodes(topology.nodes)}
    asked: list[tuple[Node, str]] = []
    for n in clients.values():
        asked += [(n, "its link") for f in DELAY_FIELDS if getattr(n.link, f)]
    for ev in topology.scenario:
        if isinstance(ev, LinkEvent):
            asked += [(clients[name], f"the link event at {ev.at:g}s") for name in ev.nodes
                      if name in clients for f in DELAY_FIELDS if getattr(ev.change, f)]
    if asked:
        n, where = asked[0]
        raise InputError(f"group {n.group}: {where} sets latency, jitter or loss for client node "
                         f"{n.name}; on ssh devices a client node's link is its rates only",
                         topology.source, n.options.get(LINE))


def probe_command(kinds: Sequence[str]) -> str:
    """Prints uid, the kernel tools there, and ``client=KIND`` for each of ``kinds`` installed."""
    parts = ['printf "uid=%s\\n" "$(id -u)"',
             "tc qdisc show dev lo >/dev/null 2>&1 && echo tool=tc",
             "iptables -w -S INPUT >/dev/null 2>&1 && echo tool=iptables"]
    parts += [f"{ADAPTERS[k].check_command()} && echo client={k}" for k in kinds]
    return "; ".join(parts + ["true"])


def device_problem(output: str, kind: Optional[str]) -> Optional[str]:
    """Why the device that printed ``output`` (probe_command) cannot run client ``kind`` (None:
    an agent node of a mesh with client nodes, which needs iptables for partitions)."""
    found = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    tools = {line[5:] for line in output.splitlines() if line.startswith("tool=")}
    clients = {line[7:] for line in output.splitlines() if line.startswith("client=")}
    if kind is not None and kind not in clients:
        return f"client {kind} is not installed (apt-get install {ADAPTERS[kind].package} there)"
    if found.get("uid") != "0":
        return ("client nodes need root on every device of the mesh (links and partitions "
                f"are set in its kernel); logged in as uid {found.get('uid') or '?'}")
    need = ["tc", "iptables"] if kind is not None else ["iptables"]
    missing = [t for t in need if t not in tools]
    if missing:
        return f"{' and '.join(missing)} unusable there (client nodes are shaped in the kernel)"
    return None


async def check_devices(topology: Topology, pool: ConnectionPool) -> None:
    """Ask every ssh device of a mesh with client nodes whether it can run them; InputError
    (FILE:LINE at the group's `client:`) for the first that cannot. A device that cannot be
    reached is skipped: `up` then reports it as for agents (`validate` only checks input)."""
    ssh_nodes = [n for n in topology.nodes if n.backend == "ssh"]
    clients = client_nodes(ssh_nodes)
    inventory = topology.inventory
    if not clients or inventory is None:
        return
    line = clients[0].options.get(LINE)
    by_device: dict[str, Optional[Node]] = {}  # device -> its client node (None: agents only)
    for n in ssh_nodes:
        device = group_options.device_of(n.options)
        if client_of(n.options) != MESHBED:
            by_device[device] = n
        else:
            by_device.setdefault(device, None)

    async def one(device: str, node: Optional[Node]) -> Optional[InputError]:
        kind = client_of(node.options) if node is not None else None
        try:
            conn = await pool.get(target_for(inventory.get(device), inventory))
            out = await conn.run(probe_command([kind] if kind else []), timeout=60)
        except DeviceError:
            return None
        problem = device_problem(out.stdout, kind)
        if problem is None:
            return None
        where = f"group {node.group}: " if node is not None else ""
        return InputError(f"{where}device {device}: {problem}", topology.source,
                          node.options.get(LINE) if node is not None else line)

    found = await asyncio.gather(*(one(d, n) for d, n in by_device.items()))
    for problem in found:
        if problem is not None:
            raise problem


def check_devices_now(topology: Topology) -> None:
    """`validate`: check_devices over fresh connections; unreachable devices are skipped."""
    if not client_nodes(topology.nodes):
        return

    async def go() -> None:
        pool = ConnectionPool(10.0)
        try:
            await check_devices(topology, pool)
        finally:
            await pool.close()

    asyncio.run(go())


# --- partitions ---------------------------------------------------------------------------
def chain_name(mesh: str) -> str:
    return "meshbed-" + hashlib.sha1(mesh.encode()).hexdigest()[:12]


def partition_command(chain: str, others: Sequence[str]) -> str:
    """The device drops everything to and from ``others`` (addresses), replacing what the
    chain held; the chain is jumped to first from INPUT and OUTPUT."""
    c = q(chain)
    parts = [f"iptables -w -N {c} 2>/dev/null || iptables -w -F {c}"]
    for hook in ("INPUT", "OUTPUT"):
        parts.append(f"iptables -w -C {hook} -j {c} 2>/dev/null || iptables -w -I {hook} -j {c}")
    for addr in others:
        parts.append(f"iptables -w -A {c} -s {q(addr)} -j DROP")
        parts.append(f"iptables -w -A {c} -d {q(addr)} -j DROP")
    return "set -e; " + "; ".join(parts)


def heal_command(chain: str) -> str:
    return f"iptables -w -F {q(chain)} 2>/dev/null; true"


def remove_chain_command(chain: str) -> str:
    c = q(chain)
    return (f"iptables -w -D INPUT -j {c} 2>/dev/null; iptables -w -D OUTPUT -j {c} 2>/dev/null; "
            f"iptables -w -F {c} 2>/dev/null; iptables -w -X {c} 2>/dev/null; true")


def device_sides(sides: Sequence[Sequence[str]], nodes: dict[str, dict[str, Any]]) -> dict[str, int]:
    """device -> the one side its nodes are on; DeployError-worthy ValueError when a device
    holds nodes of two sides (a cut by address cannot part them)."""
    out: dict[str, int] = {}
    for i, side in enumerate(sides):
        for name in side:
            entry = nodes.get(name)
            if not entry:
                continue
            device = entry["device"]
            if out.setdefault(device, i) != i:
                raise ValueError(f"device {device} holds nodes of two sides of the partition; "
                                 "with client nodes partitions are cut by device")
    return out
