"""HTTP/JSON control API of the agent (docs/ARCHITECTURE.md "Control API").

The stdlib ``ThreadingHTTPServer`` runs in its own thread (no hand-written HTTP parser); agent
state lives in the asyncio loop, so every call into the agent goes through
``asyncio.run_coroutine_threadsafe``. Slow file work (writing synthetic content, hashing a
file, building metainfo) stays in the HTTP thread and never blocks the loop.

Mutating calls need ``Authorization: Bearer TOKEN`` (constant-time compare); with no token
configured every mutating call is refused. The token is never logged, nor are headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import dataclasses
import gzip
import hmac
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional, Protocol, TypeVar
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from peer import metainfo, synthetic
from peer.payload import ContentMismatch, check_content, content_sha256
from peer.shaping import LINK_FIELDS, LinkEmulator

log = logging.getLogger("peer.control")

MAX_BODY = 8 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024 * 1024  # read and discard up to this much of an oversized body
CALL_TIMEOUT = 120.0
MAX_JSON_DEPTH = 64  # our bodies nest 3 deep; json.loads would recurse until RecursionError
MAX_WORKERS = 32  # concurrent requests served; more are answered 503 at once
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send a request line, headers or body
MAX_PIECE_LENGTH = 16 * 1024 * 1024  # as the topology allows (chunk_size 16KiB..16MiB)
DISK_MARGIN = 64 * 1024 * 1024  # free space left over after a synthetic payload
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
T = TypeVar("T")


class AgentLike(Protocol):
    """What the control API needs of ``peer.agent.Agent``."""

    async def share(self, meta: Any, payload: Path) -> None: ...

    async def fetch(
        self,
        meta: Any,
        peers: list[tuple[str, int]],
        *,
        pex: bool = True,
        upload: bool = True,
        sha256: Optional[str] = None,
    ) -> None: ...

    async def fetch_magnet(
        self, uri: str, peers: list[tuple[str, int]], *, pex: bool = True, upload: bool = True,
        sha256: Optional[str] = None,
    ) -> str: ...

    def add_peers(self, peers: list[tuple[str, int]], infohash: Optional[str] = None) -> int: ...

    def status(self) -> dict[str, Any]: ...


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_hostport(text: Any, what: str = "peer") -> tuple[str, int]:
    """``"h:p"`` or ``"[v6]:p"`` -> (host, port); HttpError 400 otherwise."""
    if not isinstance(text, str):
        raise HttpError(400, f"{what} must be a string 'host:port'")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HttpError(400, f"bad {what} {text!r} (use host:port)")
    return host, int(port_text)


def resolve_inside(data_dir: Path, rel: Any) -> Path:
    """A path given relative to the data dir; absolute paths, '..' and symlinks that lead
    outside the data dir are refused with 400, a missing file with 404. A directory (a
    multi-file torrent's content) must hold no symbolic links at all."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise HttpError(400, "file must be a non-empty relative path")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~"):
        raise HttpError(400, f"file must be relative to the data dir: {rel!r}")
    if ".." in pure.parts:
        raise HttpError(400, f"'..' is not allowed in file: {rel!r}")
    root = data_dir.resolve()
    full = (root / pure).resolve()
    if root not in full.parents:
        raise HttpError(400, f"file is outside the data dir: {rel!r}")
    if not full.exists():
        raise HttpError(404, f"no such file in the data dir: {rel!r}")
    if full.is_dir():
        for dirpath, dirnames, filenames in os.walk(full):
            for name in dirnames + filenames:
                if os.path.islink(os.path.join(dirpath, name)):
                    raise HttpError(400, f"symbolic link inside {rel!r}: {name!r}")
        return full
    if not full.is_file():
        raise HttpError(400, f"not a regular file or directory: {rel!r}")
    return full


def _opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise HttpError(400, f"{key} must be true or false")
    return value


def _opt_int(body: dict[str, Any], key: str, minimum: int = 0) -> Optional[int]:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HttpError(400, f"{key} must be an integer >= {minimum}")
    return value


def _b64(body: dict[str, Any], key: str) -> bytes:
    value = body.get(key)
    if not isinstance(value, str):
        raise HttpError(400, f"{key} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HttpError(400, f"{key} is not valid base64") from exc


def _parse_meta(body: dict[str, Any]) -> Any:
    try:
        return metainfo.parse(_b64(body, "metainfo"))
    except metainfo.MetainfoError as exc:
        raise HttpError(400, f"bad metainfo: {exc}") from exc


def _trackers(body: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    """``"trackers": [["http://t/announce", ...], ...]``: BEP 12 tiers for the metainfo."""
    value = body.get("trackers", [])
    ok = isinstance(value, list) and len(value) <= metainfo.MAX_TIERS and all(
        isinstance(tier, list) and 0 < len(tier) <= metainfo.MAX_TRACKERS_PER_TIER
        and all(isinstance(u, str) and 0 < len(u) <= metainfo.MAX_URL
                and u.split("://", 1)[0].lower() in ("http", "https", "udp") for u in tier)
        for tier in value)
    if not ok:
        raise HttpError(400, "trackers must be a list of tiers, each a list of http(s):// "
                             "or udp:// URLs")
    return tuple(tuple(tier) for tier in value)


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HttpError(400, f"{key} must be a list of strings")
    return list(value)


class _Collected:
    """Metrics already collected, in the shape generate_latest() reads."""

    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        return iter(self.metrics)


def json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON text, counted without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class _Server(ThreadingHTTPServer):
    """One thread per request, but at most MAX_WORKERS at once: a flood of slow or half-sent
    requests gets 503 instead of a thread each."""

    daemon_threads = True
    control: ControlServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(MAX_WORKERS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self.slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


class ControlServer:
    """The control API of one agent. Create and :meth:`start` it inside the running loop."""

    def __init__(
        self,
        agent: AgentLike,
        link: LinkEmulator,
        registry: CollectorRegistry,
        *,
        data_dir: Path,
        token: Optional[str],
        host: str = "127.0.0.1",
        port: int = 0,
        on_stop: Optional[Callable[[], None]] = None,
    ) -> None:
        self.agent = agent
        self.link = link
        self.registry = registry
        self.data_dir = Path(data_dir)
        self._token = token.encode() if token else None
        self._host = host
        self._port = port
        self.on_stop = on_stop
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.started = time.time()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Bind (raises OSError if the port is taken) and serve in a daemon thread."""
        self._loop = asyncio.get_running_loop()
        cls = _Server6 if ":" in self._host else _Server
        httpd = cls((self._host, self._port), _Handler)
        httpd.control = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.25}, name="control-api",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    @property
    def api(self) -> str:
        host = self._host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    async def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()

    # --- helpers for the HTTP threads ---------------------------------------------------
    def authorized(self, header: Optional[str]) -> bool:
        if self._token is None or not header:
            return False
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the agent's loop and wait for it (from an HTTP thread)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(CALL_TIMEOUT)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise HttpError(503, "the agent did not answer in time") from exc

    def call_sync(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run())

    # --- endpoints (HTTP thread) ----------------------------------------------------------
    def get_public_status(self, _: dict[str, Any]) -> dict[str, Any]:
        """/status without the token on an ``access: mesh`` agent: who, not what."""
        full = self.call_sync(self.agent.status)
        keep = ("node", "group", "mesh", "wire", "uptime")
        return {**{k: full[k] for k in keep if k in full}, "access": "mesh",
                "details": "need the token"}

    def get_status(self, _: dict[str, Any]) -> dict[str, Any]:
        def collect() -> dict[str, Any]:
            status = dict(self.agent.status())
            status["link"] = self.link.as_dict()
            status.setdefault("blocked", self.link.blocklist())
            return status

        status = self.call_sync(collect)
        status["api"] = self.api
        status["pid"] = os.getpid()
        status.setdefault("uptime", round(time.time() - self.started, 3))
        return status

    def post_share(self, body: dict[str, Any]) -> dict[str, Any]:
        piece_length = _opt_int(body, "piece_length", 1)
        if piece_length is not None and piece_length > MAX_PIECE_LENGTH:
            raise HttpError(400, f"piece_length over {MAX_PIECE_LENGTH} bytes")
        hybrid = _opt_bool(body, "hybrid", False)
        if "synthetic" in body:
            syn = body["synthetic"]
            if not isinstance(syn, dict):
                raise HttpError(400, "synthetic must be an object {name, size, seed}")
            name = syn.get("name")
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise HttpError(400, "synthetic.name must match [A-Za-z0-9][A-Za-z0-9._-]*")
            size = _opt_int(syn, "size", 1)
            seed = _opt_int(syn, "seed", 0)
            if size is None:
                raise HttpError(400, "synthetic.size is required (bytes)")
            path = self.data_dir / "inbox" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(path.parent).free
            if size + DISK_MARGIN > free:
                raise HttpError(507, f"synthetic.size {size} bytes does not fit: "
                                     f"{free} bytes free in the data dir")
            sha256 = synthetic.write_file(path, seed or 0, name, size)
            meta = self._create(path, piece_length, hybrid)
        elif "file" in body:
            path = resolve_inside(self.data_dir, body["file"])
            meta = _parse_meta(body) if "metainfo" in body else self._create(
                path, piece_length, hybrid
            )
            try:
                if "metainfo" in body:
                    # The store adopts the content as verified: check every piece first.
                    check_content(meta, path)
                sha256 = content_sha256(meta, path)
            except ContentMismatch as exc:
                raise HttpError(400, str(exc)) from None
        else:
            raise HttpError(400, "share needs 'synthetic' or 'file'")
        trackers = _trackers(body)
        if trackers:  # outside the info dict: same infohash, the .torrent carries them
            meta = dataclasses.replace(meta, trackers=trackers)
        self._agent_call(self.agent.share(meta, path))
        return {
            "infohash": meta.hexhash,
            "metainfo": base64.b64encode(meta.to_torrent_bytes()).decode(),
            "sha256": sha256,
            "pieces": meta.num_pieces,
            "piece_length": meta.piece_length,
            "size": meta.total_size,
        }

    @staticmethod
    def _create(path: Path, piece_length: Optional[int], hybrid: bool) -> Any:
        try:
            return metainfo.create(path, piece_length=piece_length, hybrid=hybrid)
        except (metainfo.MetainfoError, ValueError) as exc:
            raise HttpError(400, f"cannot make metainfo: {exc}") from exc

    def post_fetch(self, body: dict[str, Any]) -> dict[str, Any]:
        peers = [parse_hostport(p) for p in _str_list(body, "peers")]
        sha256 = body.get("sha256")
        if sha256 is not None and (not isinstance(sha256, str) or not _HEX64.match(sha256)):
            raise HttpError(400, "sha256 must be 64 hex digits")
        if "magnet" in body:  # BEP 9: the info dict comes from peers first
            uri = body["magnet"]
            if not isinstance(uri, str) or "metainfo" in body:
                raise HttpError(400, "magnet must be a magnet: URI (and no metainfo with it)")
            try:
                infohash = self._agent_call(self.agent.fetch_magnet(
                    uri, peers, pex=_opt_bool(body, "pex", True),
                    upload=_opt_bool(body, "upload", True),
                    sha256=sha256.lower() if sha256 else None))
            except ValueError as exc:  # MetadataError: a bad magnet
                raise HttpError(400, f"bad magnet: {exc}") from None
            return {"infohash": infohash, "magnet": True}
        meta = _parse_meta(body)
        self._agent_call(
            self.agent.fetch(
                meta,
                peers,
                pex=_opt_bool(body, "pex", True),
                upload=_opt_bool(body, "upload", True),
                sha256=sha256.lower() if sha256 else None,
            )
        )
        return {"infohash": meta.hexhash}

    def post_link(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - set(LINK_FIELDS)
        if unknown:
            raise HttpError(400, f"unknown link field(s): {', '.join(sorted(unknown))}")
        return self._agent_sync(lambda: self.link.update(**body))

    def post_peers(self, body: dict[str, Any]) -> dict[str, Any]:
        peers = [parse_hostport(p) for p in _str_list(body, "peers")]
        infohash = body.get("infohash")
        if infohash is not None and (
            not isinstance(infohash, str) or not re.match(r"^[0-9a-fA-F]{40}$", infohash)
        ):
            raise HttpError(400, "infohash must be 40 hex digits")
        ih = infohash.lower() if infohash else None
        return {"added": self._agent_sync(lambda: self.agent.add_peers(peers, ih))}

    def post_block(self, body: dict[str, Any]) -> dict[str, Any]:
        nodes = set(_str_list(body, "nodes"))
        addrs = set(_str_list(body, "addrs"))
        return self._agent_sync(lambda: self.link.set_blocklist(nodes, addrs))

    def post_stop(self, _: dict[str, Any]) -> dict[str, Any]:
        assert self._loop is not None
        if self.on_stop is not None:
            self._loop.call_soon_threadsafe(self.on_stop)
        return {"stopping": True}

    def _agent_call(self, coro: Awaitable[Any]) -> Any:
        async def run() -> Any:
            return await coro

        try:
            return self.call(run())
        except (ValueError, metainfo.MetainfoError) as exc:
            raise HttpError(400, str(exc)) from exc

    def _agent_sync(self, fn: Callable[[], T]) -> T:
        try:
            return self.call_sync(fn)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from exc


ROUTES: dict[tuple[str, str], tuple[str, bool]] = {
    # (method, path) -> (ControlServer method, needs the token)
    ("GET", "/status"): ("get_status", False),
    ("POST", "/share"): ("post_share", True),
    ("POST", "/fetch"): ("post_fetch", True),
    ("POST", "/link"): ("post_link", True),
    ("POST", "/peers"): ("post_peers", True),
    ("POST", "/block"): ("post_block", True),
    ("POST", "/stop"): ("post_stop", True),
}
PATHS = {path for _, path in ROUTES} | {"/metrics"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "meshbed-peer"
    timeout = REQUEST_TIMEOUT  # a slow or half-sent request frees its worker
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK
    # add 40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    timeout = 120  # close idle keep-alive connections (one thread each)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        # Quiet access log: request lines at debug only (never headers, so never the token).
        log.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        control = self.server.control
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            if method == "GET" and path == "/metrics":
                # Collect in the loop (the engine's collector reads live state), format here
                # so the loop is not held up by the text rendering.
                collected = control.call_sync(lambda: list(control.registry.collect()))
                data = generate_latest(_Collected(collected))  # type: ignore[arg-type]
                if "gzip" in (self.headers.get("Accept-Encoding") or ""):  # Prometheus asks
                    self._send(200, gzip.compress(data, compresslevel=1), CONTENT_TYPE_LATEST,
                               encoding="gzip")
                else:
                    self._send(200, data, CONTENT_TYPE_LATEST)
                return
            route = ROUTES.get((method, path))
            if route is None:
                raise HttpError(405 if path in PATHS else 404, f"no {method} {path}")
            name, mutating = route
            if mutating and not control.authorized(self.headers.get("Authorization")):
                raise HttpError(401, "missing or wrong bearer token")
            body = self._read_json() if method == "POST" else {}
            if name == "get_status" and getattr(control.agent, "access", "open") == "mesh" \
                    and not control.authorized(self.headers.get("Authorization")):
                name = "get_public_status"  # access: mesh: what is seeded is not public
            result = getattr(control, name)(body)
            self._send_json(200, result)
        except HttpError as exc:
            if exc.status >= 500:
                log.error("%s %s: %s", method, path, exc.message)
            self._send_json(exc.status, {"error": exc.message})
        except Exception as exc:  # noqa: BLE001 - answer 500 and keep serving
            log.exception("%s %s failed", method, path)
            self._send_json(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

    def _read_json(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "send a Content-Length, not a chunked body")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            self.close_connection = True
            raise HttpError(400, "bad Content-Length") from exc
        if length < 0:
            self.close_connection = True
            raise HttpError(400, "bad Content-Length")
        if length > MAX_BODY:
            self.close_connection = True
            if length <= DRAIN_LIMIT:  # let the client finish sending so it reads our answer
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
            raise HttpError(413, f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise HttpError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"bad JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        return body

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _send(
        self, status: int, data: bytes, content_type: str, encoding: Optional[str] = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
