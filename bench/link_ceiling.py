"""How much file data a tbf-shaped access link carries: the practical bound of a netns swarm.

The fluid lower bound (max(F/u_s, F/d_min, N·F/(u_s+Σu_i))) counts raw link rates, but
tbf shapes whole frames: TCP/IP and Ethernet headers take their share, and a node that
downloads while it uploads also sends the ACKs of its download up its own link. This
measures both with iperf3 between namespaces on the netns backend's plumbing (same bridge,
veths and tbf parameters as `bench/swarm_vs_bittorrent.py`):

- ``alone``: one TCP flow out of a 10 mbit-up leecher, nothing else on its links;
- ``loaded``: the same while the leecher downloads 12.5 mbit from two other hosts at once
  (a 1+16 leecher's mean download rate: every leecher of a swarm uploads and downloads);
- ``seeder``: one flow out of the 40 mbit-up seeder.

Then it prints the practical bound of the 1+16 64 MiB case (the raw bound with the
measured goodputs in place of the raw rates) and the efficiency it allows.

    sudo python3 bench/link_ceiling.py [--seconds 10]

Root only; every namespace and process is removed at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._netlab import Lab, install_sigterm_as_interrupt  # noqa: E402
from orchestrator.model import Link  # noqa: E402

MBIT = 1_000_000
SEEDER_UP, LEECHER_UP, LEECHER_DOWN = 40 * MBIT, 10 * MBIT, 50 * MBIT
PORT = 5201


async def _run(argv: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}...: {err.decode().strip() or out.decode()[-300:]}")
    return out.decode()


async def flow(lab: Lab, src: str, dst: str, port: int, seconds: float,
               rate: Optional[float] = None) -> float:
    """Goodput (bits/s of payload the receiver got) of one iperf3 TCP flow src -> dst."""
    lab.spawn(dst, ["iperf3", "-s", "-1", "-p", str(port)], log=f"iperf3-{port}.log")
    for _ in range(100):  # the server listens within a moment
        listening = await _run(["ip", "netns", "exec", lab.hosts[dst].ns, "ss", "-Hltn",
                                f"sport = :{port}"])
        if listening.strip():
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"iperf3 server in {dst} never listened")
    out = json.loads(await _run(["ip", "netns", "exec", lab.hosts[src].ns, "iperf3", "-c",
                                 lab.hosts[dst].ip, "-p", str(port), "-t", str(seconds),
                                 "-O", "1", "-J", *(["-b", str(int(rate))] if rate else [])]))
    if "error" in out:
        raise RuntimeError(f"iperf3 {src} -> {dst}: {out['error']}")
    return float(out["end"]["sum_received"]["bits_per_second"])


def practical_bound(n: int, size: int, us: float, ul: float) -> float:
    return n * size * 8 / (us + n * ul)


async def amain(seconds: float) -> int:
    lab = Lab("bench-ceiling")
    hosts = [("seed", "seeders", Link(up_bps=SEEDER_UP, down_bps=LEECHER_DOWN))]
    hosts += [(f"l{i}", "leechers", Link(up_bps=LEECHER_UP, down_bps=LEECHER_DOWN)) for i in range(4)]
    try:
        await lab.open(hosts)
        alone = await flow(lab, "l0", "l1", PORT, seconds)
        seeder = await flow(lab, "seed", "l1", PORT + 1, seconds)
        # l0 uploads to l1 while it downloads at a swarm leecher's mean rate,
        # (u_s + N u_l) / N = 12.5 mbit for 1+16, from two hosts
        loaded_up, down2, down3 = await asyncio.gather(
            flow(lab, "l0", "l1", PORT + 2, seconds),
            flow(lab, "l2", "l0", PORT + 3, seconds, rate=6.25 * MBIT),
            flow(lab, "l3", "l0", PORT + 4, seconds, rate=6.25 * MBIT))
    finally:
        await lab.close()
    n, size = 16, 64 << 20
    raw = practical_bound(n, size, SEEDER_UP, LEECHER_UP)
    prac = practical_bound(n, size, seeder, loaded_up)
    print(f"leecher up, alone:      {alone / MBIT:6.2f} mbit  ({alone / LEECHER_UP:.3f} of 10 mbit)")
    print(f"leecher up, downloading {(down2 + down3) / MBIT:5.2f} mbit: {loaded_up / MBIT:6.2f} mbit"
          f"  ({loaded_up / LEECHER_UP:.3f})")
    print(f"seeder up:              {seeder / MBIT:6.2f} mbit  ({seeder / SEEDER_UP:.3f} of 40 mbit)")
    print(f"1+16, 64 MiB: raw bound {raw:.2f} s; with these goodputs {prac:.2f} s:"
          f" efficiency at most {raw / prac:.3f}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each iperf3 flow")
    args = ap.parse_args(argv)
    install_sigterm_as_interrupt()
    try:
        return asyncio.run(amain(args.seconds))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
