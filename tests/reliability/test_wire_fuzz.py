"""A live agent fed hostile bytes on its wire port: random streams, a valid handshake followed
by garbage, and well-framed messages with random fields. It must keep running, keep serving
its API and honest peers, and count what it rejected (meshbed_protocol_errors_total)."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer import wire
from tests.peerproc import AgentProc
from tests.reliability.support import metric_sum

pytestmark = pytest.mark.timeout(180)

@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProc, str, dict]]:
    root = tmp_path_factory.mktemp("wirefuzz")
    a = AgentProc(root, "seeders-0").start()
    try:
        shared = a.share_synthetic("blob", 256 * 1024 + 77, seed=9, piece_length=16384)
        yield a, shared["infohash"], shared
    finally:
        a.kill()


def _addr(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def _exchange(agent: AgentProc, data: bytes, wait: float = 1.0) -> None:
    """Send ``data``, then read whatever comes back until the agent closes (or ``wait``
    seconds pass: some hostile input rightly leaves the agent waiting for more)."""
    with socket.create_connection(_addr(agent.wire), timeout=5) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(wait)
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionError):
            pass


def _frame(msg_id: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, msg_id) + payload


FRAMES = st.one_of(
    st.builds(_frame, st.integers(0, 255), st.binary(max_size=40)),
    st.builds(lambda i, b, n: _frame(6, struct.pack(">III", i, b, n)),  # request
              st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(lambda i, b, d: _frame(7, struct.pack(">II", i, b) + d),  # piece
              st.integers(0, 40), st.integers(0, 2**20), st.binary(max_size=64)),
    st.builds(lambda n: struct.pack(">I", n), st.integers(0, 2**32 - 1)),  # bare length
    st.builds(lambda p: _frame(20, p), st.binary(max_size=60)),  # extended
    st.just(_frame(20, b"\x00d1:md6:ut_pexi1ee1:pi99999999999ee")),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["raw", "after_handshake", "frames"]), noise=st.binary(max_size=300),
       frames=st.lists(FRAMES, max_size=8))
def test_agent_survives_hostile_bytes(target: tuple[AgentProc, str, dict], kind: str,
                                      noise: bytes, frames: list[bytes]) -> None:
    agent, ih, _ = target
    hs = wire.encode_handshake(bytes.fromhex(ih), b"-FZ0001-" + os.urandom(12))
    if kind == "raw":
        data = noise
    elif kind == "after_handshake":
        data = hs + noise
    else:
        data = hs + b"".join(frames)
    _exchange(agent, data)
    assert agent.proc is not None and agent.proc.poll() is None, agent.logs()  # still running


def test_agent_still_serves_after_the_fuzz(
    tmp_path: Path, target: tuple[AgentProc, str, dict]
) -> None:
    agent, ih, shared = target
    # hostile bytes of its own (whether or not the fuzz ran before): a valid handshake, then a
    # frame longer than any allowed. The agent counts the error, then closes: waiting for the
    # close (not a fixed second) makes the count visible below however loaded the host is.
    hs = wire.encode_handshake(bytes.fromhex(ih), b"-FZ0001-" + os.urandom(12))
    _exchange(agent, hs + struct.pack(">I", 2**32 - 1), wait=30.0)
    assert agent.proc is not None and agent.proc.poll() is None, agent.logs()
    assert agent.call("GET", "/status")[0] == 200
    metrics = agent.call("GET", "/metrics")[1]
    assert metric_sum(metrics, "meshbed_protocol_errors_total") >= 1
    honest = AgentProc(tmp_path, "leechers-0").start()
    try:
        honest.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [agent.wire],
                                     "sha256": shared["sha256"]})
        t = honest.wait_complete(ih, 60)
        assert t["verified"] is True
    finally:
        honest.kill()


def test_control_api_answers_while_idle_clients_hold_connections(
    target: tuple[AgentProc, str, dict]
) -> None:
    """Slow or silent HTTP clients (half-sent headers, nothing at all) do not lock out the
    orchestrator's polls, and idle wire connections do not block the wire listener."""
    agent, ih, _ = target
    held: list[socket.socket] = []
    try:
        for i in range(40):
            s = socket.create_connection(_addr(agent.api if i % 2 else agent.wire), timeout=5)
            if i % 4 == 1:
                s.sendall(b"POST /fetch HTTP/1.1\r\nContent-Length: 100\r\n")  # never finished
            held.append(s)
        status, body = agent.call("GET", "/status", timeout=5)
        assert status == 200 and ih in body["torrents"]
        hs = wire.encode_handshake(bytes.fromhex(ih), b"-FZ0002-" + os.urandom(12))
        with socket.create_connection(_addr(agent.wire), timeout=5) as s:
            s.sendall(hs)
            answer = s.recv(68)
            assert answer[28:48] == bytes.fromhex(ih)
    finally:
        for s in held:
            s.close()
