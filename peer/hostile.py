"""Hostile test modes (``peer run --hostile MODE --i-know-this-is-a-test``): subclasses of
the core and of the connection, so the ordinary classes carry no test-only branches.

- corrupt: serves blocks with flipped bytes (its pieces fail the hash; it gets banned)
- lie: claims every piece and serves random bytes for those it lacks
- malformed: after its first messages, an oversized frame and garbage
- stall: handshakes, then never says a word (requests accepted, never answered)
"""

from __future__ import annotations

import os
import struct

from peer import wire
from peer.connection import PeerConnection
from peer.core import PeerState, SwarmCore

_LEN = struct.Struct(">I")


class LyingCore(SwarmCore):
    def initial_messages(self, c: PeerState) -> list[wire.Message]:
        n = self.num_pieces
        claim: wire.Message = wire.HaveAll() if c.fast else wire.Bitfield.full(n)
        rest = [m for m in super().initial_messages(c) if isinstance(m, wire.Extended)]
        return [claim, *rest]

    def serves(self, index: int) -> bool:
        return True


class StallingCore(SwarmCore):
    def _on_request(self, c: PeerState, msg: wire.Request, now: float) -> None:
        self.check_request(c, msg)  # accepted, never answered


class CorruptConnection(PeerConnection):
    async def read_block(self, index: int, begin: int, length: int) -> bytes:
        flipped = bytearray(await super().read_block(index, begin, length))
        flipped[0] ^= 0xFF
        flipped[-1] ^= 0xFF
        return bytes(flipped)


class LyingConnection(PeerConnection):
    async def read_block(self, index: int, begin: int, length: int) -> bytes:
        if not self.torrent.core.picker.has(index):
            return os.urandom(length)
        return await super().read_block(index, begin, length)


class MalformedConnection(PeerConnection):
    def after_initial(self) -> None:
        # an oversized frame then garbage: the other side must just disconnect
        self.writer.write(_LEN.pack(wire.MAX_FRAME + 1) + os.urandom(64))


class SilentConnection(PeerConnection):
    def send(self, msgs: list[wire.Message]) -> None:
        pass


def classes(mode: str) -> tuple[type[SwarmCore], type[PeerConnection]]:
    """The core and connection classes of a hostile mode."""
    return {
        "corrupt": (SwarmCore, CorruptConnection),
        "lie": (LyingCore, LyingConnection),
        "malformed": (SwarmCore, MalformedConnection),
        "stall": (StallingCore, SilentConnection),
    }[mode]


__all__ = ["classes"]
