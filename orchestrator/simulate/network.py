"""The simulated network: access links shared max-min fair by flows, delay lines, loss.

Each node has one access link (``Port``): an upload and a download capacity, a one-way
latency (and jitter) for data arriving at the node, and a loss rate. A connection is two
``Channel`` s, one per direction, each a FIFO like a TCP stream:

- a data message (a block, at least ``FLOW_MIN`` bytes) is a *flow* from the sender's
  upload to the receiver's download while it is at the head of its channel; its rate is the
  max-min fair share of the two links among their active flows, recomputed whenever a flow
  starts or ends (only the flows of the two nodes are recomputed; the others keep their
  rate until their own next change: O(degree) per event instead of O(all flows));
- control messages take no capacity; they queue behind the data ahead of them;
- a message is handed over ``latency + U(-jitter, jitter)`` after its last byte left,
  never before the previous one (in order), plus the agent's loss penalty: each lost
  1460-byte segment (geometric gaps, the receiver's own RNG) stalls the channel for one
  retransmission round trip ``max(2 * latency, 10 ms)`` — the model of peer/shaping.py.

Rates are bytes/s. An uncapped rate stands for ``UNCAPPED_BPS``. ``payload_share`` scales
the capacities for kernel-shaped backends (tc counts headers: ~96 % of a rate is payload).
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any, Callable, Optional, Union

from orchestrator.model import Link
from orchestrator.simulate.clock import WHEN, Timer, VirtualClock, cancel

UNCAPPED_BPS = 10_000_000_000  # "no cap" (loopback-class links) in bits/s
FLOW_MIN = 4096  # bytes: smaller messages are control (latency only)
SEGMENT = 1460  # TCP payload per segment, for the loss model (as peer/shaping.py)
MIN_RETRANSMIT = 0.010
KERNEL_PAYLOAD_SHARE = 0.96  # tc tbf on netns/docker: payload share of the shaped rate
EPS_BYTES = 1e-6
HAVE_QUANTUM = 0.010  # s: HAVEs arriving at a node within this are handed over together


class Port:
    """A node's access link and its active flows."""

    # (slots in memory order: the HAVE fan-out's first, then the flows')
    __slots__ = ("latency", "batches", "on_batch", "up", "down", "up_used", "down_used",
                 "up_flows", "down_flows", "index", "jitter", "loss", "alive", "name",
                 "_rng", "_to_loss", "sent")

    def __init__(self, name: str, index: int, rng: Union[random.Random, str]) -> None:
        """``rng``: the link's RNG (jitter, loss), or the seed to make it from when first
        needed (a Random holds 2.5 KiB; most links have neither jitter nor loss)."""
        self.name = name
        self.index = index
        self.up = self.down = float(UNCAPPED_BPS) / 8
        self.latency = self.jitter = self.loss = 0.0
        self.alive = True
        self.up_flows: list[Flow] = []
        self.down_flows: list[Flow] = []
        self.up_used = self.down_used = 0.0  # sum of the rates of those flows
        self._rng = rng
        self._to_loss = math.inf
        self.sent = 0.0  # bytes uploaded (settled at flow ends)
        self.batches: dict[float, list[tuple[Channel, Any]]] = {}  # HAVE_QUANTUM slot -> arrivals
        self.on_batch: Callable[[list[tuple[Channel, Any]]], None] = _one_by_one

    @property
    def rng(self) -> random.Random:
        rng = self._rng
        if isinstance(rng, str):
            rng = self._rng = random.Random(rng)
        return rng

    def lost_segments(self, nbytes: int) -> int:
        """Segments lost among the next ``nbytes`` received (geometric gaps)."""
        if not self.loss:
            return 0
        segments = float(max(1, -(-nbytes // SEGMENT)))
        lost = 0
        while self._to_loss <= segments:
            segments -= self._to_loss
            lost += 1
            self._to_loss = self._gap()
        self._to_loss -= segments
        return lost

    def _gap(self) -> float:
        if self.loss <= 0:
            return math.inf
        if self.loss >= 1:
            return 1.0
        u = 1.0 - self.rng.random()
        return math.floor(math.log(u) / math.log1p(-self.loss)) + 1.0


class Flow:
    __slots__ = ("channel", "src", "dst", "ku", "kd", "remaining", "rate", "since", "timer", "due", "msg",
                 "size", "new")

    def __init__(self, channel: Channel, msg: Any, size: int) -> None:
        self.channel = channel
        self.src = channel.src
        self.dst = channel.dst
        self.ku = 2 * self.src.index  # keys of its two links in Network._reshare
        self.kd = 2 * self.dst.index + 1
        self.msg = msg
        self.size = size
        self.remaining = float(size)
        self.rate = 0.0
        self.since = 0.0
        self.timer: Optional[Timer] = None  # due at or before ``due``
        self.due = math.inf  # when its last byte leaves at the current rate
        self.new = 0.0  # rate being computed by Network._reshare


# (the channel's receiver handle ``to``, the message): plain functions shared by all
# channels (a bound method or partial per channel costs ~64 bytes each, four per connection)
Deliver = Callable[[Any, Any], None]


class Channel:
    """One direction of a connection: in-order messages from ``src`` to ``dst``."""

    # (slots in memory order: what the HAVE fan-out reads first)
    __slots__ = ("closed", "dst", "to", "src", "net", "queue", "flow", "inbox", "inbox_timer",
                 "last_delivery", "on_message", "on_sent")

    def __init__(self, net: Network, src: Port, dst: Port) -> None:
        self.net = net
        self.src = src
        self.dst = dst
        # lists, not deques: they hold a few items and an empty deque costs 600 bytes
        self.queue: list[tuple[Any, int]] = []  # waiting to be sent
        self.flow: Optional[Flow] = None
        self.inbox: list[tuple[float, Any]] = []  # (hand-over time, message) in flight
        self.inbox_timer: Optional[Timer] = None
        self.last_delivery = 0.0
        self.on_message: Deliver = _drop
        self.on_sent: Deliver = _drop  # a data message's last byte left the sender
        self.closed = False
        self.to: Any = None  # the receiver's handle (its connection endpoint)

    @property
    def backlog(self) -> int:
        """Bytes queued (not yet on the wire) plus what is left of the flow in progress."""
        left = sum(n for _, n in self.queue)
        if self.flow is not None:
            left += int(self.flow.remaining)
        return left

    def send(self, msg: Any, nbytes: int) -> None:
        if self.closed:
            return
        self.queue.append((msg, nbytes))
        if self.flow is None:
            self._pump()

    def _pump(self) -> None:
        """Send from the head of the queue: control messages at once, data as a flow."""
        net = self.net
        while self.queue and self.flow is None and not self.closed:
            msg, nbytes = self.queue.pop(0)
            if nbytes < FLOW_MIN:
                self._arrive(msg, nbytes)
                continue
            net.start_flow(Flow(self, msg, nbytes))
            return

    def flow_done(self, flow: Flow) -> None:
        self.flow = None
        self._arrive(flow.msg, flow.size)
        self.on_sent(self.to, flow.msg)
        self._pump()

    def _arrive(self, msg: Any, nbytes: int) -> None:
        dst, clock = self.dst, self.net.clock
        delay = dst.latency
        if dst.jitter:
            delay = max(0.0, delay + dst.rng.uniform(-dst.jitter, dst.jitter))
        lost = dst.lost_segments(nbytes + 4) if dst.loss else 0
        if lost:
            delay += lost * max(2 * dst.latency, MIN_RETRANSMIT)
        when = max(self.last_delivery, clock.now + delay)
        self.last_delivery = when
        self.inbox.append((when, msg))
        if self.inbox_timer is None:
            self.inbox_timer = clock.at(when, self._hand_over)

    def _hand_over(self) -> None:
        """Deliver every message due now (one heap event for a burst)."""
        self.inbox_timer = None
        now, inbox = self.net.clock.now, self.inbox
        while inbox and inbox[0][0] <= now and not self.closed:
            _, msg = inbox.pop(0)
            self.on_message(self.to, msg)
        if inbox and not self.closed:
            self.inbox_timer = self.net.clock.at(inbox[0][0], self._hand_over)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.inbox.clear()
        if self.inbox_timer is not None:
            cancel(self.inbox_timer)
            self.inbox_timer = None
        if self.flow is not None:
            self.net.stop_flow(self.flow)
            self.flow = None


def post_all(channels: list[Channel], msg: Any) -> None:
    """A HAVE on each channel: handed over at the next ``Network.have_quantum`` boundary after its
    latency, with the other HAVEs arriving at that node then (one event per slot for all nodes).
    It may pass messages sent after it on the channel; nothing in the protocol depends on
    that. (Every verified piece goes to every neighbour lacking it: the most frequent
    message of a big run.)"""
    if not channels:
        return
    net = channels[0].net
    clock, q = net.clock, net.have_quantum
    now = clock.now
    latency = -1.0  # links mostly share one latency: its slot is computed once per run of it
    slot = 0.0
    for ch in channels:
        if ch.closed:
            continue
        dst = ch.dst
        if dst.latency != latency:
            latency = dst.latency
            slot = math.ceil((now + latency) / q) * q
        batches = dst.batches
        batch = batches.get(slot)
        if batch is None:
            batch = batches[slot] = []
            ports = net.have_slots.get(slot)
            if ports is None:  # one event per slot for all the nodes HAVEs reach then
                ports = net.have_slots[slot] = []
                clock.at(slot, net.hand_over_slot, slot)
            ports.append(dst)
        batch.append((ch, msg))


def _drop(_to: Any, _msg: Any) -> None:
    pass


def _one_by_one(batch: list[tuple[Channel, Any]]) -> None:
    for ch, msg in batch:
        if not ch.closed:
            ch.on_message(ch.to, msg)


class Network:
    def __init__(self, clock: VirtualClock, payload_share: float = 1.0) -> None:
        self.clock = clock
        self.payload_share = payload_share
        self.have_quantum = HAVE_QUANTUM
        # re-share only the sender's upload when the receiver's other flows cannot move
        # (Network._receiver_unsettled): the same rates but for levels gone stale, which the
        # full re-share at the receiver would refresh (big swarms: World sets it)
        self.partial_reshare = False
        self.have_slots: dict[float, list[Port]] = {}  # slot -> nodes with HAVEs due then
        self.ports: list[Port] = []
        self.moved = 0.0  # bytes transferred by all flows, settled up to ``_moved_at``
        self._moved_at = 0.0
        self.total_rate = 0.0  # sum of the rates of the active flows
        self.flows = 0
        self.reshares = 0
        self._full_next: Optional[Channel] = None  # its flow just ended on a saturated download

    def add_port(self, name: str, rng: Union[random.Random, str]) -> Port:
        p = Port(name, len(self.ports), rng)
        self.ports.append(p)
        return p

    def set_link(self, port: Port, link: Link) -> None:
        share = self.payload_share
        port.up = (link.up_bps if link.up_bps is not None else UNCAPPED_BPS) * share / 8.0
        port.down = (link.down_bps if link.down_bps is not None else UNCAPPED_BPS) * share / 8.0
        port.latency = link.latency_ms / 1000.0
        port.jitter = link.jitter_ms / 1000.0
        if link.loss != port.loss:
            port.loss = link.loss
            port._to_loss = port._gap()
        self._reshare(port.up_flows + port.down_flows)

    def channel(self, src: Port, dst: Port) -> Channel:
        return Channel(self, src, dst)

    def hand_over_slot(self, slot: float) -> None:
        """The HAVEs due at ``slot``: each node's batch, nodes in the order HAVEs were first
        posted to them (as one event per node would run)."""
        for port in self.have_slots.pop(slot):
            port.on_batch(port.batches.pop(slot))

    def moved_now(self) -> float:
        """Bytes moved by all flows up to now."""
        return self.moved + self.total_rate * (self.clock.now - self._moved_at)

    # --- flows --------------------------------------------------------------------------
    def start_flow(self, flow: Flow) -> None:
        flow.channel.flow = flow
        flow.since = self.clock.now
        src, dst = flow.src, flow.dst
        src.up_flows.append(flow)
        dst.down_flows.append(flow)
        self.flows += 1
        if not self.partial_reshare or self._full_next is flow.channel or self._receiver_unsettled(dst, flow):
            self._full_next = None
            self._reshare(src.up_flows + dst.down_flows)
            return
        # the receiver's download has room: its other flows are limited elsewhere and keep
        # their rates; only the sender's upload is re-shared (the new flow capped by that room)
        self._reshare(src.up_flows)
        if _saturated(dst.down, dst.down_used):  # the new flow filled it: now it binds
            self._reshare(src.up_flows + dst.down_flows)

    def stop_flow(self, flow: Flow) -> None:
        """Remove a flow (finished or its channel closed) and give its share to the others."""
        full = not self.partial_reshare or self._receiver_unsettled(flow.dst, flow)
        self._detach(flow)
        self._reshare_after_end(flow, full)

    @staticmethod
    def _receiver_unsettled(dst: Port, flow: Flow) -> bool:
        """May a change of ``flow`` move the rates of the other flows into ``dst``? Yes when
        its download is full, or when the sender of one of them has upload to spare: the
        flow is limited by this download (or was, by a level gone stale), or could take it.
        Else each is limited by its sender's full upload, and only the sender of ``flow``
        needs re-sharing."""
        if _saturated(dst.down, dst.down_used):
            return True
        for g in dst.down_flows:
            if g is not flow:
                src = g.src
                if not _saturated(src.up, src.up_used):
                    return True
        return False

    def _reshare_after_end(self, flow: Flow, full: bool) -> None:
        """``full``: the receiver's download was saturated before the flow ended, so its other
        flows may grow; else only the sender's upload is re-shared (a download with room
        limited none of its flows)."""
        if full:
            self._reshare(flow.src.up_flows + flow.dst.down_flows)
        else:
            self._reshare(flow.src.up_flows)

    def _detach(self, flow: Flow) -> None:
        self._settle(flow)
        self._set_total(-flow.rate)
        flow.src.up_used -= flow.rate
        flow.dst.down_used -= flow.rate
        flow.rate = 0.0
        if flow.timer is not None:
            cancel(flow.timer)
            flow.timer = None
        flow.src.up_flows.remove(flow)
        flow.dst.down_flows.remove(flow)

    def _finish(self, flow: Flow) -> None:
        """The last byte left. The next block on the same channel usually starts at once (the
        sender's next upload): its start re-shares these same two links, so the re-share of
        the end is only needed when nothing followed (no time passes in between)."""
        flow.timer = None
        if flow.due > self.clock.now:  # it slowed down since the timer was set: not yet
            flow.timer = self.clock.at(flow.due, self._finish, flow)
            return
        full = not self.partial_reshare or self._receiver_unsettled(flow.dst, flow)
        self._detach(flow)
        flow.src.sent += flow.size
        channel = flow.channel
        # the channel's next flow (started at once, usually) re-shares what this end needs
        self._full_next = channel if full else None
        channel.flow_done(flow)
        self._full_next = None
        if channel.flow is None:
            self._reshare_after_end(flow, full)

    def _settle(self, flow: Flow) -> None:
        now = self.clock.now
        if flow.rate:
            flow.remaining = max(0.0, flow.remaining - flow.rate * (now - flow.since))
        flow.since = now

    def _set_total(self, delta: float) -> None:
        now = self.clock.now
        self.moved += self.total_rate * (now - self._moved_at)
        self._moved_at = now
        self.total_rate = max(0.0, self.total_rate + delta)

    def _reshare(self, flows: list[Flow]) -> None:
        """Max-min fair rates for ``flows`` with every other flow of their links held at its
        rate. (The hottest code of a big run: one call per block started or ended.)

        The flows re-shared are always those of at most two links (a sender's upload and a
        receiver's download, or one node's two); every other link is used by one of them
        only, so it is a cap on that flow. Then each of the two links is filled like water
        over its flows' caps (a sort), and a flow using both takes the lower level.
        Anything else goes to the general progressive filling (``_fill_general``)."""
        if not flows:
            return
        self.reshares += 1
        flows = list(dict.fromkeys(flows))  # a flow can be in both lists: once, in order
        rem: dict[int, float] = {}
        count: dict[int, int] = {}
        for f in flows:
            r = f.rate
            k = f.ku
            if k in rem:
                rem[k] += r
                count[k] += 1
            else:
                src = f.src
                rem[k] = src.up - src.up_used + r  # its own share is up for grabs
                count[k] = 1
            k = f.kd
            if k in rem:
                rem[k] += r
                count[k] += 1
            else:
                dst = f.dst
                rem[k] = dst.down - dst.down_used + r
                count[k] = 1
        central = [k for k, n in count.items() if n > 1]
        if len(central) > 2:
            self._fill_general(flows, rem)
        else:
            self._fill_two(flows, rem, count, central)
        self._apply(flows)

    @staticmethod
    def _fill_two(flows: list[Flow], rem: dict[int, float], count: dict[int, int], central: list[int]) -> None:
        caps: dict[int, list[float]] = {k: [] for k in central}
        both: list[Flow] = []
        for f in flows:
            u, d = f.ku, f.kd
            if count[u] > 1:
                if count[d] > 1:
                    both.append(f)
                else:
                    caps[u].append(rem[d])
            elif count[d] > 1:
                caps[d].append(rem[u])
            else:
                f.new = max(0.0, min(rem[u], rem[d]))
        level = {k: _water_level(rem[k], caps[k], len(both)) for k in central}
        if both:
            a, b = central
            g = min(level[a], level[b])
            other = b if level[a] <= level[b] else a
            level[other] = _water_level(rem[other], caps[other] + [g] * len(both), 0)
            for f in both:
                f.new = g
        for f in flows:
            u, d = f.ku, f.kd
            if count[u] > 1:
                if count[d] > 1:
                    continue
                cap, lvl = rem[d], level[u]
            elif count[d] > 1:
                cap, lvl = rem[u], level[d]
            else:
                continue
            f.new = lvl if lvl < cap else (cap if cap > 0.0 else 0.0)

    @staticmethod
    def _fill_general(flows: list[Flow], rem: dict[int, float]) -> None:
        """Progressive filling: a heap of link shares that only grow as flows are fixed."""
        users: dict[int, list[Flow]] = {}
        for f in flows:
            for k in (f.ku, f.kd):
                us = users.get(k)
                if us is None:
                    users[k] = [f]
                else:
                    us.append(f)
        heap = [(max(rem[k], 0.0) / len(us), k) for k, us in users.items()]
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            share, k = pop(heap)
            us = users[k]
            if not us:
                continue
            cur = max(rem[k], 0.0) / len(us)
            if cur > share * (1 + 1e-9) + 1e-12:  # grew since pushed: look again later
                push(heap, (cur, k))
                continue
            for f in us:
                f.new = cur
                other = f.kd if f.ku == k else f.ku
                lst = users[other]
                if lst:
                    lst.remove(f)
                    rem[other] -= cur
            users[k] = []

    def _apply(self, flows: list[Flow]) -> None:
        """Move each flow to its new rate (``flow.new``): settle, reset its finish timer."""
        clock = self.clock
        now = clock.now
        total = 0.0
        for f in flows:
            rate = f.new
            old = f.rate
            timer = f.timer
            if rate == old and timer is not None:
                continue
            if old:  # settle at the old rate
                f.remaining = max(0.0, f.remaining - old * (now - f.since))
            f.since = now
            delta = rate - old
            total += delta
            f.src.up_used += delta
            f.dst.down_used += delta
            f.rate = rate
            if rate > 0:
                due = f.due = now + f.remaining / rate
                if timer is not None and timer[WHEN] <= due:
                    continue  # slower: the timer fires early and is set again (fewer heap entries)
            else:
                due = f.due = now if f.remaining <= EPS_BYTES else math.inf
            if timer is not None:
                cancel(timer)
                f.timer = None
            if due < math.inf:
                f.timer = clock.at(due, self._finish, f)
        if total:
            self._set_total(total)


def _saturated(capacity: float, used: float) -> bool:
    """Is a link's capacity all taken (to rounding)?"""
    return capacity - used <= capacity * 1e-9


def _water_level(capacity: float, caps: list[float], uncapped: int) -> float:
    """The level ``L`` at which flows with these caps plus ``uncapped`` others fill
    ``capacity`` (each gets min(cap, L)); infinite when they all fit."""
    left = capacity if capacity > 0.0 else 0.0
    n = len(caps) + uncapped
    caps.sort()
    for i, c in enumerate(caps):
        share = left / (n - i)
        if c >= share:
            return share
        if c > 0.0:
            left -= c
    return left / uncapped if uncapped else math.inf
