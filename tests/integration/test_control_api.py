"""The control API in-process over real HTTP, on a real Agent in a background event loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import socket
import threading
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from peer import metainfo
from peer.agent import Agent
from peer.control import (
    MAX_WORKERS,
    ControlServer,
    HttpError,
    json_depth,
    parse_hostport,
    resolve_inside,
)
from peer.shaping import LinkEmulator
from tests.peerproc import http, wait_for

pytestmark = pytest.mark.timeout(120)
TOKEN = "tok-123"
T = TypeVar("T")


class Harness:
    """An agent + control server running in a loop on a background thread."""

    def __init__(self, data_dir: Path, token: str | None = TOKEN, node: str = "n-0") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.registry = CollectorRegistry()
        self.link = LinkEmulator()
        self.stopped = threading.Event()
        self.data_dir = data_dir

        async def setup() -> tuple[Agent, ControlServer]:
            agent = Agent(data_dir=data_dir, registry=self.registry, link=self.link,
                          listen_host="127.0.0.1", listen_port=0, node=node, group="n")
            await agent.start()
            control = ControlServer(agent, self.link, self.registry, data_dir=data_dir,
                                    token=token, on_stop=self.stopped.set)
            control.start()
            return agent, control

        self.agent, self.control = self.run(setup())
        self.url = f"http://{self.control.api}"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def post(self, path: str, body: Any = None, token: str | None = TOKEN,
             raw: bytes | None = None) -> tuple[int, Any]:
        return http("POST", self.url + path, body, token=token, raw=raw)

    def get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.url + path)

    def close(self) -> None:
        async def down() -> None:
            await self.control.close()
            await self.agent.close()

        try:
            self.run(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "a")
    yield harness
    harness.close()


def test_status_shape(h: Harness) -> None:
    status, s = h.get("/status")
    assert status == 200
    for key in ("node", "group", "mesh", "peer_id", "api", "wire", "pid", "uptime", "rate_up",
                "rate_down", "bytes_sent", "bytes_received", "link", "blocked", "torrents"):
        assert key in s, key
    assert s["api"] == h.control.api and s["node"] == "n-0"
    assert s["link"] == {"up_bps": None, "down_bps": None, "latency_ms": 0.0, "jitter_ms": 0.0,
                         "loss": 0.0}


def test_link_update_partial_and_validated(h: Harness) -> None:
    status, link = h.post("/link", {"up_bps": 10_000_000, "latency_ms": 20})
    assert status == 200 and link["up_bps"] == 10_000_000 and link["latency_ms"] == 20
    status, link = h.post("/link", {"loss": 0.02})
    assert link["up_bps"] == 10_000_000 and link["loss"] == 0.02  # absent = unchanged
    status, link = h.post("/link", {"up_bps": None})
    assert status == 200 and link["up_bps"] is None  # null = uncapped
    for bad in ({"loss": 5}, {"latency_ms": "soon"}, {"rate": 1}, {"down_bps": -3}):
        status, obj = h.post("/link", bad)
        assert status == 400 and "error" in obj, bad
    assert h.get("/status")[1]["link"]["loss"] == 0.02
    assert h.link.loss == 0.02


def test_block_replaces_and_heals(h: Harness) -> None:
    status, b = h.post("/block", {"nodes": ["x-1"], "addrs": ["10.1.2.3", "127.0.0.1:7000"]})
    assert status == 200 and b == {"nodes": ["x-1"], "addrs": ["10.1.2.3", "127.0.0.1:7000"]}
    assert h.get("/status")[1]["blocked"] == b
    assert h.link.blocked(None, "10.1.2.3", 1)
    assert h.post("/block", {"nodes": [], "addrs": []})[1] == {"nodes": [], "addrs": []}
    assert not h.link.blocked("x-1", "10.1.2.3", 1)
    assert h.post("/block", {"addrs": ["1.2.3.4:port"]})[0] == 400
    assert h.post("/block", {"nodes": "x-1"})[0] == 400


def test_share_synthetic_then_fetch_between_two_agents(h: Harness, tmp_path: Path) -> None:
    status, shared = h.post("/share", {"synthetic": {"name": "movie", "size": 1_000_000,
                                                     "seed": 7}, "piece_length": 32768})
    assert status == 200, shared
    meta = metainfo.parse(base64.b64decode(shared["metainfo"]))
    assert meta.hexhash == shared["infohash"] and meta.length == 1_000_000
    assert shared["pieces"] == meta.num_pieces == 31
    # Sharing the same content again is harmless.
    assert h.post("/share", {"synthetic": {"name": "movie", "size": 1_000_000, "seed": 7},
                             "piece_length": 32768})[1]["infohash"] == meta.hexhash

    other = Harness(tmp_path / "b", node="n-1")
    try:
        wire = h.get("/status")[1]["wire"]
        port = int(wire.rsplit(":", 1)[1])
        status, got = other.post("/fetch", {"metainfo": shared["metainfo"],
                                            "peers": [f"127.0.0.1:{port}"],
                                            "sha256": shared["sha256"]})
        assert status == 200 and got == {"infohash": meta.hexhash}

        def complete() -> bool:
            t = other.get("/status")[1]["torrents"].get(meta.hexhash)
            return bool(t and t["complete"] and t["verified"])

        wait_for(complete, 60, "the fetch to complete")
        t = other.get("/status")[1]["torrents"][meta.hexhash]
        assert t["sha256"] == shared["sha256"]
        assert t["bytes_from"], t
        status, text = other.get("/metrics")
        assert status == 200
        assert 'meshbed_pieces_held{content="movie"} 31.0' in text
        assert "meshbed_completion_ratio" in text
    finally:
        other.close()


def test_share_metainfo_plus_file(h: Harness) -> None:
    inbox = h.data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "paper.pdf").write_bytes(b"%PDF" + bytes(range(256)) * 300)
    meta = metainfo.create(inbox / "paper.pdf", piece_length=16384)
    body = {"metainfo": base64.b64encode(meta.to_torrent_bytes()).decode(),
            "file": "inbox/paper.pdf"}
    status, shared = h.post("/share", body)
    assert status == 200 and shared["infohash"] == meta.hexhash
    (inbox / "short.pdf").write_bytes(b"short")
    status, obj = h.post("/share", dict(body, file="inbox/short.pdf"))
    assert status == 400, obj
    tampered = bytearray((inbox / "paper.pdf").read_bytes())
    tampered[-1] ^= 1
    (inbox / "tampered.pdf").write_bytes(bytes(tampered))
    status, obj = h.post("/share", dict(body, file="inbox/tampered.pdf"))
    assert status == 400 and "piece hashes" in obj["error"], obj


def test_share_directory_with_trackers(h: Harness) -> None:
    album = h.data_dir / "album"
    (album / "cd2").mkdir(parents=True)
    (album / "01.wav").write_bytes(bytes(range(256)) * 500)
    (album / "cd2" / "02.wav").write_bytes(b"x" * 70000)
    tiers = [["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"]]
    status, shared = h.post("/share", {"file": "album", "trackers": tiers})
    assert status == 200, shared
    meta = metainfo.parse(base64.b64decode(shared["metainfo"]))
    assert meta.multi_file and meta.trackers == tuple(map(tuple, tiers))
    assert shared["size"] == 128000 + 70000
    assert {f.path for f in meta.files} == {("01.wav",), ("cd2", "02.wav")}
    for bad in ([["ftp://x"]], [[]], "http://x", [[5]]):
        status, obj = h.post("/share", {"file": "album", "trackers": bad})
        assert status == 400 and "trackers" in obj["error"], obj


def test_bad_requests(h: Harness) -> None:
    assert h.post("/share", {})[0] == 400
    assert h.post("/share", {"synthetic": {"name": "../x", "size": 10}})[0] == 400
    assert h.post("/share", {"synthetic": {"name": "ok", "size": -1}})[0] == 400
    assert h.post("/share", {"synthetic": {"name": "ok", "size": 100000},
                             "piece_length": 1000})[0] == 400
    assert h.post("/fetch", {"metainfo": "!!!", "peers": []})[0] == 400
    assert h.post("/fetch", {"metainfo": base64.b64encode(b"d4:spame").decode()})[0] == 400
    status, shared = h.post("/share", {"synthetic": {"name": "s", "size": 40000}})
    assert h.post("/fetch", {"metainfo": shared["metainfo"], "peers": ["nope"]})[0] == 400
    assert h.post("/fetch", {"metainfo": shared["metainfo"], "sha256": "xyz"})[0] == 400
    assert h.post("/fetch", {"metainfo": shared["metainfo"], "pex": "yes"})[0] == 400
    assert h.post("/peers", {"peers": ["127.0.0.1:0"]})[0] == 400
    assert h.post("/peers", {"peers": ["127.0.0.1:9"], "infohash": "zz"})[0] == 400
    status, obj = h.post("/peers", {"peers": ["127.0.0.1:9"], "infohash": shared["infohash"]})
    assert status == 200 and isinstance(obj["added"], int)
    assert h.post("/link", raw=b"\xff\xfe")[0] == 400
    assert h.post("/link", token=None)[0] == 401
    assert h.get("/nope")[0] == 404


def test_stop_calls_back(h: Harness) -> None:
    assert h.post("/stop", token="bad")[0] == 401
    assert not h.stopped.is_set()
    assert h.post("/stop") == (200, {"stopping": True})
    assert h.stopped.wait(5)


def test_no_token_configured(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "open", token=None)
    try:
        for path in ("/share", "/fetch", "/link", "/peers", "/block", "/stop"):
            assert harness.post(path, {}, token="")[0] == 401
            assert harness.post(path, {}, token=None)[0] == 401
    finally:
        harness.close()


def test_metrics_format_and_gzip(h: Harness) -> None:
    status, text = h.get("/metrics")
    assert status == 200
    assert "meshbed_agent_info" in text
    req = urllib.request.Request(h.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert "meshbed_agent_info" in gzip.decompress(resp.read()).decode()


def test_helpers(tmp_path: Path) -> None:
    assert parse_hostport("127.0.0.1:6881") == ("127.0.0.1", 6881)
    assert parse_hostport("[::1]:7000") == ("::1", 7000)
    for bad in ("127.0.0.1", ":1", "h:0", "h:99999", 5):
        with pytest.raises(HttpError):
            parse_hostport(bad)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f").write_bytes(b"x")
    assert resolve_inside(tmp_path, "in/f") == (tmp_path / "in" / "f").resolve()
    assert resolve_inside(tmp_path, "in") == (tmp_path / "in").resolve()  # multi-file
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "l").symlink_to(tmp_path / "in" / "f")
    for bad in ("/in/f", "../f", "in/../../f", "linked"):
        with pytest.raises(HttpError) as err:
            resolve_inside(tmp_path, bad)
        assert err.value.status == 400


# --- limits a hostile local client runs into (issue 14, rows 8-10 and 13) -----------------


def test_deeply_nested_json_is_refused_not_recursed(h: Harness) -> None:
    status, body = h.post("/share", raw=b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "nested deeper" in body["error"]
    assert json_depth(b'{"a": [1, {"b": "[[[[\\"]]"}]}') == 3  # brackets in strings don't count


def test_share_caps_piece_length_and_disk(h: Harness) -> None:
    status, body = h.post("/share", {"synthetic": {"name": "x", "size": 1000},
                                     "piece_length": 256 * 1024 * 1024})
    assert status == 400 and "piece_length" in body["error"]
    status, body = h.post("/share", {"synthetic": {"name": "huge", "size": 1 << 40}})
    assert status == 507 and "does not fit" in body["error"]
    assert sorted(p.name for p in (h.data_dir / "inbox").iterdir()) == []  # nothing left


def test_share_does_not_follow_a_planted_temp_symlink(h: Harness, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    inbox = h.data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "movie.tmp").symlink_to(victim)  # where the old code wrote its temp file
    status, _ = h.post("/share", {"synthetic": {"name": "movie", "size": 100_000}})
    assert status == 200
    assert victim.read_text() == "keep me"
    assert (inbox / "movie").stat().st_size == 100_000 and not (inbox / "movie").is_symlink()


def test_slow_half_sent_requests_get_a_bounded_worker_pool(h: Harness) -> None:
    host, port = h.control.api.rsplit(":", 1)
    before = threading.active_count()
    socks = []
    try:
        for _ in range(MAX_WORKERS + 40):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"GET /sta")  # never finished
            socks.append(s)
        refused = 0
        for s in socks[MAX_WORKERS:]:
            with contextlib.suppress(OSError):
                if s.recv(64).startswith(b"HTTP/1.1 503"):
                    refused += 1
        assert refused >= 30  # the excess is answered at once instead of getting a thread
        assert threading.active_count() - before <= MAX_WORKERS + 2
    finally:
        for s in socks:
            s.close()
    # The slow clients are gone: honest requests are served again.
    wait_for(lambda: h.get("/status")[0] == 200, 30, "/status to answer after the flood")
