"""The agent: one wire listener, several torrents, the shared access link and metrics.

``Agent`` is what the control API (peer/control.py) drives. Swarm logic lives in the pure
core (peer/core/); peer/torrent.py drives one torrent's core, peer/connection.py one
connection's socket. Hostile test modes are subclasses in peer/hostile.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import random
import string
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from prometheus_client import CollectorRegistry

from peer import extensions as ext
from peer import handshake, magnet, metadata, metainfo, mse, wire
from peer.choker import RateMeter
from peer.connection import CLIENT, NOT_READING, SEND_BUDGET, PeerConnection
from peer.core import MAX_VIOLATIONS, BanList, PeerState, SwarmCore
from peer.core.identity import MeshIdentity
from peer.core.swarm import MAX_QUEUED_REQUESTS
from peer.files import write_atomic
from peer.metainfo import Metainfo
from peer.metrics import PROTOCOL_ERROR_REASONS, AgentMetrics, ContentSnapshot
from peer.shaping import LinkEmulator
from peer.storage import METAINFO_FILE, PieceStore
from peer.torrent import Torrent

log = logging.getLogger("peer")

T = TypeVar("T")
HANDSHAKE_TIMEOUT = 10.0
MAGNET_TIMEOUT = 300.0  # a magnet's info dict must come within this
CONNECT_TIMEOUT = 10.0
READ_LIMIT = 512 << 10  # StreamReader stops reading a socket at 2x this: bounds what one peer can park in us
WRITE_HIGH_WATER = 2 << 20
STATE_FILE = ".meshbed-state.json"
HOSTILE_MODES = ("corrupt", "lie", "malformed", "stall")
__all__ = ["Agent", "HOSTILE_MODES", "MAX_VIOLATIONS"]
CHOKE_POLICIES = ("neediest", "reciprocate")
ACCESS_MODES = ("open", "mesh")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def make_peer_id(rng: random.Random) -> bytes:
    alphabet = string.ascii_letters + string.digits
    return b"-MB0100-" + "".join(rng.choice(alphabet) for _ in range(12)).encode()


BACKGROUND_NICE = 10  # the background thread's nice (its CPU share: ~1/10 of a normal thread's)


def _lower_priority() -> None:
    """Thread initializer: lower this thread's priority (Linux: nice is per thread; elsewhere
    it would be the whole process's, so leave it)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except OSError:
            pass


class Agent:
    def __init__(
        self, *, data_dir: Path, registry: CollectorRegistry, link: LinkEmulator,
        listen_host: str = "0.0.0.0", listen_port: int = 0, node: str = "", group: str = "",
        mesh: str = "", peer_id: Optional[bytes] = None, rng: Optional[random.Random] = None,
        hostile: Optional[str] = None, upload_slots: int = 8,
        choke_policy: str = "neediest", mesh_key: Optional[bytes] = None,
        access: str = "open",
    ) -> None:
        """``upload_slots``: regular unchoke slots per torrent (+1 optimistic).
        ``choke_policy``: "neediest" (serve the peers that lack the most: a cooperative
        swarm finishes together, measured best in bench/engine_swarm.py) or "reciprocate"
        (classic: fastest uploaders to us when leeching, round robin when seeding).
        ``mesh_key``: proves our node name to the mesh's agents and checks theirs (None:
        no name is proven either way). ``access``: "open" (anyone) or "mesh" (only proven
        members and the addresses we were given)."""
        if choke_policy not in CHOKE_POLICIES:
            raise ValueError(f"choke_policy must be one of {', '.join(CHOKE_POLICIES)}")
        if access not in ACCESS_MODES:
            raise ValueError(f"access must be one of {', '.join(ACCESS_MODES)}")
        if hostile is not None and hostile not in HOSTILE_MODES:
            raise ValueError(f"hostile must be one of {', '.join(HOSTILE_MODES)}")
        if peer_id is not None and len(peer_id) != 20:
            raise ValueError("peer_id must be 20 bytes")
        self.data_dir = Path(data_dir)
        self.link = link
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.node = node
        self.group = group
        self.mesh = mesh
        self.rng = rng or random.Random()
        self.peer_id = peer_id or make_peer_id(self.rng)
        self.hostile = hostile
        self.mesh_key = mesh_key or b""
        self.access = access
        self.own_ports: set[int] = set()  # our other listening ports (the control API)
        self.core_class: type[SwarmCore] = SwarmCore
        self.conn_class: type[PeerConnection] = PeerConnection
        if hostile is not None:  # test-only behaviour stays out of the ordinary classes
            from peer import hostile as hostile_mode

            self.core_class, self.conn_class = hostile_mode.classes(hostile)
        self.upload_slots = upload_slots
        self.choke_policy = choke_policy
        self.metrics = AgentMetrics(registry, node=node, group=group)
        self.metrics.set_source(self._snapshots)
        self.torrents: dict[bytes, Torrent] = {}
        self.aliases: dict[bytes, bytes] = {}  # a hybrid's v2 infohash[:20] -> info_hash
        self.needs_mse: set[tuple[str, int]] = set()  # dialed peers that refuse plaintext
        self.sysrng = mse.system_rng()  # MSE keys: never the (seedable) swarm rng
        self.magnets: dict[str, dict[str, Any]] = {}  # hex infohash -> metadata fetch state
        self.bans = BanList()  # shared by every torrent's core
        self.self_addrs: set[tuple[str, int]] = set()
        self.bootstrap: list[tuple[str, int]] = []  # add_peers() without an infohash
        self.rate_up = RateMeter()
        self.rate_down = RateMeter()
        self.started = time.monotonic()
        self._io = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="peer-io")
        self._background = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="peer-bg", initializer=_lower_priority)
        self._server: Optional[asyncio.AbstractServer] = None
        self._port = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeper: Optional[asyncio.Task[None]] = None
        self.closing = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_incoming, self.listen_host, self.listen_port, limit=READ_LIMIT, backlog=256
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self.link.on_block_change = self._on_block_change
        await self._reload()
        self._housekeeper = asyncio.ensure_future(self._housekeep())
        log.info("agent %s listening on %s:%d (%d torrents)", self.node or "-",
                 self.listen_host, self._port, len(self.torrents))

    @property
    def wire_port(self) -> int:
        return self._port

    async def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.link.on_block_change == self._on_block_change:
            self.link.on_block_change = None
        if self._server is not None:
            self._server.close()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        for t in list(self.torrents.values()):
            await t.close()
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
        for t in self.torrents.values():
            self.save_state(t)
        loop = asyncio.get_running_loop()
        self._background.shutdown(wait=False, cancel_futures=True)  # a check not begun: dropped
        await loop.run_in_executor(None, functools.partial(self._io.shutdown, wait=True))
        await loop.run_in_executor(None, functools.partial(self._background.shutdown, wait=True))
        for t in self.torrents.values():
            t.store.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_io(self, fn: Callable[..., T], *args: Any) -> T:
        """Disk and hashing work off the event loop (the store is thread-safe)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(fn, *args))

    async def run_background(self, fn: Callable[..., T], *args: Any) -> T:
        """Work no transfer waits on (the whole-file check after a completion) in a thread
        of lower CPU priority: on a host shared by many agents it must not slow the ones
        still downloading."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._background, functools.partial(fn, *args))

    # ------------------------------------------------------------------ torrents
    def _root(self, meta: Metainfo) -> Path:
        return self.data_dir / "torrents" / meta.hexhash

    async def _reload(self) -> None:
        base = self.data_dir / "torrents"
        if not base.is_dir():
            return
        for root in sorted(base.iterdir()):
            try:
                meta = metainfo.parse((root / METAINFO_FILE).read_bytes())
                state = _read_state(root)
                store = await self.run_io(PieceStore.open, root, meta)
            except (OSError, ValueError) as e:
                log.warning("cannot resume %s: %s", root, e)
                continue
            kind = state.get("kind") or ("share" if store.complete else "fetch")
            t = self._add_torrent(meta, store, kind=kind, pex=bool(state.get("pex", True)),
                                  upload=bool(state.get("upload", True)),
                                  sha256=state.get("sha256"),
                                  started_at=float(state.get("started_at") or time.time()))
            t.completed_at = state.get("completed_at")
            t.seconds = state.get("seconds")
            t.verified = state.get("verified")
            given = [_addr(p) for p in state.get("peers", [])]
            t.add_peers([a for a in given if a is not None], "given")
            log.info("resumed %s: %d/%d pieces", meta.name, store.have_count, meta.num_pieces)
            if store.complete and t.completed_at is None:
                t.resume_complete()

    def _add_torrent(self, meta: Metainfo, store: PieceStore, **kw: Any) -> Torrent:
        t = Torrent(self, meta, store, **kw)
        self.torrents[meta.info_hash] = t
        if meta.info_hash_v2 is not None and meta.info_hash_v2[:20] != meta.info_hash:
            self.aliases[meta.info_hash_v2[:20]] = meta.info_hash  # hybrid: v2 peers too
        t.start_announcing()
        return t

    def torrent_for(self, info_hash: bytes) -> Optional[Torrent]:
        """The torrent a handshake's infohash names (a hybrid's v2 hash included)."""
        return self.torrents.get(self.aliases.get(info_hash, info_hash))

    async def share(self, meta: Metainfo, payload: Path) -> None:
        old = self.torrents.get(meta.info_hash)
        if old is not None and old.complete:
            return
        if old is not None:
            await old.close()
            old.store.close()
            del self.torrents[meta.info_hash]
        store = await self.run_io(PieceStore.adopt, self._root(meta), meta, Path(payload))
        t = self._add_torrent(meta, store, kind="share", pex=True, upload=True, sha256=None,
                              started_at=time.time())
        t.completed_at = time.time()
        t.seconds = 0.0
        if old is not None:
            t.known = old.known
        self.save_state(t)

    async def fetch(
        self, meta: Metainfo, peers: list[tuple[str, int]], *, pex: bool = True,
        upload: bool = True, sha256: Optional[str] = None,
    ) -> None:
        t = self.torrents.get(meta.info_hash)
        if t is None:
            root = self._root(meta)
            state = _read_state(root)
            store = await self.run_io(PieceStore.open, root, meta)
            t = self._add_torrent(meta, store, kind="fetch", pex=pex, upload=upload,
                                  sha256=sha256 or state.get("sha256"),
                                  started_at=float(state.get("started_at") or time.time()))
            if store.complete:
                t.resume_complete()
        else:
            t.set_mode(pex, upload)
            if sha256:
                t.sha256 = sha256
        t.add_peers([(str(h), int(p)) for h, p in peers] + self.bootstrap, "given")
        self.save_state(t)
        if self._server is not None:
            t.dial_now()

    async def fetch_magnet(
        self, uri: str, peers: list[tuple[str, int]], *, pex: bool = True, upload: bool = True,
        sha256: Optional[str] = None,
    ) -> str:
        """Fetch the info dict a magnet names (BEP 9), then its content; returns the
        infohash at once (``status()["magnets"]`` shows the metadata step). Raises
        metadata.MetadataError for a bad magnet."""
        m = metadata.parse_magnet(uri)
        ih = m.info_hash or (m.info_hash_v2 or b"")[:20]
        hexhash = ih.hex()
        if self.torrent_for(ih) is not None or hexhash in self.magnets:
            return hexhash
        self.magnets[hexhash] = {"state": "metadata", "error": None, "name": m.name}
        self.spawn(self._magnet(m, hexhash, peers, pex=pex, upload=upload, sha256=sha256))
        return hexhash

    def _proven_hello(self, info_hash: bytes, remote_id: bytes) -> ext.ExtHandshake:
        """Our extended handshake with the proof of our node name toward ``remote_id``, as
        the core sends it (members of an ``access: mesh`` mesh serve only proven names)."""
        hs = self.ext_hello()
        proof = self.identity(info_hash).prove(self.peer_id, remote_id, hs.port)
        if proof is not None and hs.meshbed is not None:
            hs = dataclasses.replace(hs, meshbed=dict(hs.meshbed, proof=proof))
        return hs

    async def _magnet(self, m: metadata.Magnet, hexhash: str, peers: list[tuple[str, int]],
                      **kw: Any) -> None:
        ih = m.info_hash or (m.info_hash_v2 or b"")[:20]
        try:
            info = await magnet.fetch_info_dict(
                m, list(peers) + self.bootstrap, peer_id=self.peer_id, port=self.wire_port,
                client=CLIENT, rng=self.sysrng, needs_mse=self.needs_mse, is_self=self.is_self,
                timeout=MAGNET_TIMEOUT, hello_for=functools.partial(self._proven_hello, ih))
            meta = metainfo.from_info_bytes(info)
        except (magnet.MetadataUnavailable, ValueError) as e:
            log.warning("magnet %s: no metadata: %s", hexhash, e)
            self.magnets[hexhash] = {"state": "failed", "error": str(e), "name": m.name}
            return
        if m.trackers:  # outside the info dict: the infohash stays
            meta = dataclasses.replace(meta, trackers=tuple((u,) for u in m.trackers))
        log.info("magnet %s: metadata of %s (%d bytes)", hexhash, meta.name, len(info))
        await self.fetch(meta, list(peers) + list(m.peers), **kw)
        self.magnets.pop(hexhash, None)

    def add_peers(self, peers: list[tuple[str, int]], infohash: Optional[str] = None) -> int:
        """Known addresses for one torrent, or (infohash None) for every torrent, now and
        fetched later (bootstrap peers). Returns how many were new."""
        added = 0
        if infohash is None:
            for h, p in peers:
                if (str(h), int(p)) not in self.bootstrap:
                    self.bootstrap.append((str(h), int(p)))
        for t in self.torrents.values():
            if infohash is None or t.meta.hexhash == infohash.lower():
                n = t.add_peers([(str(h), int(p)) for h, p in peers], "given")
                if n and self._server is not None:
                    t.dial_now()
                added += n
        return added

    def save_state(self, t: Torrent) -> None:
        state = {
            "kind": t.kind, "pex": t.pex, "upload": t.upload, "sha256": t.sha256,
            "peers": [f"{h}:{p}" for (h, p), kp in t.known.items() if kp.source == "given"],
            "started_at": t.started_at, "completed_at": t.completed_at, "seconds": t.seconds,
            "verified": t.verified,
        }
        root = self._root(t.meta)
        try:
            write_atomic(root / STATE_FILE, [json.dumps(state).encode()], fsync=False)
        except OSError as e:
            log.warning("cannot save state of %s: %s", t.meta.name, e)

    # ------------------------------------------------------------------ peers
    def is_self(self, addr: tuple[str, int]) -> bool:
        if addr in self.self_addrs:
            return True
        ours = addr[0] in LOCAL_HOSTS or addr[0] == self.listen_host
        return ours and (addr[1] == self._port or addr[1] in self.own_ports)

    def identity(self, info_hash: bytes) -> MeshIdentity:
        """What proves our node name on one torrent's connections."""
        return MeshIdentity(self.mesh_key, self.node, info_hash)

    def ext_hello(self, metadata_size: Optional[int] = None) -> ext.ExtHandshake:
        """The BEP 10 handshake we send (the cores ask for it per connection);
        ``metadata_size``: the torrent's info dict size (we serve ut_metadata)."""
        return ext.local_handshake(
            port=self.wire_port, client=CLIENT, reqq=MAX_QUEUED_REQUESTS, node=self.node,
            mesh=self.mesh, block=wire.MAX_BLOCK, metadata_size=metadata_size,
        )

    def is_banned(self, host: str, port: Optional[int], node: Optional[str]) -> bool:
        return self.bans.is_banned(host, port, node)

    def ban(self, c: PeerConnection, reason: str) -> None:
        new = self.bans.ban(c.state)
        self.count_ban(c.state, reason, new)

    def count_ban(self, peer: PeerState, reason: str, new: bool) -> None:
        """A peer the BanList now holds: count it (once per peer, not per connection or
        torrent: ``new`` says this ban added it) and cut its connection."""
        if new:
            self.metrics.banned_peers.inc()
            log.warning("banned %s (%s)", peer.label, reason)
        peer.closed = True
        conn = peer.key
        if isinstance(conn, PeerConnection):
            conn.close(abort=True)

    def protocol_error(self, reason: str, c: Any, detail: str = "") -> None:
        if reason not in PROTOCOL_ERROR_REASONS:  # a new reason must be listed (metrics init)
            log.error("protocol error reason %r missing from PROTOCOL_ERROR_REASONS", reason)
        self.metrics.protocol_errors.labels(reason).inc()
        who = c.label if isinstance(c, PeerConnection) else str(c)
        log.warning("protocol error from %s: %s", who, detail or reason)
        # A peer that breaks the protocol again after reconnecting is banned, or it
        # would be dialed (and disconnected) every couple of seconds for ever.
        if isinstance(c, PeerConnection) and reason != "not_reading" and self.bans.violation(c.state):
            self.ban(c, f"{reason}, {MAX_VIOLATIONS} protocol errors")

    def trim_send_queues(self) -> None:
        """One memory budget for the send queues of all connections: over it, cut the
        peers that stopped reading (largest backlog first). Honest uploads wait for the
        socket, so they never hold more than WRITE_HIGH_WATER plus one block."""
        conns = [p.key for t in self.torrents.values() for p in t.core.peers.values()
                 if isinstance(p.key, PeerConnection) and not p.key.closed]
        sized = sorted(((c.writer.transport.get_write_buffer_size(), i, c)
                        for i, c in enumerate(conns)), reverse=True)
        total = sum(size for size, _, _ in sized)
        for size, _, c in sized:
            if total <= SEND_BUDGET or size <= NOT_READING:
                break
            self.protocol_error("not_reading", c, "send queues over the agent's budget")
            c.close(abort=True)
            total -= size

    def _on_block_change(self) -> None:
        for t in list(self.torrents.values()):
            t.link_changed()

    def _tune(self, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    async def connect(self, t: Torrent, addr: tuple[str, int]) -> bool:
        """Dial ``addr`` for torrent ``t``; True once the handshake passed. A plain
        handshake first; a peer that closes on it is dialed again with MSE (and from then
        on with MSE only)."""
        remembered = addr in self.needs_mse
        if not remembered:
            try:
                return await self._connect(t, addr, use_mse=False)
            except handshake.PlainRefused:
                pass
        try:
            ok = await self._connect(t, addr, use_mse=True)
        except handshake.PlainRefused:
            ok = False
        if ok != remembered:  # remember only peers that took MSE after refusing plaintext
            (self.needs_mse.add if ok else self.needs_mse.discard)(addr)
        return ok

    async def _connect(self, t: Torrent, addr: tuple[str, int], use_mse: bool) -> bool:
        host, port = addr
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_LIMIT), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            self._tune(writer)
            got = await handshake.outgoing(
                reader, writer, t.meta.info_hash,
                wire.encode_handshake(t.meta.info_hash, self.peer_id), self.sysrng,
                use_mse=use_mse, timeout=HANDSHAKE_TIMEOUT)
            hs = got.hs
            await self.link.recv_gate(wire.HANDSHAKE_LEN)
            if hs.info_hash != t.meta.info_hash:
                raise wire.DecodeError("wrong_infohash", f"{host}:{port}")
            if hs.peer_id == self.peer_id:
                self.self_addrs.add(addr)
                writer.close()
                return False
        except handshake.PlainRefused:
            writer.transport.abort()
            raise
        except wire.DecodeError as e:
            self.protocol_error(e.reason, f"{host}:{port}", str(e))
            writer.transport.abort()
            return False
        except mse.MseError as e:
            self.protocol_error(mse_reason(e.reason), f"{host}:{port}", str(e))
            writer.transport.abort()
            return False
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            writer.transport.abort()
            return False
        if self.closing or t.closing:
            writer.close()
            return False
        self.metrics.handshakes.labels(got.method).inc()
        conn = self.conn_class(self, t, reader, writer, hs, outgoing=True, dial_addr=addr,
                               initial=got.rest, crypto=got.crypto)
        self.spawn(conn.run())
        return True

    async def _on_incoming(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        host, port = str(peer[0]), int(peer[1])
        if self.closing or self.link.blocked(None, host, None):
            writer.transport.abort()
            return
        try:
            self._tune(writer)
            skeys = list(self.torrents) + list(self.aliases)
            got = await handshake.incoming(reader, writer, skeys, self.sysrng, HANDSHAKE_TIMEOUT)
            hs = got.hs
            await self.link.recv_gate(wire.HANDSHAKE_LEN)
            t = self.torrent_for(hs.info_hash)
            if t is None or t.closing:
                raise wire.DecodeError("unknown_infohash", hs.info_hash.hex())
            if hs.peer_id == self.peer_id:
                writer.transport.abort()
                return
            # the hash it asked for (a hybrid's v2 one included), through MSE if it used it
            ours = wire.encode_handshake(hs.info_hash, self.peer_id)
            writer.write(got.crypto[0](ours) if got.crypto else ours)
        except wire.DecodeError as e:
            self.protocol_error(e.reason, f"{host}:{port}", str(e))
            writer.transport.abort()
            return
        except mse.MseError as e:
            self.protocol_error(mse_reason(e.reason), f"{host}:{port}", str(e))
            writer.transport.abort()
            return
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            writer.transport.abort()
            return
        self.metrics.handshakes.labels(got.method).inc()
        conn = self.conn_class(self, t, reader, writer, hs, outgoing=False, initial=got.rest,
                               crypto=got.crypto)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await conn.run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------------ periodic
    async def _housekeep(self) -> None:
        while not self.closing:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self.rate_up.tick(now)
            self.rate_down.tick(now)
            for t in list(self.torrents.values()):
                try:
                    t.tick(now)
                except Exception:  # a bug in one torrent's upkeep must not stop the others
                    log.exception("housekeeping of %s failed", t.meta.name)

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        pid = self.peer_id
        try:
            peer_id = pid.decode("ascii") if pid.isascii() and pid.decode().isprintable() else pid.hex()
        except UnicodeDecodeError:
            peer_id = pid.hex()
        return {
            "node": self.node,
            "group": self.group,
            "mesh": self.mesh,
            "peer_id": peer_id,
            "wire": f"{self.listen_host}:{self._port}",
            "uptime": round(time.monotonic() - self.started, 3),
            "rate_up": round(self.rate_up.rate, 1),
            "rate_down": round(self.rate_down.rate, 1),
            "bytes_sent": self.rate_up.total,
            "bytes_received": self.rate_down.total,
            "blocked": self.link.blocklist(),
            "banned": {"total": self.bans.total, "nodes": sorted(self.bans.nodes),
                       "addrs": sorted(self.bans.addrs)},
            "torrents": {t.meta.hexhash: t.status() for t in self.torrents.values()},
            "magnets": {k: dict(v) for k, v in self.magnets.items()},
        }

    def _snapshots(self) -> list[ContentSnapshot]:
        return [t.snapshot() for t in list(self.torrents.values())]


def mse_reason(reason: str) -> str:
    """The protocol-error label of an MSE failure (listed in PROTOCOL_ERROR_REASONS)."""
    label = "mse_" + reason
    return label if label in PROTOCOL_ERROR_REASONS else "mse_other"


def _read_state(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _addr(text: Any) -> Optional[tuple[str, int]]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)
