"""Bans and protocol-violation counts, shared by all the torrents of one agent (pure).

Bans key on what a peer cannot fake: a node name it proved (peer/core/identity.py), the
address we dialed, or, for an unproven incoming peer, its IP (or on a loopback host, where
every peer shares the IP, its peer_id and the listen port it claimed, which then only keep
*unproven* connections out). Never on a claimed name nor on an ephemeral port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from peer.core.peerstate import PeerState

MAX_VIOLATIONS = 3  # protocol errors from one peer before it is banned


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "localhost") or ip.startswith("::ffff:127.")


def offender_key(p: PeerState) -> str:
    """Who ``p`` is, as far as we can tell (violations and strikes count on this)."""
    if p.node:
        return f"node:{p.node}"
    if p.outgoing:
        return f"{p.ip}:{p.port}"
    if not is_loopback(p.ip):
        return p.ip
    return f"{p.ip}/{p.peer_id.hex()}"


class BanList:
    def __init__(self, max_violations: int = MAX_VIOLATIONS) -> None:
        self.addrs: set[str] = set()  # "ip:port" we dialed, or a proven member's listen port
        self.nodes: set[str] = set()  # proven meshbed node names
        self.ips: set[str] = set()  # unproven incoming offenders (not loopback)
        self.claims: set[str] = set()  # "ip:claimed port" and "ip/peer_id" of loopback ones
        self.violations: dict[str, int] = {}
        self.max_violations = max_violations
        self.total = 0  # distinct bans (the metric counts these, not connections)

    def is_banned(self, host: str, port: Optional[int], node: Optional[str]) -> bool:
        """``node`` must be a proven name; ``host:port`` an address we dial."""
        if node and node in self.nodes:
            return True
        return host in self.ips or (port is not None and f"{host}:{port}" in self.addrs)

    def refuses(self, p: PeerState) -> bool:
        """Is this connection's peer banned (after its extended handshake, if any)?"""
        if p.node:  # a proven member answers for its name only
            return p.node in self.nodes
        if p.ip in self.ips:
            return True
        if f"{p.ip}/{p.peer_id.hex()}" in self.claims:
            return True
        if p.outgoing:
            return f"{p.ip}:{p.port}" in self.addrs or f"{p.ip}:{p.listen_port}" in self.addrs
        claimed = f"{p.ip}:{p.listen_port}" if p.listen_port else None
        return claimed is not None and (claimed in self.claims or claimed in self.addrs)

    def ban(self, p: PeerState) -> bool:
        """Ban ``p``; True if it was not banned already."""
        was = self.refuses(p)
        if p.node:
            self.nodes.add(p.node)
            if p.listen_port:  # proven with the name
                self.addrs.add(f"{p.ip}:{p.listen_port}")
        else:  # its peer_id too: the same peer connecting the other way
            self.claims.add(f"{p.ip}/{p.peer_id.hex()}")
            if p.outgoing:  # the address we dialed (listen_port is the port we dialed too)
                self.addrs.add(f"{p.ip}:{p.port}")
                if p.listen_port:
                    self.addrs.add(f"{p.ip}:{p.listen_port}")
            elif not is_loopback(p.ip):
                self.ips.add(p.ip)
            elif p.listen_port:
                self.claims.add(f"{p.ip}:{p.listen_port}")
        if not was:
            self.total += 1
        return not was

    def violation(self, p: PeerState) -> bool:
        """Count a protocol error from ``p``; True once it deserves a ban (a peer that
        breaks the protocol again after reconnecting would be redialed for ever)."""
        # its connections both ways add up, proven or not (an error may cut a connection
        # before its handshake's proof is read)
        keys = {offender_key(p), f"{p.ip}/{p.peer_id.hex()}"}
        worst = 0
        for key in keys:
            self.violations[key] = self.violations.get(key, 0) + 1
            worst = max(worst, self.violations[key])
        while len(self.violations) > 10000:  # bounded: forget the oldest
            self.violations.pop(next(iter(self.violations)))
        return worst >= self.max_violations
