"""Link emulation inside the agent: no root needed, so the local backend can model access links.

One :class:`LinkEmulator` per agent stands for the node's whole access link, shared by all
its connections:

- ``up_bps`` / ``down_bps``: token buckets (GCRA with queueing). Every caller reserves its bytes
  on a virtual clock in call order, so concurrent senders are served first-come first-served
  and one connection cannot starve the others. The burst tolerance is 10 ms of rate, at least
  32 KiB (two 16 KiB blocks), so measured rates stay within a few percent of the cap.
- ``latency_ms`` / ``jitter_ms``: one-way delay of the data *arriving* at this node, a delay
  line per connection: each message is handed to the engine at
  ``arrival + latency + U(-jitter, +jitter)``, never before the previous one (TCP is in
  order), so pipelined messages are not serialised (no stop-and-wait). The engine reads a
  message, then calls :meth:`LinkEmulator.recv_gate` from the connection's reading task.
  Exact arrival times need :meth:`LinkEmulator.watch` (one call per connection, in that
  task): it timestamps the bytes as the transport feeds them to the StreamReader. Without
  it, arrival is estimated: a message read within 5 ms of the previous delivery counts as
  already buffered (same arrival as the burst), otherwise as arriving now; the estimate
  under-delays fast request/response exchanges on loopback. The round trip between two
  nodes is the sum of both nodes' latencies, as with netem on each node's interface.
- ``loss`` (fraction): a TCP-like penalty, not real drops. The incoming bytes are counted in
  1460-byte segments; each lost segment (drawn with geometric gaps) stalls that connection
  for one retransmission round trip, ``max(2 * latency, 10 ms)``.
- blocklist (partitions): node names and "ip" / "ip:port" entries; the engine asks
  :meth:`LinkEmulator.blocked` before connecting and on accept, and registers
  ``on_block_change`` to close open connections when the list changes.

With no caps, latency or loss both gates return at once (the 1 GiB loopback benchmark runs
through them).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import weakref
from collections import deque
from typing import Any, Callable, Optional

SEGMENT = 1460  # bytes of TCP payload per segment, for the loss model
MIN_BURST = 32 * 1024  # two 16 KiB blocks
BURST_SECONDS = 0.010  # burst tolerance: 10 ms of rate
BACK_TO_BACK = 0.005  # a read this soon after the previous delivery was already buffered
MIN_RETRANSMIT = 0.010  # floor of the loss penalty per lost segment

_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
LINK_FIELDS = ("up_bps", "down_bps", "latency_ms", "jitter_ms", "loss")


def parse_rate(text: str | int) -> int:
    """``"10mbit"`` -> 10_000_000 bits/s. Units bit, kbit, mbit, gbit (decimal); a plain
    number is bits/s. Raises ValueError with a one-line message."""
    if isinstance(text, bool):
        raise ValueError(f"bad rate {text!r}")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"rate must be positive, got {text}")
        return text
    m = _RATE_RE.match(str(text))
    if not m:
        raise ValueError(f"bad rate {text!r} (use e.g. 10mbit, 500kbit, 1gbit)")
    unit = m.group(2).lower() or "bit"
    if unit not in _RATE_UNITS:
        raise ValueError(f"bad rate unit {m.group(2)!r} in {text!r} (bit, kbit, mbit, gbit)")
    value = round(float(m.group(1)) * _RATE_UNITS[unit])
    if value <= 0:
        raise ValueError(f"rate must be positive, got {text!r}")
    return value


class TokenBucket:
    """Byte-rate limiter shared by many tasks: FIFO reservations on a virtual clock (GCRA).

    ``rate`` is bytes/s or None (unlimited). Changing the rate wakes every waiter so it
    re-reserves under the new rate (an uncapped link releases everyone at once).
    """

    def __init__(self, rate: Optional[float] = None) -> None:
        self.rate: Optional[float] = None
        self._tolerance = 0.0
        self._tat = 0.0  # theoretical arrival time of the next byte (loop clock)
        self._generation = 0
        self._sleepers: dict[asyncio.Future[None], None] = {}  # insertion order = FIFO
        self.set_rate(rate)

    def set_rate(self, rate: Optional[float]) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None")
        self.rate = float(rate) if rate is not None else None
        if self.rate is not None:
            self._tolerance = max(MIN_BURST, self.rate * BURST_SECONDS) / self.rate
        self._tat = 0.0
        self._generation += 1
        sleepers, self._sleepers = self._sleepers, {}
        for fut in sleepers:
            if not fut.done():
                fut.set_result(None)

    async def acquire(self, nbytes: int) -> None:
        """Wait until ``nbytes`` may pass."""
        if self.rate is None or nbytes <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            rate = self.rate
            if rate is None:
                return
            now = loop.time()
            self._tat = max(self._tat, now) + nbytes / rate
            wait = self._tat - self._tolerance - now
            if wait <= 0:
                return
            generation = self._generation
            await self._sleep(loop, wait)
            if generation == self._generation:
                return
            # The rate changed while we waited: reserve again under the new rate.

    async def _sleep(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        fut: asyncio.Future[None] = loop.create_future()
        self._sleepers[fut] = None
        handle = loop.call_later(seconds, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleepers.pop(fut, None)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _StreamClock:
    """Per reading task: arrival time of the current burst, time of the last delivery, and
    for a watched reader the arrival log: (bytes fed so far, loop time) per transport read."""

    __slots__ = ("arrival", "delivered", "reader", "fed", "log")

    def __init__(self) -> None:
        self.arrival = -math.inf
        self.delivered = -math.inf
        self.reader: Optional[asyncio.StreamReader] = None
        self.fed = 0
        self.log: deque[tuple[int, float]] = deque()

    def arrival_of_last_read(self, now: float) -> float:
        """When the last byte of the message just read from the watched reader arrived."""
        assert self.reader is not None
        end = self.fed - len(getattr(self.reader, "_buffer", b""))
        log = self.log
        while log and log[0][0] < end:
            log.popleft()
        return log[0][1] if log else now


def _rate_or_none(value: Any, name: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a rate in bits/s or null")
    if isinstance(value, str):
        return parse_rate(value)
    if value <= 0:
        raise ValueError(f"{name} must be positive or null")
    return int(value)


def _non_negative(value: Any, name: str, upper: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (upper is not None and v > upper):
        bound = f"0..{upper:g}" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


class LinkEmulator:
    """The node's access link (see the module docstring for the model)."""

    def __init__(
        self,
        up_bps: Optional[int] = None,
        down_bps: Optional[int] = None,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._up = TokenBucket()
        self._down = TokenBucket()
        self.up_bps: Optional[int] = None
        self.down_bps: Optional[int] = None
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.loss = 0.0
        self._recv_fast = True
        self._segments_to_loss = math.inf
        self._clocks: weakref.WeakKeyDictionary[asyncio.Task[Any], _StreamClock] = (
            weakref.WeakKeyDictionary()
        )
        self.blocked_nodes: frozenset[str] = frozenset()
        self.blocked_addrs: frozenset[str] = frozenset()
        self.on_block_change: Optional[Callable[[], None]] = None
        self.update(
            up_bps=up_bps, down_bps=down_bps, latency_ms=latency_ms, jitter_ms=jitter_ms, loss=loss
        )

    # --- configuration ------------------------------------------------------------------
    def update(self, **fields: Any) -> dict[str, Any]:
        """Change some of up_bps, down_bps (bits/s or None = uncapped), latency_ms, jitter_ms,
        loss (fraction 0..1); validate all before applying any. Returns :meth:`as_dict`."""
        unknown = set(fields) - set(LINK_FIELDS)
        if unknown:
            raise ValueError(f"unknown link field(s): {', '.join(sorted(unknown))}")
        new = self.as_dict()
        if "up_bps" in fields:
            new["up_bps"] = _rate_or_none(fields["up_bps"], "up_bps")
        if "down_bps" in fields:
            new["down_bps"] = _rate_or_none(fields["down_bps"], "down_bps")
        for name in ("latency_ms", "jitter_ms"):
            if name in fields:
                new[name] = _non_negative(fields[name], name, 600_000.0)
        if "loss" in fields:
            new["loss"] = _non_negative(fields["loss"], "loss", 1.0)
        if new["up_bps"] != self.up_bps:
            self.up_bps = new["up_bps"]
            self._up.set_rate(self.up_bps / 8 if self.up_bps else None)
        if new["down_bps"] != self.down_bps:
            self.down_bps = new["down_bps"]
            self._down.set_rate(self.down_bps / 8 if self.down_bps else None)
        self.latency_ms, self.jitter_ms = new["latency_ms"], new["jitter_ms"]
        if new["loss"] != self.loss:
            self.loss = new["loss"]
            self._segments_to_loss = self._draw_gap()
        self._recv_fast = (
            self.down_bps is None and not self.latency_ms and not self.jitter_ms and not self.loss
        )
        return self.as_dict()

    @property
    def passes_through(self) -> bool:
        """Reads need no gate: no receive rate, latency, jitter or loss to emulate."""
        return self._recv_fast

    def as_dict(self) -> dict[str, Any]:
        return {
            "up_bps": self.up_bps,
            "down_bps": self.down_bps,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "loss": self.loss,
        }

    # --- gates ----------------------------------------------------------------------------
    def watch(self, reader: asyncio.StreamReader) -> None:
        """Timestamp the bytes arriving on ``reader`` so :meth:`recv_gate` delays each message
        from its real arrival. Call once per connection from the task that reads it and
        calls recv_gate (optional: without it arrival is estimated)."""
        task = asyncio.current_task()
        buffer = getattr(reader, "_buffer", None)
        if task is None or buffer is None:
            return
        loop = asyncio.get_running_loop()
        clock = self._clocks.get(task)
        if clock is None:
            clock = self._clocks[task] = _StreamClock()
        clock.reader = reader
        clock.fed = len(buffer)  # already buffered: counts as arriving now
        clock.log.clear()
        if clock.fed:
            clock.log.append((clock.fed, loop.time()))
        feed = reader.feed_data
        link = self

        def feed_data(data: Any) -> None:
            if data:
                clock.fed += len(data)
                if not link._recv_fast:  # only log while delays are on: bounded
                    clock.log.append((clock.fed, loop.time()))
            feed(data)

        reader.feed_data = feed_data  # type: ignore[method-assign]

    async def send_gate(self, nbytes: int) -> None:
        """Wait until ``nbytes`` may be sent on the uplink (returns at once when uncapped)."""
        if self.up_bps is None:
            return
        await self._up.acquire(nbytes)

    async def recv_gate(self, nbytes: int) -> None:
        """Call after reading ``nbytes`` from a connection, before handling them: waits for
        the downlink bucket, then the emulated delay and loss penalty of this connection."""
        if self._recv_fast:
            return
        if self.down_bps is not None:
            await self._down.acquire(nbytes)
        if not (self.latency_ms or self.jitter_ms or self.loss):
            return
        task = asyncio.current_task()
        if task is None:
            return
        clock = self._clocks.get(task)
        if clock is None:
            clock = self._clocks[task] = _StreamClock()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if clock.reader is not None:
            clock.arrival = clock.arrival_of_last_read(now)
        elif now - clock.delivered > BACK_TO_BACK:
            clock.arrival = now  # the stream was idle: this message starts a new burst
        delay = self.latency_ms / 1000.0
        if self.jitter_ms:
            delay += self._rng.uniform(-self.jitter_ms, self.jitter_ms) / 1000.0
        deliver = max(clock.arrival + max(delay, 0.0), clock.delivered, now)
        lost = self._lost_segments(nbytes)
        if lost:
            deliver += lost * max(2 * self.latency_ms / 1000.0, MIN_RETRANSMIT)
        if deliver > now:
            await asyncio.sleep(deliver - now)
        clock.delivered = deliver if clock.reader is not None else loop.time()

    def _draw_gap(self) -> float:
        """Segments until the next lost one (geometric), inf without loss."""
        if self.loss <= 0:
            return math.inf
        if self.loss >= 1:
            return 1.0
        u = 1.0 - self._rng.random()  # (0, 1]
        return math.floor(math.log(u) / math.log1p(-self.loss)) + 1.0

    def _lost_segments(self, nbytes: int) -> int:
        if not self.loss:
            return 0
        segments = float(max(1, -(-nbytes // SEGMENT)))
        lost = 0
        while self._segments_to_loss <= segments and lost < 1_000_000:
            segments -= self._segments_to_loss
            lost += 1
            self._segments_to_loss = self._draw_gap()
        self._segments_to_loss -= segments
        return lost

    # --- blocklist ----------------------------------------------------------------------
    def set_blocklist(self, nodes: set[str], addrs: set[str]) -> dict[str, list[str]]:
        """Replace the blocklist (empty sets = heal); calls ``on_block_change``."""
        clean_nodes = frozenset(str(n) for n in nodes if str(n))
        clean_addrs = frozenset(_normalize_addr(a) for a in addrs)
        self.blocked_nodes, self.blocked_addrs = clean_nodes, clean_addrs
        if self.on_block_change is not None:
            self.on_block_change()
        return self.blocklist()

    def blocklist(self) -> dict[str, list[str]]:
        return {"nodes": sorted(self.blocked_nodes), "addrs": sorted(self.blocked_addrs)}

    def blocked(self, node: Optional[str], host: Optional[str], port: Optional[int]) -> bool:
        """Is traffic with this remote (meshbed node name if known, ip, port) cut?"""
        if not self.blocked_nodes and not self.blocked_addrs:
            return False
        if node and node in self.blocked_nodes:
            return True
        if host:
            h = host[1:-1] if host.startswith("[") else host
            if h in self.blocked_addrs:
                return True
            if port is not None and _join(h, port) in self.blocked_addrs:
                return True
        return False


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _normalize_addr(entry: str) -> str:
    """"ip" or "ip:port" (IPv6 as "[ip]:port" or bare "ip"); raises ValueError."""
    text = str(entry).strip()
    if not text:
        raise ValueError("empty address in blocklist")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad address {entry!r}")
        if not rest:
            return host
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise ValueError(f"bad address {entry!r}")
        return _join(host, int(rest[1:]))
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad address {entry!r} (use ip or ip:port)")
        return _join(host, int(port))
    return text
