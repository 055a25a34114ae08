"""Magnet downloads (BEP 9): the info dict is fetched from peers before the torrent
exists; then the agent fetches the content like any other torrent.

Peers come from the magnet (``x.pe``), from the request, the agent's bootstrap list and
the magnet's trackers (``tr``). Each is asked in turn over a short-lived connection:
handshake (MSE when it insists), extended handshake, ut_metadata requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from typing import Callable, Optional

from peer import extensions as ext
from peer import handshake, metadata, tracker, wire

log = logging.getLogger("peer")

Addr = tuple[str, int]
PEER_TIMEOUT = 20.0  # one peer's whole metadata exchange
CONNECT_TIMEOUT = 10.0
RETRY_EVERY = 3.0  # between rounds over every known peer
READ_LIMIT = 4 << 20


class MetadataUnavailable(Exception):
    """No peer gave us the info dict before the deadline."""


Hello = Callable[[bytes], ext.ExtHandshake]  # our BEP 10 handshake, given the peer's id


async def _from_peer(addr: Addr, info_hash: bytes, check: bytes, peer_id: bytes, port: int,
                     client: str, rng: random.Random, use_mse: bool,
                     hello_for: Optional[Hello] = None) -> bytes:
    """The verified info dict from one peer; raises on any failure."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(addr[0], addr[1], limit=READ_LIMIT), CONNECT_TIMEOUT)
    try:
        got = await handshake.outgoing(
            reader, writer, info_hash, wire.encode_handshake(info_hash, peer_id), rng,
            use_mse=use_mse, timeout=CONNECT_TIMEOUT)
        if got.hs.info_hash != info_hash or not got.hs.supports_extensions:
            raise metadata.MetadataError("no_extensions", f"{addr} cannot serve metadata")
        encrypt: Callable[[bytes], bytes] = got.crypto[0] if got.crypto else bytes
        decrypt: Callable[[bytes], bytes] = got.crypto[1] if got.crypto else bytes
        if hello_for is not None:  # a mesh member: its name and proof (access: mesh)
            hello = hello_for(got.hs.peer_id)
            hello = dataclasses.replace(hello, m={**hello.m, ext.UT_METADATA: ext.UT_METADATA_ID})
        else:
            hello = ext.ExtHandshake(m={ext.UT_METADATA: ext.UT_METADATA_ID},
                                     port=port or None, client=client)
        first: list[wire.Message] = [wire.HaveNone()] if got.hs.supports_fast else []
        first.append(wire.Extended(0, ext.encode_ext_handshake(hello)))
        writer.write(encrypt(b"".join(wire.encode(m) for m in first)))
        frames = wire.FrameDecoder()
        pending = list(frames.feed(got.rest))
        asm: Optional[metadata.MetadataAssembler] = None
        while True:
            for msg in pending:
                if not isinstance(msg, wire.Extended):
                    continue
                if msg.ext_id == 0 and asm is None:
                    h = ext.decode_ext_handshake(msg.payload)
                    their = h.m.get(ext.UT_METADATA)
                    if not their or not h.metadata_size:
                        raise metadata.MetadataError("no_metadata", f"{addr} has no metadata")
                    asm = metadata.MetadataAssembler(check, h.metadata_size)
                    asks = []
                    while (piece := asm.next_request()) is not None:
                        asks.append(wire.Extended(their, metadata.encode_metadata_msg(
                            metadata.MetaRequest(piece))))
                    writer.write(encrypt(b"".join(wire.encode(m) for m in asks)))
                elif msg.ext_id == ext.UT_METADATA_ID and asm is not None:
                    answer = metadata.decode_metadata_msg(msg.payload)
                    if isinstance(answer, metadata.MetaReject):
                        raise metadata.MetadataError("rejected", f"{addr} rejected {answer.piece}")
                    if isinstance(answer, metadata.MetaData) and asm.receive(answer):
                        assert asm.info_bytes is not None
                        return asm.info_bytes
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionError(f"{addr} closed")
            pending = list(frames.feed(decrypt(data)))
    finally:
        writer.transport.abort()


async def _tracker_peers(m: metadata.Magnet, info_hash: bytes, peer_id: bytes, port: int,
                         rng: random.Random) -> list[Addr]:
    out: list[Addr] = []
    for url in m.trackers:
        req = tracker.AnnounceRequest(info_hash, peer_id, port, 0, 0, 1, "", 50,
                                      rng.getrandbits(32), None)
        try:
            out += (await tracker.announce(url, req, rng, timeout=10.0)).peers
        except (tracker.TrackerError, OSError, asyncio.TimeoutError) as e:
            log.info("magnet: tracker %s: %s", url, e)
    return out


async def fetch_info_dict(
    m: metadata.Magnet, peers: list[Addr], *, peer_id: bytes, port: int, client: str,
    rng: random.Random, needs_mse: set[Addr], is_self: Callable[[Addr], bool], timeout: float,
    hello_for: Optional[Hello] = None,
) -> bytes:
    """The info dict the magnet names, from the first peer that serves it (raises
    MetadataUnavailable after ``timeout`` seconds)."""
    info_hash = m.info_hash or (m.info_hash_v2 or b"")[:20]
    check = m.info_hash or m.info_hash_v2 or b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error = "no peers"
    while loop.time() < deadline:
        found = list(m.peers) + list(peers) + await _tracker_peers(m, info_hash, peer_id, port, rng)
        for addr in dict.fromkeys(a for a in found if not is_self(a)):
            left = deadline - loop.time()
            if left <= 0:
                break
            for use_mse in ((True,) if addr in needs_mse else (False, True)):
                try:
                    return await asyncio.wait_for(_from_peer(
                        addr, info_hash, check, peer_id, port, client, rng, use_mse,
                        hello_for),
                        min(PEER_TIMEOUT, left))
                except handshake.PlainRefused:
                    needs_mse.add(addr)
                    continue
                except (OSError, EOFError, asyncio.TimeoutError, ValueError) as e:
                    last_error = f"{addr[0]}:{addr[1]}: {type(e).__name__}: {e}"
                    log.info("magnet: %s", last_error)
                    break
        await asyncio.sleep(RETRY_EVERY)
    raise MetadataUnavailable(last_error)
