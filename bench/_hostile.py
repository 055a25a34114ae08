"""Hostile peers for bench/soak.py --hostile K: raw-socket attackers (the reliability suite's
tests/reliability/rawpeer.py) that pick a live agent and one of its torrents, attack for a
few seconds, and start over until the soak ends. Attacker i plays kind i mod len(KINDS), so
K >= len(KINDS) runs every kind at once."""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

from rawpeer import RawPeer, addr_of  # noqa: E402

from peer import extensions as ext  # noqa: E402
from peer import wire  # noqa: E402

Target = tuple[str, str, bytes, int]  # node, wire address, infohash, pieces
ATTACK_SECONDS = 4.0


def _impostor(t: Target, names: list[str], rng: random.Random) -> None:
    """Claims another node's name (and that node's peer_id), sends unrequested junk."""
    node, addr, ih, n = t
    victim = rng.choice([x for x in names if x != node] or names)
    r = RawPeer(addr, ih)
    try:
        r.send(wire.HaveAll())
        r.hello(node=victim, port=addr_of(addr)[1], proof=os.urandom(32))
        junk = os.urandom(16384)
        r.send(*(wire.Piece(i, 0, junk) for i in range(min(n, 64))))
        r.read(ATTACK_SECONDS)
    finally:
        r.close()


def _corrupt(t: Target, names: list[str], rng: random.Random) -> None:
    """Claims everything, answers requests with junk (same peer_id every time)."""
    _node, addr, ih, _n = t
    r = RawPeer(addr, ih, peer_id=b"-EV0001-corrupt-" + bytes([65 + rng.randrange(4)]) * 4)
    try:
        r.send(wire.HaveAll())
        r.hello(port=40001)
        r.send(wire.Unchoke())
        end = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < end and not r.closed_by_them:
            for m in r.read(0.2):
                if isinstance(m, wire.Request):
                    r.send(wire.Piece(m.index, m.begin, os.urandom(m.length)))
    finally:
        r.close()


def _violator(t: Target, names: list[str], rng: random.Random) -> None:
    """Breaks the protocol, reconnects, breaks it again."""
    _node, addr, ih, _n = t
    for _ in range(3):
        r = RawPeer(addr, ih, peer_id=b"-EV0001-violator1234")
        try:
            r.hello()
            r.send(wire.Have(1 << 30))
            r.is_closed(1.0)
        finally:
            r.close()


def _idler(t: Target, names: list[str], rng: random.Random) -> None:
    """Holds 20 handshaken connections that never say anything."""
    _node, addr, ih, _n = t
    held = []
    try:
        for _ in range(20):
            r = RawPeer(addr, ih)
            held.append(r)
            r.hello(port=1)
        time.sleep(ATTACK_SECONDS)
    finally:
        for r in held:
            r.close()


def _flooder(t: Target, names: list[str], rng: random.Random) -> None:
    """Floods requests and never reads."""
    _node, addr, ih, n = t
    r = RawPeer(addr, ih)
    try:
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        r.send(wire.Interested())
        reqs = b"".join(wire.encode(wire.Request(i % n, 0, 16384)) for i in range(500))
        end = time.monotonic() + ATTACK_SECONDS
        r.sock.settimeout(0.1)
        while time.monotonic() < end:
            try:
                r.sock.send(reqs)
            except socket.timeout:
                continue
            except OSError:
                break
    finally:
        r.close()


def _pex_spammer(t: Target, names: list[str], rng: random.Random) -> None:
    """PEX lists of made-up and forbidden addresses."""
    _node, addr, ih, _n = t
    r = RawPeer(addr, ih)
    try:
        r.hello(port=40002)
        host, port = addr_of(addr)
        for k in range(10):
            addrs = [(host, port), ("0.0.0.0", 80), ("224.0.0.1", 80)]
            addrs += [(f"127.{rng.randrange(1, 250)}.{k}.{j + 1}", 7000 + j) for j in range(150)]
            r.send(wire.Extended(ext.UT_PEX_ID, ext.encode_pex(addrs, [])))
        r.read(ATTACK_SECONDS)
    finally:
        r.close()


KINDS: dict[str, Callable[[Target, list[str], random.Random], None]] = {
    "impostor": _impostor, "corrupt": _corrupt, "violator": _violator, "idler": _idler,
    "flooder": _flooder, "pex": _pex_spammer,
}


class HostileCrowd:
    """K attacker threads; ``targets`` is refreshed by the soak from the agents' statuses."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self.rng = random.Random(seed)
        self.targets: list[Target] = []
        self.names: list[str] = []
        self.attacks: dict[str, int] = {kind: 0 for kind in KINDS}
        self.errors = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def update(self, statuses: dict[str, Optional[dict[str, Any]]]) -> None:
        targets: list[Target] = []
        for node, st in statuses.items():
            if not st or not st.get("wire"):
                continue
            for ih, t in (st.get("torrents") or {}).items():
                targets.append((node, st["wire"], bytes.fromhex(ih), int(t.get("pieces") or 1)))
        with self._lock:
            self.targets, self.names = targets, sorted(statuses)

    def start(self) -> None:
        kinds = list(KINDS)
        for i in range(self.k):
            th = threading.Thread(target=self._run, args=(kinds[i % len(kinds)], i), daemon=True)
            self._threads.append(th)
            th.start()

    def _run(self, kind: str, i: int) -> None:
        rng = random.Random(self.rng.random() + i)
        while not self._stop.is_set():
            with self._lock:
                target = rng.choice(self.targets) if self.targets else None
                names = list(self.names)
            if target is None:
                self._stop.wait(0.5)
                continue
            try:
                KINDS[kind](target, names, rng)
                self.attacks[kind] += 1
            except OSError:  # the agent closed on us, or was killed by the soak
                self.errors += 1
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=ATTACK_SECONDS + 10)
