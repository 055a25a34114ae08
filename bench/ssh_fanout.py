"""Seconds to deploy and start agents on N SSH devices, and the ratio against 1 device.

Each N gets a fresh lab (tests/sshlab.py): N network namespaces, each with its own real
sshd and its own data dir, so every device is *fresh* (peer.pyz is pushed to each one).
Timed, all devices in parallel as `meshbed up` does it, in three phases:
connect (SSH handshake and auth), copy (probe + peer.pyz pushed by SFTP) and agent start
(dirs, token, detached start, ready file read back, control port reachable). Lab build and
teardown are not timed. ``--kinds host,pi`` runs the counts once per device kind, so the
emulated Raspberry Pis (Debian 11 arm64 under qemu-user: every agent start pays emulation)
are counted apart from devices that run this host's own system.

    sudo python3 bench/ssh_fanout.py -n 1,8,24 --kinds host,pi

Goal: 24 devices in under 2x the time of 1 device.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.backends.base import MeshContext  # noqa: E402
from orchestrator.backends.ssh import SshBackend  # noqa: E402
from orchestrator.backends.ssh.connection import target_for  # noqa: E402
from orchestrator.model import Link, Node, Topology  # noqa: E402
from tests.sshlab import KINDS, SshLab, stand_in_skip_reason  # noqa: E402


@dataclass
class Run:
    connect: float  # every device's SSH connection open
    copy: float  # then: every device probed and peer.pyz pushed
    launched: float  # then: every agent's detached start returned (orchestrator-side fan-out)
    ready: float  # from the start: every agent's ready file read back, control port reachable
    pushed: int
    agent_cpu: float  # CPU seconds the agents used to start (they share this host's cores)
    own_cpu: float  # CPU seconds of this process (asyncssh, polling) during the deploy


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / tick


async def deploy_once(lab: SshLab, mesh: str) -> Run:
    inventory = lab.inventory()
    nodes = tuple(
        Node(name=f"lab-{i}", group="lab", index=i, backend="ssh", link=Link(), device=d.name)
        for i, d in enumerate(inventory.devices)
    )
    topo = Topology(name=mesh, source=None, backend="ssh", nodes=nodes, inventory=inventory)
    ctx = MeshContext(
        mesh=mesh, token=secrets.token_hex(16), state_dir=Path(tempfile.mkdtemp()), state={},
        save=lambda: None, topology=topo, say=lambda _: None,
    )
    backend = SshBackend(ctx)
    await backend._pyz_file()  # building peer.pyz locally is not what this measures
    started = time.monotonic()
    cpu0 = time.process_time()
    try:
        await asyncio.gather(*(backend.pool.get(target_for(d, inventory)) for d in inventory.devices))
        connected = time.monotonic()
        await backend.prepare(nodes)  # reuses the pool's open connections
        copied = time.monotonic()
        await asyncio.gather(*(backend.deploy(n) for n in nodes))
        ready = time.monotonic() - started
        own = time.process_time() - cpu0
        launched = max(backend.launched_at.values()) - copied
        pushed = sum(1 for s in backend.sessions.values() if s.pushed)
        cpu = _cpu_seconds(lab.agent_pids())
    finally:
        await backend.teardown()
    return Run(connected - started, copied - connected, launched, ready, pushed, cpu, own)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", default="1,8,24", help="device counts, comma separated (1,8,24)")
    ap.add_argument("--kinds", default="host", help="device kinds of tests/sshlab.py, comma separated: "
                    "host, pi, router, laptop (host)")
    ap.add_argument("--repeat", type=int, default=1, help="fresh labs per count; median taken (1)")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        print(f"ssh_fanout: unknown kind {unknown[0]!r} (known: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    reason = stand_in_skip_reason(tuple(kinds))
    if reason:
        print(f"ssh_fanout: cannot build the lab: {reason}", file=sys.stderr)
        return 2
    counts = [int(x) for x in args.n.split(",") if x.strip()]
    print(f"{'kind':>6} {'devices':>7} {'connect s':>9} {'copy s':>7} {'start s':>7} {'ready s':>8} {'pushed':>6}"
          f" {'agent cpu s':>11} {'own cpu s':>9} {'ratio ready':>11}")
    for kind in kinds:
        results: dict[int, Run] = {}
        for n in counts:
            runs = []
            for r in range(max(1, args.repeat)):
                with SshLab(n, private_dirs=True, kinds=(kind,) * n) as lab:
                    runs.append(asyncio.run(deploy_once(lab, f"fanout-{kind}-{n}-{r}")))
            runs.sort(key=lambda x: x.ready)
            results[n] = runs[len(runs) // 2]
            base = results[min(results)]
            res = results[n]
            print(f"{kind:>6} {n:>7} {res.connect:>9.2f} {res.copy:>7.2f} {res.launched:>7.2f} {res.ready:>8.2f}"
                  f" {res.pushed:>6} {res.agent_cpu:>11.2f} {res.own_cpu:>9.2f} {res.ready / base.ready:>11.2f}",
                  flush=True)
        if 1 in results and max(counts) > 1:
            big, one = results[max(counts)], results[1]
            ratio = big.ready / one.ready
            print(f"ratio ready ({kind}): {max(counts)} devices / 1 device = {ratio:.2f} "
                  f"(goal < 2: {'met' if ratio < 2 else 'NOT met'}); of the {big.ready:.2f} s: connect "
                  f"{big.connect:.2f}, copy {big.copy:.2f}, agent start-up {big.ready - big.connect - big.copy:.2f}")
            print(f"(the lab's devices share this host's {os.cpu_count()} cores: {max(counts)} {kind} agents "
                  f"needed {big.agent_cpu:.2f} CPU s to start; real devices each bring their own CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
