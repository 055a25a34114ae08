"""The simulated network: max-min fair flows, in-order delivery, latency and loss."""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchestrator.model import Link
from orchestrator.simulate.clock import VirtualClock
from orchestrator.simulate.network import Network, Port

MB = 1_000_000


def make(n: int, links: list[Link]) -> tuple[VirtualClock, Network, list[Port]]:
    clock = VirtualClock()
    net = Network(clock)
    ports = [net.add_port(f"n{i}", random.Random(i)) for i in range(n)]
    for p, link in zip(ports, links):
        net.set_link(p, link)
    return clock, net, ports


def test_max_min_fair_share_gives_the_slack_of_a_slow_receiver_to_the_other() -> None:
    clock, net, (s, slow, fast) = make(3, [Link(up_bps=80 * MB), Link(down_bps=16 * MB), Link()])
    got: dict[str, float] = {}
    a, b = net.channel(s, slow), net.channel(s, fast)
    a.on_message = lambda _to, m: got.__setitem__("slow", clock.now)
    b.on_message = lambda _to, m: got.__setitem__("fast", clock.now)
    a.send("blk", 4 * MB)
    b.send("blk", 4 * MB)
    rates = sorted(f.rate for f in s.up_flows)
    assert rates == pytest.approx([2 * MB, 8 * MB])  # bytes/s: 16 mbit, the rest of 80 mbit
    clock.run(until=10.0)
    # fast: 4 MB at 8 MB/s = 0.5 s; then slow keeps 2 MB/s (its own cap): 0.5 + 3 MB / 2 MB/s
    assert got["fast"] == pytest.approx(0.5)
    assert got["slow"] == pytest.approx(2.0)
    assert s.up_used == pytest.approx(0.0, abs=1e-6)


def test_messages_arrive_in_order_after_latency_control_behind_data() -> None:
    clock, net, (a, b) = make(2, [Link(up_bps=8 * MB), Link(latency_ms=50)])
    seen: list[tuple[str, float]] = []
    ch = net.channel(a, b)
    ch.on_message = lambda _to, m: seen.append((m, round(clock.now, 6)))
    ch.send("block", 1 * MB)  # 1 s at 1 MB/s
    ch.send("have", 9)  # queued behind the block
    clock.run(until=5.0)
    assert seen == [("block", 1.05), ("have", 1.05)]


def test_loss_delays_delivery_by_retransmission_round_trips() -> None:
    def arrival(loss: float) -> float:
        clock, net, (a, b) = make(2, [Link(up_bps=8 * MB), Link(latency_ms=20, loss=loss)])
        out: list[float] = []
        ch = net.channel(a, b)
        ch.on_message = lambda _to, m: out.append(clock.now)
        ch.send("block", 1 * MB)
        clock.run(until=60.0)
        return out[0]

    clean, lossy = arrival(0.0), arrival(0.01)
    assert clean == pytest.approx(1.02)
    # ~685 segments at 1 %: several losses, each one retransmission round trip of 40 ms
    assert lossy >= clean + 0.04 and (lossy - clean) % 0.04 == pytest.approx(0.0, abs=1e-6)


def test_closing_a_channel_frees_its_share_at_once() -> None:
    clock, net, (s, r1, r2) = make(3, [Link(up_bps=16 * MB), Link(), Link()])
    c1, c2 = net.channel(s, r1), net.channel(s, r2)
    done: list[Any] = []
    c2.on_message = lambda _to, m: done.append(m)
    c1.send("x", 10 * MB)
    c2.send("y", 2 * MB)
    clock.run(until=0.5)
    c1.close()
    assert [f.rate for f in s.up_flows] == [pytest.approx(2 * MB)]
    clock.run(until=5.0)
    assert done == ["y"] and clock.now == 5.0
    # 0.5 s of both flows at 1 MB/s each, then the 1.5 MB left of "y": what was sent of "x" counts
    assert net.moved_now() == pytest.approx(0.5 * 2 * MB + 1.5 * MB)


def test_two_link_fill_matches_general_progressive_filling() -> None:
    """The fast re-share (a sender's upload and a receiver's download, water-filled) gives
    the rates of the general max-min algorithm, flows using both links included."""
    from orchestrator.simulate.network import Flow

    rng = random.Random(5)
    for case in range(300):
        links = [Link(up_bps=rng.choice([1, 5, 10, 50]) * MB, down_bps=rng.choice([2, 10, 50]) * MB)
                 for _ in range(8)]
        clock, net, ports = make(8, links)
        flows = []
        for _ in range(rng.randint(1, 14)):
            a, b = rng.sample(ports, 2)
            f = Flow(net.channel(a, b), "blk", 1 << 20)
            f.rate = rng.random() * 100_000  # others' rates held: leave their links part-used
            a.up_flows.append(f)
            b.down_flows.append(f)
            a.up_used += f.rate
            b.down_used += f.rate
            flows.append(f)
        src, dst = ports[case % 8], ports[(case * 3 + 1) % 8]
        chosen = list(dict.fromkeys(src.up_flows + dst.down_flows))
        if not chosen:
            continue
        rem: dict[int, float] = {}
        count: dict[int, int] = {}
        for f in chosen:
            for k, cap, used in ((f.ku, f.src.up, f.src.up_used), (f.kd, f.dst.down, f.dst.down_used)):
                rem[k] = rem.get(k, cap - used) + f.rate
                count[k] = count.get(k, 0) + 1
        central = [k for k, n in count.items() if n > 1]
        if len(central) > 2:
            continue
        Network._fill_general(chosen, dict(rem))
        want = [f.new for f in chosen]
        Network._fill_two(chosen, dict(rem), count, central)
        assert [f.new for f in chosen] == pytest.approx(want, rel=1e-9, abs=1e-6), case


def test_a_full_download_gives_the_room_of_an_ended_flow_to_its_other_flows() -> None:
    """(Partial re-share, as in big swarms.) Two senders into a receiver whose download
    (2 MB/s) limits both flows: when the short one ends, the long one takes the whole
    download (the receiver's flows are re-shared)."""
    clock, net, (a, b, r) = make(3, [Link(up_bps=80 * MB), Link(up_bps=80 * MB), Link(down_bps=16 * MB)])
    net.partial_reshare = True
    short, long_ = net.channel(a, r), net.channel(b, r)
    short.send("x", 1 * MB)
    long_.send("y", 10 * MB)
    assert sorted(f.rate for f in r.down_flows) == pytest.approx([1 * MB, 1 * MB])
    clock.run(until=1.5)  # the short flow ended at 1 s
    assert [f.rate for f in r.down_flows] == [pytest.approx(2 * MB)]


def test_a_download_with_room_keeps_its_other_flows_and_re_shares_the_sender() -> None:
    """A receiver with room: a new flow into it re-shares the sender's upload only; its other
    flow, limited by its own full sender, keeps its rate."""
    clock, net, (s1, s2, r) = make(3, [Link(up_bps=8 * MB), Link(up_bps=16 * MB), Link()])
    net.partial_reshare = True
    net.channel(s1, r).send("x", 10 * MB)  # s1's upload full: 1 MB/s
    reshared = net.reshares
    net.channel(s2, r).send("y", 10 * MB)
    assert net.reshares == reshared + 1  # s2's upload only
    assert sorted(f.rate for f in r.down_flows) == pytest.approx([1 * MB, 2 * MB])


def test_a_sender_with_upload_to_spare_has_its_flow_into_a_receiver_re_shared() -> None:
    """s1 sends to r and x; a second flow into x (whose download binds) halves s1's flow to x,
    leaving s1 upload to spare. A new flow into r (which has room) re-shares all of r's
    flows, so s1's flow to r takes that spare."""
    clock, net, (s1, s2, s3, r, x) = make(5, [Link(up_bps=8 * MB), Link(up_bps=16 * MB), Link(up_bps=16 * MB),
                                               Link(), Link(down_bps=4 * MB)])
    net.partial_reshare = True
    to_r, to_x = net.channel(s1, r), net.channel(s1, x)
    to_r.send("a", 10 * MB)
    to_x.send("b", 10 * MB)
    assert [f.rate for f in s1.up_flows] == pytest.approx([0.5 * MB, 0.5 * MB])
    net.channel(s3, x).send("c", 10 * MB)  # x's download: 0.25 MB/s each
    assert to_x.flow is not None and to_x.flow.rate == pytest.approx(0.25 * MB)
    assert to_r.flow is not None and to_r.flow.rate == pytest.approx(0.5 * MB)  # not moved yet
    net.channel(s2, r).send("d", 10 * MB)
    assert to_r.flow.rate == pytest.approx(0.75 * MB)
