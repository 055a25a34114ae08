"""Kernel link shaping with `tc`, shared by the netns and docker backends.

Up = egress of the node-side interface; down = egress of the bridge/host-side interface.
Every command runs as ``prefix + ["tc", ...]`` so the caller picks the namespace
(``["ip", "netns", "exec", NS]`` or ``["nsenter", "-t", PID, "-n"]``).

Rates are capped with a token bucket filter (tbf). Its burst and queue are chosen so a
TCP stream gets >= 95 % of the configured rate as payload: the burst holds at least one
64 KiB GSO super-packet (veths segment late) and ~4 ms worth of tokens, the queue ~50 ms.
Delay/jitter/loss need netem, which some kernels (this one) lack: `netem()` then raises
NotImplementedError and the caller falls back to the agent's own emulation.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from typing import Any, Optional

from orchestrator.backends.base import Description

# Linux names a missing qdisc/filter in several ways; deleting one that is not there is fine.
_ABSENT = (
    "No such file or directory",
    "Cannot delete qdisc with handle of zero",
    "Cannot find device",
    "Invalid handle",
    "Error: Qdisc not found",
)
GSO_MAX = 65536 + 1514  # one TSO/GSO super-packet plus a frame
TBF_LATENCY_MS = 50  # queue length as time at the shaped rate
_RUN_TIMEOUT = 30.0


async def run(
    cmd: Sequence[str], *, check: bool = True, input: Optional[bytes] = None
) -> str:
    """Run ``cmd`` (no shell); return stdout. RuntimeError with stderr when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), _RUN_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{' '.join(cmd)}: timed out after {_RUN_TIMEOUT:.0f}s") from None
    if check and proc.returncode != 0:
        msg = err.decode(errors="replace").strip() or f"exit {proc.returncode}"
        raise RuntimeError(f"{' '.join(cmd)}: {msg}")
    return out.decode(errors="replace")


def tbf_params(rate_bps: int) -> tuple[int, int]:
    """(burst bytes, queue limit bytes) for a tbf at ``rate_bps``."""
    rate_bytes = max(1, rate_bps // 8)
    burst = max(GSO_MAX, rate_bytes * 4 // 1000)
    limit = burst + rate_bytes * TBF_LATENCY_MS // 1000
    return burst, limit


def tbf_args(dev: str, rate_bps: int, parent: str = "root") -> list[str]:
    burst, limit = tbf_params(rate_bps)
    where = ["root"] if parent == "root" else ["parent", parent]
    return [
        "tc", "qdisc", "replace", "dev", dev, *where, "handle", _tbf_handle(parent),
        "tbf", "rate", f"{int(rate_bps)}bit", "burst", str(burst), "limit", str(limit),
    ]


def _tbf_handle(parent: str) -> str:
    return "1:" if parent == "root" else "2:"


def _absent(exc: RuntimeError) -> bool:
    return any(s in str(exc) for s in _ABSENT)


async def clear(dev: str, *, prefix: Sequence[str] = ()) -> None:
    """Remove any root qdisc from ``dev`` (back to the default); fine when none is there."""
    try:
        await run([*prefix, "tc", "qdisc", "del", "dev", dev, "root"])
    except RuntimeError as exc:
        if not _absent(exc):
            raise


async def qdiscs(dev: str, *, prefix: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The qdiscs on ``dev`` as `tc -j` reports them."""
    out = await run([*prefix, "tc", "-j", "qdisc", "show", "dev", dev])
    data = json.loads(out or "[]")
    return data if isinstance(data, list) else []


async def shape_egress(
    dev: str, rate_bps: Optional[int], *, prefix: Sequence[str] = ()
) -> None:
    """Cap what leaves ``dev`` at ``rate_bps`` (tbf); None removes the cap.

    When a netem qdisc sits at the root (kernels that have it), the tbf goes under it so
    the delay stays in force.
    """
    current = await qdiscs(dev, prefix=prefix)
    netem_root = any(q.get("kind") == "netem" and q.get("root") for q in current)
    if rate_bps is None:
        if netem_root:
            try:
                await run([*prefix, "tc", "qdisc", "del", "dev", dev, "parent", "1:1"])
            except RuntimeError as exc:
                if not _absent(exc):
                    raise
        else:
            await clear(dev, prefix=prefix)
        return
    if rate_bps <= 0:
        raise ValueError(f"rate must be positive, got {rate_bps}")
    await run([*prefix, *tbf_args(dev, rate_bps, "1:1" if netem_root else "root")])


def netem_args(
    dev: str, latency_ms: float, jitter_ms: float, loss: float
) -> list[str]:
    args = ["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "netem",
            "delay", f"{latency_ms:g}ms"]
    if jitter_ms:
        args += [f"{jitter_ms:g}ms"]
    if loss:
        args += ["loss", f"{loss * 100:g}%"]
    # netem's default queue (1000 packets) is too short behind a fast link with delay.
    args += ["limit", "10000"]
    return args


async def netem(
    dev: str,
    latency_ms: float,
    jitter_ms: float,
    loss: float,
    *,
    prefix: Sequence[str] = (),
) -> None:
    """Add delay/jitter/loss on the egress of ``dev``, keeping any tbf rate cap (as a child).

    All zero removes the netem part. NotImplementedError when the kernel has no netem.
    """
    if not probe()["netem"]:
        raise NotImplementedError("this kernel has no netem qdisc (sch_netem)")
    current = await qdiscs(dev, prefix=prefix)
    rate: Optional[int] = None
    for q in current:
        if q.get("kind") == "tbf":
            rate = _tbf_rate(q)
    if not (latency_ms or jitter_ms or loss):
        await clear(dev, prefix=prefix)
        if rate:
            await shape_egress(dev, rate, prefix=prefix)
        return
    await clear(dev, prefix=prefix)
    await run([*prefix, *netem_args(dev, latency_ms, jitter_ms, loss)])
    if rate:
        await run([*prefix, *tbf_args(dev, rate, "1:1")])


def _tbf_rate(q: dict[str, Any]) -> Optional[int]:
    opts = q.get("options") or {}
    rate = opts.get("rate")
    if isinstance(rate, (int, float)) and rate > 0:
        return int(rate) * 8  # tc -j reports bytes/s
    return None


# --- probing ------------------------------------------------------------------------------


def _try(cmd: Sequence[str]) -> bool:
    try:
        res = subprocess.run(
            list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


@functools.lru_cache(maxsize=1)
def probe() -> dict[str, bool]:
    """What kernel shaping works here, found by trying it in a throwaway namespace.

    Keys: root, tc, tbf, htb, netem, ifb, iptables. Cached for the process.
    """
    found = {k: False for k in ("root", "tc", "tbf", "htb", "netem", "ifb", "iptables")}
    found["root"] = os.geteuid() == 0
    found["tc"] = shutil.which("tc") is not None
    ip = shutil.which("ip")
    if not (found["root"] and found["tc"] and ip):
        return found
    found["iptables"] = shutil.which("iptables") is not None and _try(
        ["iptables", "-w", "5", "-S", "FORWARD"]
    )
    ns = f"mbprobe-{os.getpid() % 100000}-{uuid.uuid4().hex[:4]}"
    if not _try(["ip", "netns", "add", ns]):
        return found
    try:
        inside = ["ip", "netns", "exec", ns]
        if not _try(["ip", "-n", ns, "link", "add", "pa", "type", "veth", "peer", "name", "pb"]):
            return found
        _try(["ip", "-n", ns, "link", "set", "pa", "up"])
        qd = [*inside, "tc", "qdisc", "replace", "dev", "pa", "root"]
        found["tbf"] = _try([*qd, "tbf", "rate", "1mbit", "burst", "32kb", "latency", "50ms"])
        found["htb"] = _try([*qd, "handle", "1:", "htb", "default", "1"])
        found["netem"] = _try([*qd, "netem", "delay", "1ms"])
        found["ifb"] = _try(["ip", "-n", ns, "link", "add", "pifb", "type", "ifb"])
    finally:
        _try(["ip", "netns", "del", ns])
    return found


async def probe_async() -> dict[str, bool]:
    """``probe()`` off the event loop (it runs ~8 subprocesses the first time)."""
    return await asyncio.to_thread(probe)


def describe_kernel_shaping(partition: bool = True) -> Description:
    """What a backend shaping in this host's kernel (netns, docker) gets here, for `doctor`."""
    found = probe()
    rate = "kernel (tbf)" if found["root"] and found["tbf"] else "agent"
    delay = "kernel (netem)" if found["root"] and found["netem"] else "agent"
    part = "kernel (iptables)" if partition and found["iptables"] else "agent blocklists"
    return Description(rate=rate, delay=delay, partition=part)
