"""Who sent the bad data of a piece that failed its hash (pure).

A piece from one peer that fails convicts that peer. A piece from several peers does not
say which of them lied, so each gets a strike and two strikes ban. Two rules keep an honest
peer from being banned for sharing pieces with a liar (seen: a seeder finished the pieces a
banned liar had started, they failed, and the seeder was banned by every leecher):

- a failed piece with an already banned contributor is blamed on it alone;
- "smart ban" (libtorrent's plugin of that name): for a failed piece from several peers,
  a digest of the 16 KiB units each one sent is kept; when the piece later passes, a peer
  whose units differ from the good copy is banned, and one whose units match is forgiven
  the strike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional, Union

from peer.core.bans import offender_key
from peer.picker import UNIT

if TYPE_CHECKING:
    from peer.core.bans import BanList
    from peer.core.peerstate import PeerState

Buffer = Union[bytes, bytearray, memoryview]
STRIKES_TO_BAN = 2
MAX_SUSPECT_PIECES = 256  # failed pieces remembered for a verdict (bounded memory)


class Suspect:
    __slots__ = ("peer", "key", "units", "digest")

    def __init__(self, peer: PeerState, units: list[int], digest: bytes) -> None:
        self.peer = peer
        self.key = offender_key(peer)
        self.units = units
        self.digest = digest


def digest_units(data: Buffer, units: list[int]) -> bytes:
    h = hashlib.sha1()
    view = memoryview(data)
    for u in units:
        h.update(view[u * UNIT:(u + 1) * UNIT])
    return h.digest()


class Blame:
    def __init__(self, bans: BanList) -> None:
        self.bans = bans
        self.strikes: dict[str, int] = {}
        self.suspects: dict[int, list[Suspect]] = {}  # failed piece -> who sent which units

    def failed(self, index: int, sources: Sequence[PeerState],
               units_from: Optional[Sequence[object]], data: Optional[Buffer]) -> list[PeerState]:
        """The piece failed its hash; ``units_from`` names the sender of each unit (None
        for a piece from one peer). Returns the peers to ban now."""
        units_of: dict[object, list[int]] = {}
        if units_from is not None:
            for u, who in enumerate(units_from):
                units_of.setdefault(who, []).append(u)
            # a sender whose every unit was overwritten by another's copy is not in it
            sources = [c for c in sources if c in units_of]
        if len(sources) == 1:
            return list(sources)
        if any(self.bans.refuses(c) for c in sources):
            return []  # a banned liar's units explain it: the others are not struck
        if units_of and data is not None and len(self.suspects) < MAX_SUSPECT_PIECES:
            self.suspects[index] = [Suspect(c, units_of[c], digest_units(data, units_of[c]))
                                    for c in sources]
        guilty = []
        for c in sources:
            key = offender_key(c)
            self.strikes[key] = self.strikes.get(key, 0) + 1
            if self.strikes[key] >= STRIKES_TO_BAN:
                guilty.append(c)
        return guilty

    def wants_data(self, index: int) -> bool:
        """Keep the bytes of ``index`` until its hash check: a verdict waits on it."""
        return index in self.suspects

    def passed(self, index: int, data: Optional[Buffer]) -> list[PeerState]:
        """The piece passed: those who sent it something else before are banned, the
        others are forgiven the strike it cost them. Returns the peers to ban."""
        records = self.suspects.pop(index, None)
        if not records or data is None:
            return []
        guilty = []
        for r in records:
            if digest_units(data, r.units) != r.digest:
                guilty.append(r.peer)
            elif self.strikes.get(r.key, 0) > 0:
                self.strikes[r.key] -= 1
        return guilty
