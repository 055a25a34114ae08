"""Proof of a meshbed node name in the BEP 10 handshake (pure).

Agents of one mesh share a secret mesh key. Each connection's extended handshake carries
``meshbed.proof`` = HMAC-SHA256(key, sender peer_id | receiver peer_id | infohash | listen
port | node name). The receiver recomputes it with the peer ids of *this* connection: a
proof copied from another connection (another receiver, another torrent) does not verify,
and without the key none can be made. A name that does not verify is dropped: the peer is
then only the address it connected from (it cannot be banned, blocked or credited by name).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Optional

_DOMAIN = b"meshbed node proof v1\0"


class MeshIdentity:
    """Our node name and the mesh key, for one torrent (``infohash``). An empty key (an agent
    started without one) proves nothing and accepts no name."""

    __slots__ = ("key", "node", "infohash")

    def __init__(self, key: bytes, node: str, infohash: bytes) -> None:
        self.key = key
        self.node = node
        self.infohash = infohash

    def _mac(self, sender: bytes, receiver: bytes, port: Optional[int], node: str) -> bytes:
        msg = b"".join((_DOMAIN, sender, receiver, self.infohash,
                        (port or 0).to_bytes(2, "big"), node.encode("utf-8")))
        return hmac.new(self.key, msg, hashlib.sha256).digest()

    def prove(self, local_id: bytes, remote_id: bytes, port: Optional[int]) -> Optional[bytes]:
        """Our proof toward the peer whose peer_id is ``remote_id`` (None: no key)."""
        if not self.key or not self.node:
            return None
        return self._mac(local_id, remote_id, port, self.node)

    def check(self, local_id: bytes, remote_id: bytes, port: Optional[int], node: str,
              proof: object) -> bool:
        """Does ``proof`` show that ``remote_id`` holds the key and is named ``node``?"""
        if not self.key or not node or not isinstance(proof, bytes) or len(proof) != 32:
            return False
        return hmac.compare_digest(self._mac(remote_id, local_id, port, node), proof)


def derive_mesh_key(token: str) -> bytes:
    """The mesh key of a mesh whose agents share ``token`` (when no key file is given):
    whoever holds the token already controls every agent, so it proves nothing more."""
    return hmac.new(token.encode("utf-8"), b"meshbed mesh key v1", hashlib.sha256).digest()
