"""Tracker codecs, BEP 12 tiers and the announce schedule (pure logic, fake clock)."""

from __future__ import annotations

import random
import struct
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer import tracker as tr
from peer.bencode import bencode
from peer.tracker import (
    AnnounceRequest,
    AnnounceResponse,
    AnnounceSchedule,
    TierList,
    TrackerError,
    TrackerFailure,
)

REQ = AnnounceRequest(b"\x01" * 20, b"-MB0001-" + b"a" * 12, 6881, 1, 2, 3, "started")


def test_http_url_escapes_binary_and_keeps_base_query() -> None:
    url = tr.http_announce_url("http://t.example/announce?passkey=x", REQ)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["passkey"] == ["x"] and q["event"] == ["started"] and q["compact"] == ["1"]
    assert urllib.parse.unquote_to_bytes(url.split("info_hash=")[1].split("&")[0]) == b"\1" * 20


def test_http_compact_v4_v6_and_dict_peers() -> None:
    body = bencode({"interval": 900, "min interval": 60, "complete": 2, "incomplete": 5,
                    "peers": bytes([10, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0, 0]),
                    "peers6": bytes(15) + b"\x01" + b"\x00\x50"})
    r = tr.decode_http_response(body)
    assert r.peers == [("10.0.0.1", 6881), ("::1", 80)]  # port 0 dropped
    assert (r.interval, r.min_interval, r.seeders, r.leechers) == (900, 60, 2, 5)
    body = bencode({"interval": 5, "peers": [{"ip": b"1.2.3.4", "port": 7},
                                             {"ip": b"host.name", "port": 8}]})
    assert tr.decode_http_response(body).peers == [("1.2.3.4", 7)]


@pytest.mark.parametrize(("body", "reason"), [
    (bencode({"failure reason": "not whitelisted"}), "tracker_failure"),
    (b"d8:intervali", "bad_bencode"),
    (bencode({"peers": b""}), "bad_response"),
    (bencode({"interval": 1, "peers": b"12345"}), "bad_peers"),
    (bencode({"interval": -1}), "bad_response"),
    (b"x" * (tr.MAX_RESPONSE + 1), "response_too_large"),
])
def test_http_errors_are_typed(body: bytes, reason: str) -> None:
    with pytest.raises(TrackerError) as e:
        tr.decode_http_response(body)
    assert e.value.reason == reason


def test_udp_round_trip() -> None:
    req = tr.udp_connect_request(7)
    assert struct.unpack(">QII", req) == (tr.UDP_MAGIC, 0, 7)
    assert tr.decode_udp_connect(struct.pack(">IIQ", 0, 7, 99), 7) == 99
    ann = tr.udp_announce_request(99, 8, REQ)
    assert len(ann) == 98 and ann[-2:] == b"\x1a\xe1"
    resp = struct.pack(">IIIII", 1, 8, 120, 3, 4) + bytes([127, 0, 0, 1, 0, 80])
    r = tr.decode_udp_announce(resp, 8, ipv6=False)
    assert (r.interval, r.leechers, r.seeders, r.peers) == (120, 3, 4, [("127.0.0.1", 80)])
    with pytest.raises(TrackerFailure):
        tr.decode_udp_announce(struct.pack(">II", 3, 8) + b"go away", 8, ipv6=False)
    with pytest.raises(TrackerError):
        tr.decode_udp_announce(resp, 9, ipv6=False)


def test_tiers_keep_order_and_promote_success() -> None:
    tiers = TierList([["http://a", "http://b"], ["udp://c:1", "wss://x"]], random.Random(0))
    order = list(tiers)
    assert set(order[:2]) == {"http://a", "http://b"} and order[2:] == ["udp://c:1"]
    tiers.succeeded(order[1])
    assert list(tiers)[0] == order[1]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_schedule_honours_interval_and_events() -> None:
    clock = Clock()
    s = AnnounceSchedule(clock, retry_base=10)
    assert s.due() <= 0 and s.event == "started"
    s.failed()
    s.failed()
    assert s.due() == 20 and s.event == "started"  # backoff, event kept
    clock.t += 20
    s.answered(AnnounceResponse(interval=600, min_interval=900), "started")
    assert s.due() == 900 and s.event == ""  # min interval wins
    s.completed()
    assert s.due() <= 0 and s.event == "completed"
    s.answered(AnnounceResponse(interval=5), "completed")
    assert s.due() == tr.MIN_INTERVAL and s.event == ""  # floor on silly intervals
    s.answered(AnnounceResponse(interval=10**9), "")
    assert s.due() == tr.MAX_INTERVAL


def test_schedule_completed_during_started() -> None:
    s = AnnounceSchedule(Clock())
    s.completed()  # finished before "started" was answered
    assert s.event == "started"
    s.answered(AnnounceResponse(interval=60), "started")
    assert s.event == "completed" and s.due() <= 0


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_http_decoder_fuzz(body: bytes) -> None:
    try:
        tr.decode_http_response(body)
    except TrackerError:
        pass


@FUZZ
@given(st.dictionaries(st.sampled_from([b"interval", b"peers", b"peers6", b"min interval",
                                        b"complete", b"tracker id", b"failure reason"]),
                       st.integers(-5, 5) | st.binary(max_size=40)
                       | st.lists(st.dictionaries(st.sampled_from([b"ip", b"port"]),
                                                  st.integers(-1, 70000) | st.binary(max_size=20)),
                                  max_size=3)))
def test_http_decoder_fuzz_structured(d: dict) -> None:
    try:
        tr.decode_http_response(bencode(d))
    except TrackerError:
        pass


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_udp_decoder_fuzz(data: bytes, ipv6: bool) -> None:
    for txid in (0, struct.unpack(">I", (data + bytes(8))[4:8])[0]):
        try:
            tr.decode_udp_announce(data, txid, ipv6)
        except TrackerError:
            pass
        try:
            tr.decode_udp_connect(data, txid)
        except TrackerError:
            pass
