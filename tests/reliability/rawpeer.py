"""A hostile peer on raw sockets (127.0.0.1), speaking the wire with peer/wire.py and
peer/extensions.py: it says exactly what a test tells it to, no agent logic behind it."""

from __future__ import annotations

import os
import socket
import time
from typing import Optional

from peer import extensions as ext
from peer import wire


def addr_of(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def random_id() -> bytes:
    return b"-XX0001-" + os.urandom(6).hex().encode()


class RawPeer:
    """One connection to an agent's wire port."""

    def __init__(self, target: str, info_hash: bytes, peer_id: Optional[bytes] = None,
                 timeout: float = 10.0, source_ip: str = "127.0.0.1") -> None:
        self.peer_id = peer_id or random_id()
        self.sock = socket.create_connection(addr_of(target), timeout=timeout,
                                             source_address=(source_ip, 0))
        self.sock.sendall(wire.encode_handshake(info_hash, self.peer_id))
        self.theirs = wire.decode_handshake(self._read_exactly(wire.HANDSHAKE_LEN))
        self.decoder = wire.FrameDecoder()

    def _read_exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        return buf

    def send(self, *msgs: wire.Message) -> None:
        """Send, unless the agent already ended the connection (then ``closed_by_them``)."""
        try:
            self.sock.sendall(b"".join(wire.encode(m) for m in msgs))
        except OSError:
            self.closed_by_them = True

    def hello(self, node: str = "", port: int = 0, proof: Optional[bytes] = None) -> None:
        """Our extended handshake, claiming ``node`` (with a made-up proof if given)."""
        hs = ext.local_handshake(port=port or None, client="evil/1", reqq=250, node=node,
                                 mesh="test", block=wire.MAX_BLOCK)
        if proof is not None:
            hs = ext.ExtHandshake(m=hs.m, port=hs.port, client=hs.client, reqq=hs.reqq,
                                  meshbed=dict(hs.meshbed or {}, proof=proof))
        self.send(wire.Extended(0, ext.encode_ext_handshake(hs)))

    def read(self, seconds: float) -> list[wire.Message]:
        """Whatever arrives within ``seconds`` (stops early when the agent closes)."""
        out: list[wire.Message] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except OSError:
                self.closed_by_them = True
                break
            if not data:
                self.closed_by_them = True
                break
            out.extend(self.decoder.feed(data))
        return out

    closed_by_them = False

    def is_closed(self, wait: float = 5.0) -> bool:
        """Did the agent end the connection (within ``wait`` seconds)?"""
        end = time.monotonic() + wait
        while not self.closed_by_them and time.monotonic() < end:
            self.read(min(0.5, end - time.monotonic()))
        return self.closed_by_them

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
