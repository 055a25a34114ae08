"""Hostile peers on raw sockets (tests/reliability/rawpeer.py) against real agent processes
on 127.0.0.1, one per row of issue 14: each test checks that the honest fetch completes and
verifies, that no honest node is banned, and (where the row is about memory) a budget."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peerproc import AgentProc, wait_for
from rawpeer import RawPeer, addr_of
from support import MiB, file_sha256, metric_sum

from peer import extensions as ext
from peer import wire
from peer.core.admission import MAX_UNPROVEN_PER_IP
from peer.core.bans import MAX_VIOLATIONS
from peer.core.peering import PEX_PER_MINUTE

pytestmark = pytest.mark.timeout(120)

SIZE = 8 * MiB
PIECE = 256 * 1024
RSS_BUDGET = 96 * MiB  # an agent's peak RSS under the request flood (237 MB before)


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.kill()


@pytest.fixture
def raws() -> Iterator[list[RawPeer]]:
    opened: list[RawPeer] = []
    yield opened
    for r in opened:
        r.close()


def _swarm(tmp: Path, agents: list[AgentProc], up: str = "16mbit",
           extra: tuple[str, ...] = ()) -> tuple[AgentProc, AgentProc, dict[str, Any]]:
    seeder = AgentProc(tmp, "seeders-0", extra=["--up", up, *extra])
    agents.append(seeder)
    seeder.start()
    leecher = AgentProc(tmp, "leechers-0", extra=list(extra))
    agents.append(leecher)
    leecher.start()
    shared = seeder.share_synthetic("blob", SIZE, seed=3, piece_length=PIECE)
    return seeder, leecher, shared


def _fetch(leecher: AgentProc, seeder: AgentProc, shared: dict[str, Any]) -> None:
    leecher.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [seeder.wire],
                                  "sha256": shared["sha256"]})


def _honest_outcome(leecher: AgentProc, seeder: AgentProc, shared: dict[str, Any]) -> dict[str, Any]:
    """The fetch completed with the right bytes, all of them credited to the proven seeder,
    and the seeder is banned neither by name nor by address."""
    ih = shared["infohash"]
    t = leecher.wait_complete(ih, 90)
    assert t["verified"] is True and t["have"] == t["pieces"], t
    assert file_sha256(leecher.data_dir / "torrents" / ih / "blob") == shared["sha256"]
    assert t["redownloaded"] == 0, t
    assert t["bytes_from"].get("seeders-0", 0) >= SIZE - 2 * PIECE, t["bytes_from"]
    banned = leecher.status()["banned"]
    assert "seeders-0" not in banned["nodes"] and seeder.wire not in banned["addrs"], banned
    return t


def _banned_total(a: AgentProc) -> float:
    return metric_sum(a.call("GET", "/metrics")[1], "meshbed_banned_peers_total")


def test_a_claimed_name_and_copied_peer_id_steer_nothing(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 1 + 7: an impostor with the seeder's name, its peer_id and a made-up proof sends
    unrequested junk for every piece: nothing is merged, nobody honest is banned."""
    seeder, leecher, shared = _swarm(tmp_path, agents, up="8mbit")
    ih = bytes.fromhex(shared["infohash"])
    probe = RawPeer(seeder.wire, ih)
    seeder_id = probe.theirs.peer_id  # public: any peer learns it from the handshake
    probe.close()
    _fetch(leecher, seeder, shared)
    junk = os.urandom(PIECE)
    for k in range(4):  # the seeder's peer_id (refused or cut), then its own ones (accepted)
        r = RawPeer(leecher.wire, ih, peer_id=seeder_id if k < 2 else None)
        raws.append(r)
        r.send(wire.HaveAll())
        r.hello(node="seeders-0", port=addr_of(seeder.wire)[1], proof=os.urandom(32))
        r.send(*(wire.Piece(i, 0, junk) for i in range(SIZE // PIECE)))  # never asked for
        r.read(0.5)
    t = _honest_outcome(leecher, seeder, shared)
    assert t["rejected"].get("hash_mismatch", 0) == 0, t["rejected"]
    assert t["wasted"] >= PIECE, t  # the junk was counted and dropped


def test_a_corrupt_peer_is_banned_once_however_often_it_returns(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 14 + 6: a peer answering requests with junk, reconnecting with the same peer_id,
    counts as one ban; after the ban its connections end at its handshake."""
    seeder, leecher, shared = _swarm(tmp_path, agents, up="4mbit")
    ih = bytes.fromhex(shared["infohash"])
    _fetch(leecher, seeder, shared)
    evil_id = b"-EV0001-corruptcorru"
    served = 0
    for _ in range(5):
        r = RawPeer(leecher.wire, ih, peer_id=evil_id)
        raws.append(r)
        r.send(wire.HaveAll())
        r.hello(port=40001)
        r.send(wire.Unchoke())
        end = time.monotonic() + 3.0
        while time.monotonic() < end and not r.closed_by_them:
            for m in r.read(0.2):
                if isinstance(m, wire.Request):
                    r.send(wire.Piece(m.index, m.begin, os.urandom(m.length)))
                    served += 1
    assert served >= 1, "the corrupt peer was never asked for anything"
    _honest_outcome(leecher, seeder, shared)
    assert _banned_total(leecher) == 1
    late = RawPeer(leecher.wire, ih, peer_id=evil_id)
    raws.append(late)
    late.hello(port=40001)
    assert late.is_closed(5.0), "a banned peer got a connection again"


def test_protocol_violations_from_incoming_peers_end_in_a_ban(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 6: violations were keyed by ip:ephemeral-port and never added up."""
    seeder, leecher, shared = _swarm(tmp_path, agents)
    ih = bytes.fromhex(shared["infohash"])
    _fetch(leecher, seeder, shared)
    rude_id = b"-EV0001-violatorviol"
    for _ in range(MAX_VIOLATIONS):
        r = RawPeer(leecher.wire, ih, peer_id=rude_id)
        raws.append(r)
        r.hello()
        r.send(wire.Have(1 << 30))  # no such piece
        assert r.is_closed(5.0)
    assert _banned_total(leecher) == 1
    _honest_outcome(leecher, seeder, shared)


def test_idle_connections_cannot_hold_the_slots(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 3: 64 handshaken idle connections (4 loopback IPs, 16 each: the per-address cap)
    fill the seeder's slots; the honest leecher still gets in and completes."""
    seeder, leecher, shared = _swarm(tmp_path, agents)
    ih = bytes.fromhex(shared["infohash"])
    refused = 0
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        for _ in range(MAX_UNPROVEN_PER_IP + 2):
            r = RawPeer(seeder.wire, ih, source_ip=ip)
            raws.append(r)
            r.hello(port=1)
    for r in raws:  # beyond the per-address cap: refused
        refused += r.is_closed(0.05)
    assert refused >= 4 * 2, refused
    _fetch(leecher, seeder, shared)
    _honest_outcome(leecher, seeder, shared)


def test_peers_that_flood_requests_and_never_read_stay_within_the_memory_budget(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 4: ten connections flood requests and never read; the seeder's send queues share
    one budget, so its peak RSS stays under RSS_BUDGET while the honest fetch completes."""
    seeder, leecher, shared = _swarm(tmp_path, agents)
    ih = bytes.fromhex(shared["infohash"])
    floods = []
    for _ in range(10):
        r = RawPeer(seeder.wire, ih)
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raws.append(r)
        r.send(wire.Interested())
        floods.append(r)
    reqs = b"".join(wire.encode(wire.Request(i % (SIZE // PIECE), (i * 16384) % PIECE, 16384))
                    for i in range(200))
    _fetch(leecher, seeder, shared)
    end = time.monotonic() + 8.0
    while time.monotonic() < end and floods:
        for r in list(floods):
            try:
                r.sock.settimeout(0.05)
                r.sock.send(reqs)
            except socket.timeout:
                continue
            except OSError:
                floods.remove(r)  # cut by the seeder
    _honest_outcome(leecher, seeder, shared)
    peak = _vm_hwm(seeder.pid)
    assert peak < RSS_BUDGET, f"seeder peak RSS {peak / MiB:.0f} MiB"


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_pex_lists_are_filtered_and_rationed(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 5: our own ports and unroutable addresses are never taken from PEX; one source
    gets at most PEX_PER_MINUTE new addresses a minute."""
    seeder, leecher, shared = _swarm(tmp_path, agents)
    ih = bytes.fromhex(shared["infohash"])
    _fetch(leecher, seeder, shared)
    r = RawPeer(leecher.wire, ih)
    raws.append(r)
    r.hello(port=40002)
    own = [addr_of(leecher.api), addr_of(leecher.wire), ("0.0.0.0", 80), ("224.0.0.1", 80),
           ("255.255.255.255", 80)]
    r.send(wire.Extended(ext.UT_PEX_ID, ext.encode_pex(own, [])))
    r.send(wire.KeepAlive())
    r.read(0.5)
    assert leecher.known(shared["infohash"])["known"]["pex"] == 0
    for k in range(10):
        addrs = [(f"127.0.{k + 1}.{j + 1}", 7000 + j) for j in range(200)]
        r.send(wire.Extended(ext.UT_PEX_ID, ext.encode_pex(addrs, [])))
    wait_for(lambda: leecher.known(shared["infohash"])["known"]["pex"] == PEX_PER_MINUTE, 10,
             "the PEX ration to be taken", 0.2)
    r.read(0.5)
    assert leecher.known(shared["infohash"])["known"]["pex"] == PEX_PER_MINUTE
    _honest_outcome(leecher, seeder, shared)


def test_access_mesh_serves_members_only(
    tmp_path: Path, agents: list[AgentProc], raws: list[RawPeer]
) -> None:
    """Row 2: with access mesh a stranger gets no data and /status lists no content without
    the token; proven members (same mesh key) fetch as usual."""
    seeder, leecher, shared = _swarm(tmp_path, agents, extra=("--access", "mesh"))
    ih = bytes.fromhex(shared["infohash"])
    code, public = seeder.call("GET", "/status", token=None)
    assert code == 200 and "torrents" not in public and public["node"] == "seeders-0", public
    assert "torrents" in seeder.status()
    stranger = RawPeer(seeder.wire, ih)
    raws.append(stranger)
    stranger.hello(node="leechers-0", port=1)
    stranger.send(wire.Interested(), wire.Request(0, 0, 16384))
    assert stranger.is_closed(5.0)
    _fetch(leecher, seeder, shared)
    _honest_outcome(leecher, seeder, shared)
