"""Prometheus metrics of one agent, on a registry passed in.

Counters that happen at event time (rejections, protocol errors, bans, piece fetch
durations) are plain prometheus_client objects; everything that mirrors engine state is
read at scrape time by a custom collector, so the engine pays nothing between scrapes.
Labels: only ``content`` (torrent name), ``reason`` and ``copies``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from peer import __version__


def new_registry() -> CollectorRegistry:
    """A fresh registry for one agent's metrics, without `_created` series (they would
    double every counter; scrape size and time matter at hundreds of contents).
    prometheus_client's switch is process-wide: it is thrown where an agent's registry is
    built, not as a side effect of importing this module."""
    disable_created_metrics()
    return CollectorRegistry()


COPY_BUCKETS = ("0", "1", "2", "3", "4", "5-8", "9-16", "17+")
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def copies_bucket(n: int) -> str:
    if n <= 4:
        return str(max(n, 0))
    if n <= 8:
        return "5-8"
    if n <= 16:
        return "9-16"
    return "17+"


@dataclass
class ContentSnapshot:
    """What the collector needs from one torrent at scrape time."""

    content: str
    bytes_sent: int
    bytes_received: int
    pieces_held: int
    pieces_total: int
    connected_peers: int
    rarest_copies: Optional[int]
    completed_at: Optional[float]
    replication: dict[str, int] = field(default_factory=dict)
    wasted: int = 0  # payload bytes that added nothing (late end-game copies, unasked blocks)
    requests_rejected: int = 0  # requests over the queue limit (rejected or dropped)
    first_copies: int = 0  # bytes sent of pieces none of the node's peers held


class _StateCollector:
    def __init__(self) -> None:
        self.source: Callable[[], Iterable[ContentSnapshot]] = lambda: ()

    def describe(self) -> list[Metric]:
        return []  # dynamic: do not let the registry call collect() at register time

    def collect(self) -> Iterator[Metric]:
        snaps = list(self.source())
        lab = ["content"]
        sent = CounterMetricFamily("meshbed_bytes_sent", "Piece payload bytes sent", labels=lab)
        recv = CounterMetricFamily(
            "meshbed_bytes_received", "Piece payload bytes received", labels=lab
        )
        wasted = CounterMetricFamily(
            "meshbed_wasted_bytes",
            "Piece payload bytes received that added nothing (late end-game copies)", labels=lab,
        )
        first = CounterMetricFamily(
            "meshbed_first_copy_bytes",
            "Piece payload bytes sent of pieces no peer of this node held (first copies)",
            labels=lab,
        )
        rejected = CounterMetricFamily(
            "meshbed_requests_rejected",
            "Requests over the advertised queue limit (reqq), rejected (BEP 6) or dropped",
            labels=lab,
        )
        held = GaugeMetricFamily("meshbed_pieces_held", "Verified pieces held", labels=lab)
        total = GaugeMetricFamily("meshbed_content_pieces", "Pieces in the content", labels=lab)
        ratio = GaugeMetricFamily(
            "meshbed_completion_ratio", "Pieces held / pieces total", labels=lab
        )
        peers = GaugeMetricFamily("meshbed_connected_peers", "Connected peers", labels=lab)
        rarest = GaugeMetricFamily(
            "meshbed_rarest_piece_copies",
            "Copies of the rarest piece among connected peers (ours included)", labels=lab,
        )
        done = GaugeMetricFamily(
            "meshbed_completion_timestamp_seconds", "Unix time the content completed",
            labels=lab,
        )
        repl = GaugeMetricFamily(
            "meshbed_piece_replication", "Pieces with this many copies among peers seen",
            labels=["content", "copies"],
        )
        for s in snaps:
            c = [s.content]
            sent.add_metric(c, float(s.bytes_sent))
            recv.add_metric(c, float(s.bytes_received))
            wasted.add_metric(c, float(s.wasted))
            first.add_metric(c, float(s.first_copies))
            rejected.add_metric(c, float(s.requests_rejected))
            held.add_metric(c, float(s.pieces_held))
            total.add_metric(c, float(s.pieces_total))
            ratio.add_metric(c, s.pieces_held / s.pieces_total if s.pieces_total else 1.0)
            peers.add_metric(c, float(s.connected_peers))
            if s.rarest_copies is not None:
                rarest.add_metric(c, float(s.rarest_copies))
            if s.completed_at is not None:
                done.add_metric(c, s.completed_at)
            for bucket in COPY_BUCKETS:  # empty buckets are left out: absent = 0 chunks
                n = s.replication.get(bucket, 0)
                if n:
                    repl.add_metric([s.content, bucket], float(n))
        yield from (sent, recv, wasted, first, rejected, held, total, ratio, peers, rarest, done, repl)


# Every reason the peer package can emit (tests/unit/test_metric_reasons.py checks the
# sources against these): all start at 0 so dashboards have series before the first one.
REJECT_REASONS = ("hash_mismatch",)
PROTOCOL_ERROR_REASONS = (
    # handshake / framing (peer/wire.py, peer/agent.py)
    "bad_handshake", "wrong_infohash", "unknown_infohash", "frame_too_large", "unknown_id",
    "bad_length", "bad_bitfield",
    # extension payloads (peer/wire.py, peer/extensions.py)
    "bad_bencode", "bad_ext_handshake", "bad_pex", "bad_metadata",
    # message semantics (peer/connection.py, peer/torrent.py)
    "fast_not_negotiated", "bad_index", "bad_block", "bad_request", "request_too_large",
    "request_flood", "not_reading",
    # MSE/PE handshakes (peer/mse.py via peer/agent.py: "mse_" + MseError.reason)
    "mse_bad_crypto_select", "mse_bad_dh_key", "mse_bad_ia", "mse_bad_pad", "mse_bad_vc",
    "mse_late_data", "mse_no_common_crypto", "mse_no_sync", "mse_plain_handshake",
    "mse_plaintext_refused", "mse_unknown_infohash", "mse_other",
)
HANDSHAKE_METHODS = ("none", "plaintext", "rc4")
KNOWN_REJECT_REASONS = REJECT_REASONS  # old names, kept for importers
KNOWN_PROTOCOL_ERRORS = PROTOCOL_ERROR_REASONS


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry, node: str = "", group: str = "") -> None:
        self.registry = registry
        self.rejected_pieces = Counter(
            "meshbed_rejected_pieces_total", "Pieces rejected", ["reason"], registry=registry
        )
        self.protocol_errors = Counter(
            "meshbed_protocol_errors_total", "Connections dropped for protocol errors",
            ["reason"], registry=registry,
        )
        # known reasons start at 0, so dashboards have series before the first rejection
        for reason in REJECT_REASONS:
            self.rejected_pieces.labels(reason)
        for reason in PROTOCOL_ERROR_REASONS:
            self.protocol_errors.labels(reason)
        self.handshakes = Counter(
            "meshbed_handshakes_total",
            "Handshakes passed, by encryption: none (plain), plaintext or rc4 (MSE/PE)",
            ["crypto"], registry=registry,
        )
        for method in HANDSHAKE_METHODS:
            self.handshakes.labels(method)
        self.banned_peers = Counter(
            "meshbed_banned_peers_total", "Peers banned for bad data", registry=registry
        )
        self.piece_fetch_duration = Histogram(
            "meshbed_piece_fetch_duration_seconds", "From first request to verified piece",
            ["content"], buckets=FETCH_BUCKETS, registry=registry,
        )
        info = Gauge(
            "meshbed_agent_info", "Agent version (node/group/mesh come from the target labels)",
            ["version"], registry=registry,
        )
        info.labels(__version__).set(1)
        self._collector = _StateCollector()
        registry.register(self._collector)  # type: ignore[arg-type]

    def set_source(self, source: Callable[[], Iterable[ContentSnapshot]]) -> None:
        self._collector.source = source
