"""BitTorrent handshakes with MSE/PE (peer/mse.py) for the agent's listener and dialer.

Incoming: a plain handshake or an MSE handshake (plaintext selected whenever the peer
allows it, RC4 when it insists). Outgoing: a plain handshake first (every client accepts
it, no extra round trip); a peer that closes on it is dialed again with MSE.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, Optional

from peer import mse, wire

Crypto = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]  # (encrypt, decrypt)
METHODS = {mse.CRYPTO_NONE: "none", mse.CRYPTO_PLAINTEXT: "plaintext", mse.CRYPTO_RC4: "rc4"}


@dataclass
class Handshaken:
    hs: wire.Handshake
    rest: bytes  # bytes after the peer's handshake, already decrypted
    crypto: Optional[Crypto]  # None: the data path is plaintext
    method: str  # "none" (no MSE), "plaintext" or "rc4"


class PlainRefused(ConnectionError):
    """The peer closed the connection on our plain handshake (it may want MSE)."""


def _crypto(res: mse.MseResult) -> Optional[Crypto]:
    return (res.encrypt, res.decrypt) if res.method == mse.CRYPTO_RC4 else None


async def _read_rest(reader: asyncio.StreamReader, res: mse.MseResult) -> tuple[wire.Handshake, bytes]:
    data = res.initial_payload
    while len(data) < wire.HANDSHAKE_LEN:
        more = await reader.read(4096)
        if not more:
            raise asyncio.IncompleteReadError(data, wire.HANDSHAKE_LEN)
        data += res.decrypt(more)
    return wire.decode_handshake(data[:wire.HANDSHAKE_LEN]), data[wire.HANDSHAKE_LEN:]


async def incoming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   skeys: Iterable[bytes], rng: random.Random, timeout: float) -> Handshaken:
    """Read the peer's handshake, through MSE if it starts one. Raises mse.MseError,
    wire.DecodeError, asyncio.TimeoutError, IncompleteReadError or OSError."""

    async def run() -> Handshaken:
        res = await mse.accept(reader, writer, skeys, rng, timeout=timeout)
        hs, rest = await _read_rest(reader, res)
        return Handshaken(hs, rest, _crypto(res), METHODS.get(res.method, "none"))

    return await asyncio.wait_for(run(), timeout)


async def outgoing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   info_hash: bytes, our_hs: bytes, rng: random.Random, *, use_mse: bool,
                   timeout: float) -> Handshaken:
    """Send our handshake (inside MSE when ``use_mse``) and read the peer's. Raises
    PlainRefused when a plain handshake got the connection closed without an answer."""

    async def run() -> Handshaken:
        if use_mse:
            init = mse.MseInitiator(info_hash, our_hs, rng)
            res = await mse.negotiate(init, reader, writer, timeout=timeout)
        else:
            writer.write(our_hs)
            try:
                first = await reader.readexactly(wire.HANDSHAKE_LEN)
            except asyncio.IncompleteReadError as e:
                if not e.partial:
                    raise PlainRefused("closed on a plain handshake") from None
                raise
            except ConnectionResetError:
                raise PlainRefused("reset on a plain handshake") from None
            res = mse.MseResult(mse.CRYPTO_NONE, info_hash, first, None, None)
        hs, rest = await _read_rest(reader, res)
        return Handshaken(hs, rest, _crypto(res), METHODS.get(res.method, "none"))

    return await asyncio.wait_for(run(), timeout)
