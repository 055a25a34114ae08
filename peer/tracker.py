"""Tracker announces: HTTP (BEP 3, compact BEP 23, IPv6 peers BEP 7) and UDP (BEP 15).

Pure parts (codecs, the BEP 12 tier list, the announce schedule with an injected clock) are
separate from the thin asyncio transport (``http_announce``, ``udp_announce``) and the
``Announcer`` task that ties them together. Every decoder bounds its input and raises
``TrackerError`` (``reason`` is a short label for metrics) for anything malformed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import struct
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, Union

from peer.bencode import BencodeError, bdecode

__all__ = [
    "TrackerError", "TrackerFailure", "AnnounceRequest", "AnnounceResponse",
    "http_announce_url", "decode_http_response", "decode_compact", "udp_connect_request",
    "decode_udp_connect", "udp_announce_request", "decode_udp_announce", "TierList",
    "AnnounceSchedule", "http_announce", "udp_announce", "announce", "Announcer",
    "MAX_RESPONSE", "MAX_PEERS",
]

Addr = Tuple[str, int]
MAX_RESPONSE = 512 * 1024  # bytes of an HTTP body or UDP datagram we read at most
MAX_PEERS = 1000  # peers taken from one response
MIN_INTERVAL = 30.0  # seconds: floor on what a tracker may ask (protects it and us)
MAX_INTERVAL = 3600.0  # ceiling, so a bogus interval cannot silence us for days
DEFAULT_INTERVAL = 1800.0
UDP_MAGIC = 0x41727101980
EVENTS = {"": 0, "completed": 1, "started": 2, "stopped": 3}
_V4 = 6
_V6 = 18


class TrackerError(Exception):
    """Malformed response, transport failure or timeout."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class TrackerFailure(TrackerError):
    """The tracker answered with a "failure reason" (or a UDP error)."""

    def __init__(self, message: str) -> None:
        super().__init__("tracker_failure", message)
        self.message = message


@dataclass(frozen=True)
class AnnounceRequest:
    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = 0
    event: str = ""  # "", "started", "completed", "stopped"
    numwant: int = 50
    key: int = 0
    tracker_id: Optional[bytes] = None

    def __post_init__(self) -> None:
        if len(self.info_hash) != 20 or len(self.peer_id) != 20:
            raise ValueError("info_hash and peer_id must be 20 bytes")
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}")


@dataclass(frozen=True)
class AnnounceResponse:
    interval: float
    peers: List[Addr] = field(default_factory=list)
    min_interval: Optional[float] = None
    seeders: Optional[int] = None
    leechers: Optional[int] = None
    tracker_id: Optional[bytes] = None
    warning: Optional[str] = None


# ---------------------------------------------------------------- HTTP codec


def http_announce_url(base: str, req: AnnounceRequest) -> str:
    q: List[Tuple[str, Union[str, bytes]]] = [("info_hash", req.info_hash), ("peer_id", req.peer_id), ("port", str(req.port)),
         ("uploaded", str(req.uploaded)), ("downloaded", str(req.downloaded)),
         ("left", str(req.left)), ("compact", "1"), ("numwant", str(req.numwant)),
         ("key", f"{req.key & 0xFFFFFFFF:08x}")]
    if req.event:
        q.append(("event", req.event))
    if req.tracker_id is not None:
        q.append(("trackerid", req.tracker_id))
    query = "&".join(
        k + "=" + (urllib.parse.quote_from_bytes(v, safe="") if isinstance(v, bytes)
                   else urllib.parse.quote(v, safe="")) for k, v in q)
    return base + ("&" if "?" in base else "?") + query


def decode_compact(raw: bytes, size: int) -> List[Addr]:
    """Compact peers: 6-byte IPv4 or 18-byte IPv6 entries; port 0 entries dropped."""
    if len(raw) % size:
        raise TrackerError("bad_peers", f"{len(raw)} bytes is not a multiple of {size}")
    family = socket.AF_INET if size == _V4 else socket.AF_INET6
    out: List[Addr] = []
    for off in range(0, min(len(raw), size * MAX_PEERS), size):
        port = int.from_bytes(raw[off + size - 2:off + size], "big")
        if port:
            out.append((socket.inet_ntop(family, raw[off:off + size - 2]), port))
    return out


def _dict_peers(raw: List[Any]) -> List[Addr]:
    out: List[Addr] = []
    for p in raw[:MAX_PEERS]:
        if not isinstance(p, dict):
            raise TrackerError("bad_peers", "peer entry is not a dict")
        ip, port = p.get(b"ip"), p.get(b"port")
        if not isinstance(ip, bytes) or not isinstance(port, int) or not 0 < port < 65536:
            raise TrackerError("bad_peers", "peer entry needs ip and port")
        try:
            out.append((str(ipaddress.ip_address(ip.decode("ascii"))), port))
        except (UnicodeDecodeError, ValueError):
            continue  # host names are not worth a DNS lookup here
    return out


def _interval(v: Any, what: str) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise TrackerError("bad_response", f"{what} must be a non-negative integer")
    return float(v)


def _count(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def decode_http_response(body: bytes) -> AnnounceResponse:
    if len(body) > MAX_RESPONSE:
        raise TrackerError("response_too_large", f"{len(body)} bytes")
    try:
        d = bdecode(body, max_depth=6)
    except BencodeError as e:
        raise TrackerError("bad_bencode", str(e)) from None
    if not isinstance(d, dict):
        raise TrackerError("bad_response", "not a dict")
    if b"failure reason" in d:
        reason = d[b"failure reason"]
        raise TrackerFailure(reason.decode("utf-8", "replace")[:200]
                             if isinstance(reason, bytes) else "unspecified")
    interval = _interval(d.get(b"interval"), "interval")
    if interval is None:
        raise TrackerError("bad_response", "missing interval")
    raw = d.get(b"peers", b"")
    if isinstance(raw, bytes):
        peers = decode_compact(raw, _V4)
    elif isinstance(raw, list):
        peers = _dict_peers(raw)
    else:
        raise TrackerError("bad_peers", "peers must be a string or a list")
    raw6 = d.get(b"peers6", b"")
    if not isinstance(raw6, bytes):
        raise TrackerError("bad_peers", "peers6 must be a string")
    peers += decode_compact(raw6, _V6)
    tid = d.get(b"tracker id")
    warning = d.get(b"warning message")
    return AnnounceResponse(
        interval=interval, peers=peers[:MAX_PEERS],
        min_interval=_interval(d.get(b"min interval"), "min interval"),
        seeders=_count(d.get(b"complete")), leechers=_count(d.get(b"incomplete")),
        tracker_id=tid if isinstance(tid, bytes) and len(tid) <= 256 else None,
        warning=warning.decode("utf-8", "replace")[:200] if isinstance(warning, bytes)
        else None)


# ---------------------------------------------------------------- UDP codec (BEP 15)

_CONNECT = struct.Struct(">QII")
_CONNECT_RESP = struct.Struct(">IIQ")
_ANNOUNCE = struct.Struct(">QII20s20sQQQIIIiH")
_ANNOUNCE_RESP = struct.Struct(">IIIII")
_HEAD = struct.Struct(">II")


def udp_connect_request(txid: int) -> bytes:
    return _CONNECT.pack(UDP_MAGIC, 0, txid)


def _udp_head(data: bytes, txid: int, action: int) -> None:
    if len(data) < 8:
        raise TrackerError("bad_udp", f"datagram of {len(data)} bytes")
    got_action, got_txid = _HEAD.unpack_from(data)
    if got_txid != txid:
        raise TrackerError("bad_udp", "transaction id mismatch")
    if got_action == 3:
        raise TrackerFailure(data[8:8 + 200].decode("utf-8", "replace"))
    if got_action != action:
        raise TrackerError("bad_udp", f"action {got_action}, expected {action}")


def decode_udp_connect(data: bytes, txid: int) -> int:
    _udp_head(data, txid, 0)
    if len(data) < _CONNECT_RESP.size:
        raise TrackerError("bad_udp", "short connect response")
    return int(_CONNECT_RESP.unpack_from(data)[2])


def udp_announce_request(conn_id: int, txid: int, req: AnnounceRequest) -> bytes:
    return _ANNOUNCE.pack(
        conn_id, 1, txid, req.info_hash, req.peer_id, req.downloaded, req.left, req.uploaded,
        EVENTS[req.event], 0, req.key & 0xFFFFFFFF, req.numwant, req.port)


def decode_udp_announce(data: bytes, txid: int, ipv6: bool) -> AnnounceResponse:
    """``ipv6``: the tracker was reached over IPv6, so peers are 18-byte entries."""
    if len(data) > MAX_RESPONSE:
        raise TrackerError("response_too_large", f"{len(data)} bytes")
    _udp_head(data, txid, 1)
    if len(data) < _ANNOUNCE_RESP.size:
        raise TrackerError("bad_udp", "short announce response")
    _, _, interval, leechers, seeders = _ANNOUNCE_RESP.unpack_from(data)
    rest = data[_ANNOUNCE_RESP.size:]
    size = _V6 if ipv6 else _V4
    rest = rest[:len(rest) - len(rest) % size]  # tolerate a ragged tail
    return AnnounceResponse(interval=float(interval), peers=decode_compact(rest, size),
                            seeders=seeders, leechers=leechers)


# ---------------------------------------------------------------- BEP 12 tiers + schedule


class Rng(Protocol):
    def shuffle(self, x: List[Any]) -> None: ...
    def getrandbits(self, k: int) -> int: ...


class TierList:
    """announce-list tiers: each tier shuffled once; trackers tried tier by tier, in order;
    one that answers moves to the front of its tier (BEP 12)."""

    def __init__(self, tiers: Sequence[Sequence[str]], rng: Rng) -> None:
        self.tiers: List[List[str]] = []
        for tier in tiers:
            urls = [u for u in dict.fromkeys(tier) if _scheme(u) in ("http", "https", "udp")]
            if urls:
                rng.shuffle(urls)
                self.tiers.append(urls)

    def __iter__(self) -> Any:
        return iter([u for tier in self.tiers for u in tier])

    def __bool__(self) -> bool:
        return bool(self.tiers)

    def succeeded(self, url: str) -> None:
        for tier in self.tiers:
            if url in tier:
                tier.remove(url)
                tier.insert(0, url)
                return


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


class AnnounceSchedule:
    """When to announce next and with which event; time comes from ``clock``."""

    def __init__(self, clock: Callable[[], float], retry_base: float = 15.0) -> None:
        self.clock = clock
        self.retry_base = retry_base
        self.event = "started"
        self.next_at = clock()
        self.failures = 0
        self.started_sent = False
        self.completed_pending = False

    def due(self) -> float:
        """Seconds until the next announce (<= 0: now)."""
        return self.next_at - self.clock()

    def completed(self) -> None:
        """Download finished: announce "completed" now (after "started" went out)."""
        self.completed_pending = True
        if self.event == "":
            self.event = "completed"
        self.next_at = self.clock()

    def now(self) -> None:
        self.next_at = self.clock()

    def answered(self, resp: AnnounceResponse, sent_event: str) -> None:
        if sent_event == "started":
            self.started_sent = True
        elif sent_event == "completed":
            self.completed_pending = False
        self.failures = 0
        if self.completed_pending and self.started_sent:
            self.event = "completed"  # finished while "started" was on its way
            self.next_at = self.clock()
            return
        self.event = ""
        interval = max(resp.interval, resp.min_interval or 0.0)
        self.next_at = self.clock() + min(max(interval, MIN_INTERVAL), MAX_INTERVAL)

    def failed(self) -> None:
        """Every tracker failed: retry after retry_base * 2^n (capped), same event."""
        self.failures += 1
        delay = self.retry_base * (1 << min(self.failures - 1, 6))
        self.next_at = self.clock() + min(delay, MAX_INTERVAL)


# ---------------------------------------------------------------- asyncio transport


async def http_announce(base: str, req: AnnounceRequest, timeout: float = 15.0
                        ) -> AnnounceResponse:
    url = urllib.parse.urlsplit(http_announce_url(base, req))
    tls = url.scheme == "https"
    host = url.hostname or ""
    port = url.port or (443 if tls else 80)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query

    async def run() -> bytes:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl.create_default_context() if tls else None)
        try:
            # HTTP/1.0: no chunked encoding, the body ends at EOF.
            writer.write(f"GET {target} HTTP/1.0\r\nHost: {url.netloc}\r\n"
                         "User-Agent: meshbed\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read(MAX_RESPONSE + 4096)
            while data and len(data) <= MAX_RESPONSE + 4096:
                more = await reader.read(MAX_RESPONSE + 4096 - len(data) + 1)
                if not more:
                    break
                data += more
            return data
        finally:
            writer.close()

    try:
        raw = await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        raise TrackerError("timeout", base) from None
    except OSError as e:
        raise TrackerError("connect_failed", f"{base}: {e}") from None
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise TrackerError("bad_http", "no end of headers")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/"):
        raise TrackerError("bad_http", "no status line")
    if status[1] != b"200":
        raise TrackerError("http_status", status[1].decode("ascii", "replace")[:3])
    return decode_http_response(body)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(16)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data[:MAX_RESPONSE])


async def udp_announce(base: str, req: AnnounceRequest, rng: Rng, *, timeout: float = 15.0,
                       tries: int = 3) -> AnnounceResponse:
    """BEP 15: connect, then announce; each step retried with timeout * 2^n."""
    url = urllib.parse.urlsplit(base)
    if not url.hostname or not url.port:
        raise TrackerError("bad_url", base)
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await loop.create_datagram_endpoint(
            _UdpClient, remote_addr=(url.hostname, url.port))
    except OSError as e:
        raise TrackerError("connect_failed", f"{base}: {e}") from None
    ipv6 = transport.get_extra_info("socket").family == socket.AF_INET6
    try:
        async def exchange(make: Callable[[int], bytes]) -> Tuple[bytes, int]:
            for n in range(tries):
                txid = rng.getrandbits(32)
                transport.sendto(make(txid))
                deadline = loop.time() + timeout * (1 << n)
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        data = await asyncio.wait_for(proto.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                    if len(data) >= 8 and _HEAD.unpack_from(data)[1] == txid:
                        return data, txid
            raise TrackerError("timeout", base)

        data, txid = await exchange(udp_connect_request)
        conn_id = decode_udp_connect(data, txid)
        data, txid = await exchange(lambda t: udp_announce_request(conn_id, t, req))
        return decode_udp_announce(data, txid, ipv6)
    finally:
        transport.close()


async def announce(url: str, req: AnnounceRequest, rng: Rng, timeout: float = 15.0
                   ) -> AnnounceResponse:
    scheme = _scheme(url)
    if scheme in ("http", "https"):
        return await http_announce(url, req, timeout)
    if scheme == "udp":
        return await udp_announce(url, req, rng, timeout=timeout)
    raise TrackerError("bad_url", f"unsupported tracker scheme in {url!r}")


# ---------------------------------------------------------------- announcer task


@dataclass
class TransferStats:
    uploaded: int = 0
    downloaded: int = 0
    left: int = 0


class Announcer:
    """Announces one torrent to its trackers until ``stop()``; peers go to ``on_peers``.

    ``stats()`` is read before each announce. Errors are counted per reason in ``errors``
    and never raised out of ``run()``."""

    def __init__(
        self, tiers: Sequence[Sequence[str]], info_hash: bytes, peer_id: bytes, port: int, *,
        stats: Callable[[], TransferStats], on_peers: Callable[[List[Addr]], None],
        rng: Rng, clock: Callable[[], float] = time.monotonic, timeout: float = 15.0,
        retry_base: float = 15.0, numwant: int = 50,
    ) -> None:
        self.trackers = TierList(tiers, rng)
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.port = port
        self.stats = stats
        self.on_peers = on_peers
        self.rng = rng
        self.timeout = timeout
        self.numwant = numwant
        self.key = rng.getrandbits(32)
        self.schedule = AnnounceSchedule(clock, retry_base)
        self.errors: Dict[str, int] = {}
        self.announces = 0
        self.last: Optional[AnnounceResponse] = None
        self._wake: Optional[asyncio.Event] = None  # made in run(): Python 3.9 binds loops
        self._stopping = False
        self._tracker_ids: Dict[str, bytes] = {}

    def completed(self) -> None:
        self.schedule.completed()
        if self._wake is not None:
            self._wake.set()

    def announce_now(self) -> None:
        """Ask for peers now (e.g. the swarm ran dry); the interval restarts from here."""
        self.schedule.now()
        if self._wake is not None:
            self._wake.set()

    def _request(self, url: str, event: str) -> AnnounceRequest:
        s = self.stats()
        return AnnounceRequest(
            self.info_hash, self.peer_id, self.port, s.uploaded, s.downloaded, s.left,
            event, 0 if event == "stopped" else self.numwant, self.key,
            self._tracker_ids.get(url))

    async def _once(self, event: str) -> Optional[AnnounceResponse]:
        for url in list(self.trackers):
            try:
                resp = await announce(url, self._request(url, event), self.rng, self.timeout)
            except TrackerError as e:
                self.errors[e.reason] = self.errors.get(e.reason, 0) + 1
                continue
            self.trackers.succeeded(url)
            if resp.tracker_id is not None:
                self._tracker_ids[url] = resp.tracker_id
            self.announces += 1
            return resp
        return None

    async def run(self) -> None:
        wake = self._wake = asyncio.Event()
        while not self._stopping and self.trackers:
            delay = self.schedule.due()
            if delay > 0:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                continue
            event = self.schedule.event
            resp = await self._once(event)
            if self._stopping:
                break
            if resp is None:
                self.schedule.failed()
                continue
            self.last = resp
            self.schedule.answered(resp, event)
            if resp.peers:
                self.on_peers(resp.peers)

    async def stop(self, timeout: float = 5.0) -> None:
        """Send "stopped" (if "started" went out), bounded by ``timeout``. The caller then
        cancels the ``run()`` task (it may be waiting on a tracker)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self.schedule.started_sent:
            try:
                await asyncio.wait_for(self._once("stopped"), timeout)
            except asyncio.TimeoutError:
                self.errors["timeout"] = self.errors.get("timeout", 0) + 1
