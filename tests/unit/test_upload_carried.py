"""What uploads carried (issue 12, "see where the time goes"): first copies counted by the
uploader's core, waste attributed to the peer that sent it, and the report's per-second
split and per-node totals."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import htmlreport
from orchestrator.report import carried, uploads, utilisation
from peer.core import PeerState
from tests.unit.core_pump import PIECE, Pump, connect, make_core


@pytest.mark.timeout(20)
def test_each_piece_is_a_first_copy_once_from_the_seeder_only() -> None:
    seed = make_core(8, True, "s")
    l1, l2 = make_core(8, False, "l1", seed=2), make_core(8, False, "l2", seed=3)
    connect(l1, seed)
    connect(l2, seed)
    connect(l2, l1)
    Pump(seed, l1, l2).run()
    assert l1.complete and l2.complete
    assert seed.uploaded == l1.bytes_from["s"] + l2.bytes_from["s"] > 8 * PIECE
    # whoever took a piece first from the seeder: its bytes, and only those, are first copies
    assert seed.uploaded_first == 8 * PIECE
    # the leechers always have the seeder among their peers: nothing they send is a first
    assert l1.uploaded_first == l2.uploaded_first == 0


@pytest.mark.timeout(10)
def test_a_piece_a_peer_holds_is_no_first_copy_and_the_first_taker_keeps_it() -> None:
    core = make_core(4, True, "s")
    a = PeerState(4, 0.0, peer_id=b"a" * 20, ip="10.0.0.2", port=1, outgoing=True)
    b = PeerState(4, 0.0, peer_id=b"b" * 20, ip="10.0.0.3", port=1, outgoing=True)
    for p in (a, b):
        core.peer_connected(p, 0.0)
    core.picker.peer_have(3)  # a peer of ours holds piece 3
    core.block_sent(a, 100, 1.0, 3)
    assert core.uploaded_first == 0
    core.block_sent(a, 100, 1.0, 0)  # nobody holds 0: first copy, to a
    core.block_sent(a, 50, 1.0, 0)  # more of it to a: still the first copy
    core.block_sent(b, 100, 1.0, 0)  # the same piece to b: a second copy
    core.block_sent(b, 100, 1.0)  # no index (a driver that does not say): not classified
    assert core.uploaded_first == 150 and core.uploaded == 450


@pytest.mark.timeout(10)
def test_waste_is_attributed_to_the_peer_that_sent_it() -> None:
    core = make_core(4, False, "l")
    p = PeerState(4, 0.0, peer_id=b"p" * 20, ip="10.0.0.2", port=1, outgoing=True)
    core.peer_connected(p, 0.0)
    core.block(p, 1, 0, 16384, None, 1.0)  # never asked for: junk
    assert core.wasted == 16384 and core.wasted_from == {p.label: 16384}


def _row(t: float, node: str, up: int, first: int, wasted: int = 0,
         wasted_from: dict[str, int] | None = None) -> dict[str, Any]:
    return {"t": t, "node": node, "up": True, "contents": {"m": {
        "uploaded": up, "first": first, "wasted": wasted, "wasted_from": wasted_from or {}}}}


def test_carried_splits_utilisation_into_first_copies_further_copies_and_waste() -> None:
    cap = 8_000  # bits/s: 1,000 bytes/s each
    samples = []
    for t in range(5):  # s uploads 1,000 B/s, all first copies; l uploads 500 B/s of copies,
        # 100 B/s of which its receiver drops
        samples.append(_row(float(t), "s", 1000 * t, 1000 * t))
        samples.append(_row(float(t), "l", 500 * t, 0, wasted=100 * t, wasted_from={"l": 100 * t}))
    up = {"s": cap, "l": cap}
    used = utilisation(samples, "m", up)
    split = carried(samples, "m", up, used)
    assert used[1:] == [0.75] * 4  # 1,500 of 2,000 B/s
    assert split["first"][1:] == [0.5] * 4
    assert split["waste"][1:] == [0.05] * 4
    assert split["copies"][1:] == [0.2] * 4
    assert carried(samples, "m", {"s": None, "l": cap}, []) == {}  # uncapped: no capacity
    assert uploads(samples, "m") == {"l": {"bytes": 2000, "first": 0, "wasted": 400},
                                     "s": {"bytes": 4000, "first": 4000, "wasted": 0}}
    # a sender known by its address (it proved no node name) is named by the node there
    by_addr = [dict(r, contents={"m": dict(r["contents"]["m"], wasted_from={"10.0.0.7:6881": 9})})
               for r in samples]
    assert uploads(by_addr, "m", {"10.0.0.7": "s"})["s"]["wasted"] == 2 * 9


def test_the_html_report_draws_what_the_upload_carried() -> None:
    report = {"name": "d", "backend": "local", "ok": True,
              "contents": {"m": {"size": 1 << 20, "chunks": 4}},
              "distribution": {"m": {"seconds": 3.0, "lower_bound_seconds": 2.0, "fetchers": 1,
                                     "verified": 1, "utilisation": [0.0, 0.8, 0.9],
                                     "carried": {"first": [0.0, 0.5, 0.1], "copies": [0.0, 0.3, 0.7],
                                                 "waste": [0.0, 0.0, 0.1]}}},
              "nodes": {}}
    page = htmlreport.render(report, [])
    for name in ("utilisation", "first copies", "further copies", "waste"):
        assert f'data-name="{name}"' in page, name
