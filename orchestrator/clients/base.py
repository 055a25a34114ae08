"""The one small interface every real BitTorrent client is driven through.

An adapter starts its client inside the node (bound to the node's wire address, its RPC on
the namespace's loopback), adds torrents from metainfo, reports what the client says about
them, and stops it. It never enables anything that talks beyond the mesh: no DHT, LSD,
UPnP or NAT-PMP; the only trackers are those in the metainfo the orchestrator hands over.
Calls are blocking (plain HTTP/JSON-RPC); the node process runs them off its event loop.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional


class ClientError(Exception):
    """The client did not start, or its API refused or failed a call."""


@dataclass(frozen=True)
class ClientTorrent:
    """What a client reports about one torrent (``bytes_from`` None: it does not say)."""

    pieces: int
    have: int
    downloaded: int  # payload bytes received
    uploaded: int  # payload bytes sent
    rate_down: float  # bytes/s
    rate_up: float
    peers: int
    bytes_from: Optional[dict[str, int]] = None  # "ip:port" -> payload bytes received
    bytes_to: Optional[dict[str, int]] = None
    checking: bool = False  # hashing the files on disk (after add or restart)

    @property
    def complete(self) -> bool:
        return self.pieces > 0 and self.have >= self.pieces and not self.checking


@dataclass
class NodeSetup:
    """Where the client of one node lives."""

    ip: str  # the node's address: the client listens on ip:wire_port and nowhere else
    wire_port: int
    home: Path  # the client's own config/state folder (kept across kill/start)
    downloads: Path  # where content is saved (and seeded from)
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def any_address(self) -> bool:
        """Listening on every address (a container: its only interface gets its address
        after the start, so nothing can be bound to that address at start)."""
        return self.ip in ("0.0.0.0", "")


class ClientAdapter(ABC):
    name: ClassVar[str]
    binary: ClassVar[str]  # what must be installed (a command, or a Python module for libtorrent)
    package: ClassVar[str]  # the Debian package that provides it
    accepts_peers: ClassVar[bool] = False  # takes addresses to dial through its API

    def __init__(self, setup: NodeSetup) -> None:
        self.setup = setup

    @classmethod
    def installed(cls) -> bool:
        return shutil.which(cls.binary) is not None

    @classmethod
    def check_command(cls) -> str:
        """A POSIX sh test that succeeds where the client is installed (run on ssh devices)."""
        return f"command -v {cls.binary} >/dev/null 2>&1"

    @abstractmethod
    def start(self) -> list[int]:
        """Start the client (configured on first start; resuming its own state after); return
        the pids to wait on. Returns once the API answers."""

    @abstractmethod
    def add(self, torrent: bytes, infohash: str) -> None:
        """Add a .torrent whose content is (or will be) in ``setup.downloads``; a client that
        finds the file there checks it and seeds. Adding a torrent it has is a no-op."""

    @abstractmethod
    def torrents(self) -> dict[str, ClientTorrent]:
        """Every torrent the client has, by lowercase hex v1 infohash."""

    def add_peers(self, infohash: str, peers: list[tuple[str, int]]) -> int:
        """Ask the client to dial ``peers``; how many it took (0 where it cannot)."""
        return 0

    def stop(self) -> None:  # noqa: B027 - optional: the node process kills what start() ran
        """Ask the client to shut down cleanly (it saves its resume data)."""


def http_json(url: str, body: Optional[Any] = None, headers: Optional[dict[str, str]] = None,
              timeout: float = 5.0, data: Optional[bytes] = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on loopback; (status, headers, body), HTTP errors included."""
    raw = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=raw, headers=headers or {},
                                 method="POST" if raw is not None else "GET")
    if body is not None and data is None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_until_answers(probe: Any, what: str, timeout: float = 30.0) -> None:
    """Call ``probe()`` until it stops raising OSError/ClientError (the API is up)."""
    deadline = time.monotonic() + timeout
    last: Exception = ClientError("never tried")
    while time.monotonic() < deadline:
        try:
            probe()
            return
        except (OSError, ClientError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise ClientError(f"{what} did not answer within {timeout:.0f}s: {last}")


def count_bits(bitfield_hex: str, pieces: int) -> int:
    """Set bits among the first ``pieces`` of a hex bitfield (aria2's ``bitfield``)."""
    if not bitfield_hex:
        return 0
    bits = bin(int(bitfield_hex, 16))[2:].zfill(len(bitfield_hex) * 4)
    return bits[:pieces].count("1")
