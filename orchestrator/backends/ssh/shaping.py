"""Kernel rate shaping on a device, over its SSH connection (``tc``, root only).

Used only when the device's profile allows tc, we are root there, and the node is the only
node of the mesh on that device (a device's interface is shared by everything on it; per-
agent classification would miss connections the agent dials out from ephemeral ports).
Up = tbf on the egress of the device's interface; down = the interface's ingress redirected
to an ifb device with a tbf on it. Delay/jitter/loss stay with the agent (no netem needed).
The tbf parameters come from the shared ``orchestrator.backends.tc`` builders.

A device's interface has one root qdisc and one ingress qdisc, so one mesh at a time shapes
it: the first records itself in an owner file next to its dirs; a second mesh finding that
file naming another mesh while meshbed's qdiscs are live is refused kernel shaping (its
agents emulate the link) instead of overwriting them, and is told which mesh holds them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Optional

from orchestrator.backends import tc
from orchestrator.backends.ssh.remote import q


def ifb_name(mesh: str, node: str) -> str:
    return "mbi" + hashlib.sha1(f"{mesh}/{node}".encode()).hexdigest()[:10]


def iface_command(host: str) -> str:
    """Prints the interface carrying ``host`` (the address we reach the device at), else the
    default route's interface."""
    return (
        f"d=$(ip -o addr show to {q(host)} 2>/dev/null | awk '{{print $2; exit}}'); "
        "[ -z \"$d\" ] && d=$(ip -o route show default 2>/dev/null | "
        "awk '{for(i=1;i<NF;i++) if($i==\"dev\"){print $(i+1); exit}}'); echo \"$d\""
    )


def _line(args: list[str]) -> str:
    return " ".join(q(a) for a in args)


def apply_command(dev: str, ifb: str, up_bps: Optional[int], down_bps: Optional[int]) -> str:
    """Idempotent: replaces what is there; a None rate removes that direction's cap."""
    parts: list[str] = []
    if up_bps:
        parts.append(_line(tc.tbf_args(dev, up_bps)))
    else:
        parts.append(f"tc qdisc del dev {q(dev)} root 2>/dev/null || true")
    if down_bps:
        parts += [
            f"ip link show {q(ifb)} >/dev/null 2>&1 || ip link add {q(ifb)} type ifb",
            f"ip link set {q(ifb)} up",
            f"tc qdisc replace dev {q(dev)} handle ffff: ingress",
            f"tc filter replace dev {q(dev)} parent ffff: pref 1 protocol all u32 match u32 0 0 "
            f"action mirred egress redirect dev {q(ifb)}",
            _line(tc.tbf_args(ifb, down_bps)),
        ]
    else:
        parts.append(clear_ingress_command(dev, ifb))
    return "set -e; " + "; ".join(parts)


def clear_ingress_command(dev: str, ifb: str) -> str:
    return f"tc qdisc del dev {q(dev)} ingress 2>/dev/null || true; ip link del {q(ifb)} 2>/dev/null || true"


def clear_command(dev: str, ifb: str) -> str:
    return f"tc qdisc del dev {q(dev)} root 2>/dev/null || true; " + clear_ingress_command(dev, ifb)


OWNER_PREFIX = "owner="


def owner_path(install_dir: str, dev: str, host: str) -> str:
    """The file naming the mesh whose qdiscs are on ``dev`` of the device reached at ``host``
    (devices may share a filesystem, so the address is part of the name)."""
    return f"{install_dir}/meshbed/tc-{re.sub(r'[^A-Za-z0-9_.-]', '_', f'{dev}-{host}')}.owner"


def claim_command(dev: str, owner: str, mesh: str) -> str:
    """Records ``mesh`` as the owner of ``dev``'s shaping, or prints ``owner=OTHER`` when
    another mesh's tbf or ingress qdisc is live on it (a stale file, e.g. after a reboot
    cleared the qdiscs, is taken over)."""
    live = f"tc qdisc show dev {q(dev)} 2>/dev/null | grep -qE '^qdisc (tbf 1:|ingress ffff:)'"
    return (
        f"o=$(cat {q(owner)} 2>/dev/null); "
        f'if [ -n "$o" ] && [ "$o" != {q(mesh)} ] && {live}; then echo "{OWNER_PREFIX}$o"; exit 0; fi; '
        f"mkdir -p \"$(dirname {q(owner)})\" && printf %s {q(mesh)} > {q(owner)}"
    )


def other_owner(claim_output: str) -> Optional[str]:
    for line in claim_output.splitlines():
        if line.startswith(OWNER_PREFIX):
            return line[len(OWNER_PREFIX):].strip() or "?"
    return None


def release_command(owner: str, mesh: str) -> str:
    """Removes the owner file if it still names ``mesh``."""
    return f'[ "$(cat {q(owner)} 2>/dev/null)" = {q(mesh)} ] && rm -f {q(owner)}; true'
