"""Async HTTP/JSON client for the agents' control API (docs/ARCHITECTURE.md "Control API").

Stdlib only, a timeout on every call, JSON in and out. The orchestrator talks to a local
process and to a Raspberry Pi the same way. A call opens its own short connection
(``Connection: close``), unless the client has a ``ConnectionPool``: then GET calls reuse
kept-alive connections and at most ``pool.limit`` calls run at once (status polling of
thousands of nodes every second opens each connection once, not once per poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Optional

MAX_RESPONSE = 16 << 20  # a /status of a large mesh is far below this


class PeerError(Exception):
    """The agent could not be reached, or answered with an error status."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ConnectionPool:
    """Idle kept-alive connections per agent, and a bound on calls in flight."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)
        self._idle: dict[str, list[Conn]] = {}
        self.opened = 0  # connections opened so far (reuse keeps this at one per agent)
        self.busy = 0  # calls in flight now, and the most there ever were
        self.peak_busy = 0

    def take(self, api: str) -> Optional[Conn]:
        idle = self._idle.get(api)
        while idle:
            conn = idle.pop()
            if not conn[1].is_closing() and not conn[0].at_eof():
                return conn
            conn[1].close()
        return None

    def give(self, api: str, conn: Conn) -> None:
        self._idle.setdefault(api, []).append(conn)

    async def close(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for _, writer in conns:
            writer.close()
        for _, writer in conns:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class PeerClient:
    """Client for one agent at ``api`` ("host:port")."""

    def __init__(
        self, api: str, token: Optional[str] = None, timeout: float = 5.0,
        pool: Optional[ConnectionPool] = None,
    ) -> None:
        self.api = api
        self.token = token
        self.timeout = timeout
        self.pool = pool

    def _host_port(self) -> tuple[str, int]:
        host, _, port = self.api.rpartition(":")
        return host.strip("[]"), int(port)

    async def request(
        self, method: str, path: str, body: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> dict[str, Any]:
        limit = timeout if timeout is not None else self.timeout
        try:
            if self.pool is not None and method == "GET":
                async with self.pool.slots:
                    self.pool.busy += 1
                    self.pool.peak_busy = max(self.pool.peak_busy, self.pool.busy)
                    try:
                        return await asyncio.wait_for(self._pooled(method, path, self.pool), limit)
                    finally:
                        self.pool.busy -= 1
            return await asyncio.wait_for(self._request(method, path, body), limit)
        except asyncio.TimeoutError:
            raise PeerError(f"{self.api}: {method} {path} timed out") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise PeerError(f"{self.api}: {method} {path}: {exc}") from None

    async def _pooled(self, method: str, path: str, pool: ConnectionPool) -> dict[str, Any]:
        """A GET over a kept-alive connection; a reused one the agent closed meanwhile is
        replaced once (GET is idempotent)."""
        conn = pool.take(self.api)
        for attempt in (0, 1):
            reused = conn is not None
            if conn is None:
                host, port = self._host_port()
                conn = await asyncio.open_connection(host, port)
                pool.opened += 1
            try:
                status, raw, keep = await self._exchange(conn, method, path, None, keep_alive=True)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await _close(conn[1])
                if reused and attempt == 0:
                    conn = None
                    continue
                raise
            except BaseException:  # a timeout mid-call: the connection's state is unknown
                conn[1].close()
                raise
            if keep:
                pool.give(self.api, conn)
            else:
                await _close(conn[1])
            return self._decode(method, path, status, raw)
        raise AssertionError("unreachable")

    async def _request(self, method: str, path: str, body: Optional[dict[str, Any]]) -> dict[str, Any]:
        host, port = self._host_port()
        conn = await asyncio.open_connection(host, port)
        try:
            status, raw, _ = await self._exchange(conn, method, path, body, keep_alive=False)
        finally:
            await _close(conn[1])
        return self._decode(method, path, status, raw)

    async def _exchange(
        self, conn: Conn, method: str, path: str, body: Optional[dict[str, Any]], keep_alive: bool
    ) -> tuple[int, bytes, bool]:
        """One request/response: (status, body bytes, whether the connection stays open)."""
        reader, writer = conn
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.api}",
            "Connection: keep-alive" if keep_alive else "Connection: close",
            "Accept: application/json",
            f"Content-Length: {len(payload)}",
        ]
        if body is not None:
            lines.append("Content-Type: application/json")
        if self.token:
            lines.append(f"Authorization: Bearer {self.token}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise asyncio.IncompleteReadError(b"", None)  # closed before answering
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {status_line[:80]!r}")
        status = int(parts[1])
        length: Optional[int] = None
        keep = keep_alive and parts[0] == "HTTP/1.1"
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
        if length is not None:
            if length > MAX_RESPONSE:
                raise ValueError(f"response too large ({length} bytes)")
            raw = await reader.readexactly(length)
        else:
            raw, keep = await reader.read(MAX_RESPONSE), False
        return status, raw, keep

    def _decode(self, method: str, path: str, status: int, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw.decode() or "{}")
        except json.JSONDecodeError:
            data = {"error": raw[:200].decode(errors="replace")}
        if status >= 400:
            msg = data.get("error") if isinstance(data, dict) else None
            raise PeerError(f"{self.api}: {method} {path} -> {status}: {msg or raw[:200]!r}", status)
        if not isinstance(data, dict):
            raise ValueError("response is not a JSON object")
        return data

    # --- the API ------------------------------------------------------------------------
    async def status(self, timeout: Optional[float] = None) -> dict[str, Any]:
        return await self.request("GET", "/status", timeout=timeout)

    async def share(self, body: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        # Sharing hashes (and for synthetic content first writes) the whole file: slow.
        return await self.request("POST", "/share", body, timeout=timeout)

    async def fetch(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/fetch", body, timeout=30.0)

    async def link(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/link", body)

    async def peers(self, peers: list[str], infohash: Optional[str] = None) -> dict[str, Any]:
        body: dict[str, Any] = {"peers": peers}
        if infohash:
            body["infohash"] = infohash
        return await self.request("POST", "/peers", body)

    async def block(self, nodes: list[str], addrs: list[str]) -> dict[str, Any]:
        return await self.request("POST", "/block", {"nodes": nodes, "addrs": addrs})

    async def stop(self) -> dict[str, Any]:
        return await self.request("POST", "/stop", {})
