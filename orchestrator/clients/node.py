"""The process of a client node: the real client beside a translator that speaks the agent's
control API and /metrics, so the orchestrator, the report and Prometheus treat the node like
any other (docs/clients.md)::

    python -m orchestrator.clients.node CLIENT run --node N --data-dir D --api IP:7000 \\
        --listen IP:6881 --token-file F [...]     (the arguments of `meshbed-peer run`)

It starts the client (which resumes its own state after a kill), adds the torrents the
control API is given, polls the client twice a second and answers GET /status and
GET /metrics from that poll. ``verified`` is the SHA-256 of the file on disk, compared with
the one the orchestrator sent. Link shaping and partitions happen in the kernel; the
control API's /link and /block are recorded only (validate keeps client nodes on backends
that shape in the kernel).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Optional

from orchestrator.clients import adapter_class
from orchestrator.clients.base import ClientAdapter, ClientError, ClientTorrent, NodeSetup
from peer.cli import build_parser
from peer.control import ControlServer
from peer.metrics import AgentMetrics, ContentSnapshot, new_registry
from peer.shaping import LinkEmulator

log = logging.getLogger("meshbed.client")
POLL_INTERVAL = 0.5
RECORDS = "client-node.json"  # what this node was asked to seed/fetch (kept across restarts)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def by_host(per_conn: dict[str, int]) -> dict[str, int]:
    """Bytes per remote address (the report names the node behind it)."""
    out: dict[str, int] = {}
    for addr, n in per_conn.items():
        host = addr.rpartition(":")[0].strip("[]") or addr
        out[host] = out.get(host, 0) + n
    return out


class ClientAgent:
    """What peer.control.ControlServer needs (its AgentLike), backed by a real client."""

    def __init__(self, client: ClientAdapter, data_dir: Path, node: str, group: str) -> None:
        self.client = client
        self.data_dir = data_dir
        self.node, self.group = node, group
        self.started = time.monotonic()
        self.records: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, ClientTorrent] = {}
        self.verifying: set[str] = set()
        # per torrent, per connection ("ip:port"): the most the client reported for it, so
        # bytes of closed connections still count (clients report live connections only)
        self.conn_from: dict[str, dict[str, int]] = {}
        self.conn_to: dict[str, dict[str, int]] = {}
        path = data_dir / RECORDS
        if path.exists():
            self.records = json.loads(path.read_text())

    def _save(self) -> None:
        path = self.data_dir / RECORDS
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.records))
        os.replace(tmp, path)

    async def _add(self, meta: Any, seed: bool, sha256: Optional[str]) -> None:
        ih = meta.hexhash
        if ih not in self.records:
            self.records[ih] = {
                "name": meta.name, "size": meta.total_size, "pieces": meta.num_pieces,
                "piece_length": meta.piece_length, "sha256": sha256, "seed": seed,
                "started_at": time.time(), "completed_at": None, "verified": None,
            }
            self._save()
        keep_torrent(self.data_dir, meta)
        await asyncio.to_thread(self.client.add, meta.to_torrent_bytes(), ih)

    async def share(self, meta: Any, payload: Path) -> None:
        dest = self.client.setup.downloads / meta.name
        if payload.resolve() != dest.resolve():  # the client seeds from its downloads folder
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            try:
                os.link(payload, dest)
            except OSError:
                dest.write_bytes(payload.read_bytes())
        sha = await asyncio.to_thread(sha256_of, dest)
        await self._add(meta, True, sha)
        rec = self.records[meta.hexhash]
        rec.update(completed_at=rec["completed_at"] or time.time(), verified=True)
        self._save()

    async def fetch(self, meta: Any, peers: list[tuple[str, int]], *, pex: bool = True,
                    upload: bool = True, sha256: Optional[str] = None) -> None:
        await self._add(meta, False, sha256)
        if peers and self.client.accepts_peers:
            await asyncio.to_thread(self.client.add_peers, meta.hexhash, peers)

    async def fetch_magnet(self, uri: str, peers: list[tuple[str, int]], *, pex: bool = True,
                           upload: bool = True, sha256: Optional[str] = None) -> str:
        raise ValueError("client nodes take a metainfo, not a magnet link")

    def add_peers(self, peers: list[tuple[str, int]], infohash: Optional[str] = None) -> int:
        if not self.client.accepts_peers:
            return 0
        hashes = [infohash] if infohash else list(self.records)
        # from the control thread's loop call: a short blocking call on loopback
        return sum(self.client.add_peers(ih, peers) for ih in hashes if ih in self.records)

    async def poll(self) -> None:
        try:
            seen = await asyncio.to_thread(self.client.torrents)
        except (OSError, ClientError, ValueError) as exc:
            log.warning("client status: %s", exc)
            return
        self.seen = seen
        for ih, t in seen.items():
            for got, acc in ((t.bytes_from, self.conn_from), (t.bytes_to, self.conn_to)):
                if got is not None:
                    mine = acc.setdefault(ih, {})
                    for addr, n in got.items():
                        mine[addr] = max(n, mine.get(addr, 0))
            rec = self.records.get(ih)
            if rec is None or not t.complete or rec["verified"] is not None or ih in self.verifying:
                continue
            self.verifying.add(ih)
            asyncio.get_running_loop().create_task(self._verify(ih, time.time()))

    async def _verify(self, ih: str, done_at: float) -> None:
        rec = self.records[ih]
        try:
            digest = await asyncio.to_thread(sha256_of, self.client.setup.downloads / rec["name"])
        except OSError as exc:
            log.warning("cannot read %s: %s", rec["name"], exc)
            self.verifying.discard(ih)
            return
        rec["completed_at"] = rec["completed_at"] or done_at
        rec["verified"] = rec["sha256"] is None or digest == rec["sha256"]
        rec["sha256"] = rec["sha256"] or digest
        self._save()
        self.verifying.discard(ih)

    def _torrent(self, ih: str, rec: dict[str, Any]) -> dict[str, Any]:
        t = self.seen.get(ih)
        complete = rec["verified"] is not None
        return {
            "name": rec["name"], "size": rec["size"], "piece_length": rec["piece_length"],
            "pieces": rec["pieces"], "have": t.have if t else 0, "complete": complete,
            "verified": rec["verified"], "sha256": rec["sha256"], "seeding": complete,
            "upload": True, "started_at": rec["started_at"], "completed_at": rec["completed_at"],
            "seconds": (rec["completed_at"] - rec["started_at"]) if rec["completed_at"] else None,
            "downloaded": t.downloaded if t else 0, "uploaded": t.uploaded if t else 0,
            "redownloaded": None, "wasted": None, "resumed_pieces": None,
            "bytes_from": by_host(self.conn_from[ih]) if ih in self.conn_from else None,
            "bytes_to": by_host(self.conn_to[ih]) if ih in self.conn_to else None,
            "rejected": {}, "peers": t.peers if t else 0, "rarest_copies": None,
            "rate_up": t.rate_up if t else 0.0, "rate_down": t.rate_down if t else 0.0,
            "checking": t.checking if t else False,
        }

    def status(self) -> dict[str, Any]:
        torrents = {ih: self._torrent(ih, rec) for ih, rec in self.records.items()}
        return {
            "node": self.node, "group": self.group, "client": self.client.name,
            "wire": f"{self.client.setup.ip}:{self.client.setup.wire_port}",
            "uptime": round(time.monotonic() - self.started, 3),
            "rate_up": sum(t["rate_up"] for t in torrents.values()),
            "rate_down": sum(t["rate_down"] for t in torrents.values()),
            "bytes_sent": sum(t["uploaded"] for t in torrents.values()),
            "bytes_received": sum(t["downloaded"] for t in torrents.values()),
            "torrents": torrents,
        }

    def snapshots(self) -> list[ContentSnapshot]:
        out = []
        for ih, rec in list(self.records.items()):
            t = self.seen.get(ih)
            out.append(ContentSnapshot(
                content=rec["name"], bytes_sent=t.uploaded if t else 0,
                bytes_received=t.downloaded if t else 0, pieces_held=t.have if t else 0,
                pieces_total=rec["pieces"], connected_peers=t.peers if t else 0,
                rarest_copies=None, completed_at=rec["completed_at"]))
        return out


def free_port(ip: str) -> int:
    """A TCP port free on ``ip`` now (ssh devices pass port 0: the client needs a number)."""
    with socket.socket() as s:
        s.bind((ip if ip not in ("", "0.0.0.0") else "", 0))
        return int(s.getsockname()[1])


async def run_node(client_name: str, args: Any, token: Optional[str]) -> int:
    data_dir: Path = args.data_dir
    wire_port = args.listen[1] or free_port(args.listen[0])
    setup = NodeSetup(ip=args.listen[0], wire_port=wire_port, home=data_dir / "client",
                      downloads=data_dir / "downloads", log=data_dir / "client.log")
    setup.home.mkdir(parents=True, exist_ok=True)
    setup.downloads.mkdir(parents=True, exist_ok=True)
    client = adapter_class(client_name)(setup)
    try:
        await asyncio.to_thread(client.start)
    except ClientError as exc:  # the backend shows our log: put the client's in it
        tail = setup.log.read_bytes()[-3000:].decode(errors="replace") if setup.log.exists() else ""
        log.error("%s\n--- %s ---\n%s", exc, setup.log.name, tail)
        return 1
    agent = ClientAgent(client, data_dir, args.node, args.group)
    for ih in list(agent.records):  # a client that lost a torrent gets it again
        torrent = data_dir / "torrents" / f"{ih}.torrent"
        if torrent.exists():
            await asyncio.to_thread(client.add, torrent.read_bytes(), ih)
    registry = new_registry()
    AgentMetrics(registry, node=args.node, group=args.group).set_source(agent.snapshots)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    control = ControlServer(agent, LinkEmulator(), registry, data_dir=data_dir, token=token,
                            host=args.api[0], port=args.api[1], on_stop=stop.set)
    control.start()
    if args.ready_file is not None:
        args.ready_file.write_text(json.dumps({"pid": os.getpid(), "api": control.api,
                                               "wire": f"{setup.ip}:{setup.wire_port}"}))
    log.info("%s node %s ready: api %s", client_name, args.node, control.api)
    try:
        while not stop.is_set():
            await agent.poll()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_INTERVAL)
    finally:
        await control.close()
        with contextlib.suppress(OSError, ClientError):
            await asyncio.to_thread(client.stop)
    return 0


def keep_torrent(data_dir: Path, meta: Any) -> None:
    path = data_dir / "torrents" / f"{meta.hexhash}.torrent"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(meta.to_torrent_bytes())


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m orchestrator.clients.node CLIENT run ARGS...", file=sys.stderr)
        return 2
    client_name, rest = argv[0], argv[1:]
    args = build_parser().parse_args(rest)
    # Our own process group, so a kill of the node (ssh: `kill -- -PGID`) takes the client
    # with it; a session leader (netns, setsid) already leads one.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    logging.basicConfig(level=logging.INFO, filename=args.log_file,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = args.token_file.read_text().strip() if args.token_file else os.environ.get(
        "MESHBED_TOKEN")
    return asyncio.run(run_node(client_name, args, token))


if __name__ == "__main__":
    sys.exit(main())
