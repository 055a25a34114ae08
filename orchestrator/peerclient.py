"""Async HTTP/JSON client for the agents' control API (docs/ARCHITECTURE.md "Control API").

Stdlib only: one short HTTP/1.1 connection per call (``Connection: close``), a timeout on
every call, JSON in and out. The orchestrator talks to a local process and to a Raspberry Pi
the same way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

MAX_RESPONSE = 16 << 20  # a /status of a large mesh is far below this


class PeerError(Exception):
    """The agent could not be reached, or answered with an error status."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


class PeerClient:
    """Client for one agent at ``api`` ("host:port")."""

    def __init__(self, api: str, token: Optional[str] = None, timeout: float = 5.0) -> None:
        self.api = api
        self.token = token
        self.timeout = timeout

    def _host_port(self) -> tuple[str, int]:
        host, _, port = self.api.rpartition(":")
        return host.strip("[]"), int(port)

    async def request(
        self, method: str, path: str, body: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(
                self._request(method, path, body), timeout if timeout is not None else self.timeout
            )
        except asyncio.TimeoutError:
            raise PeerError(f"{self.api}: {method} {path} timed out") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise PeerError(f"{self.api}: {method} {path}: {exc}") from None

    async def _request(self, method: str, path: str, body: Optional[dict[str, Any]]) -> dict[str, Any]:
        host, port = self._host_port()
        reader, writer = await asyncio.open_connection(host, port)
        try:
            payload = json.dumps(body).encode() if body is not None else b""
            lines = [
                f"{method} {path} HTTP/1.1",
                f"Host: {self.api}",
                "Connection: close",
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
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"bad status line {status_line[:80]!r}")
            status = int(parts[1])
            length: Optional[int] = None
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is not None:
                if length > MAX_RESPONSE:
                    raise ValueError(f"response too large ({length} bytes)")
                raw = await reader.readexactly(length)
            else:
                raw = await reader.read(MAX_RESPONSE)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
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
