"""Bans and protocol-violation counts, shared by all the torrents of one agent (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from peer.core.peerstate import PeerState

MAX_VIOLATIONS = 3  # protocol errors from one address before it is banned


class BanList:
    def __init__(self, max_violations: int = MAX_VIOLATIONS) -> None:
        self.addrs: set[str] = set()  # "ip:port" (the connection's and its listen port)
        self.nodes: set[str] = set()  # meshbed node names
        self.violations: dict[str, int] = {}
        self.max_violations = max_violations

    def is_banned(self, host: str, port: Optional[int], node: Optional[str]) -> bool:
        if node and node in self.nodes:
            return True
        return port is not None and f"{host}:{port}" in self.addrs

    def ban(self, p: PeerState) -> None:
        self.addrs.add(f"{p.ip}:{p.port}")
        if p.listen_port:
            self.addrs.add(f"{p.ip}:{p.listen_port}")
        if p.node:
            self.nodes.add(p.node)

    def violation(self, ip: str, port: int) -> bool:
        """Count a protocol error from ``ip:port``; True once it deserves a ban (a peer that
        breaks the protocol again after reconnecting would be redialed for ever)."""
        key = f"{ip}:{port}"
        self.violations[key] = self.violations.get(key, 0) + 1
        return self.violations[key] >= self.max_violations
