"""The calendar clock runs callbacks in exactly the order one heap of (when, seq) gives,
whatever the times, ties, cancellations and callbacks scheduling more."""

from __future__ import annotations

import heapq
import math
from typing import Any, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.simulate.clock import FAR, VirtualClock, cancel


class HeapClock:
    """The reference: one heap of [when, seq, fn, args] (the clock before buckets)."""

    def __init__(self) -> None:
        self.now, self._heap, self._seq = 0.0, [], 0  # type: ignore[var-annotated]

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> list[Any]:
        self._seq += 1
        t = [max(when, self.now), self._seq, fn, args]
        heapq.heappush(self._heap, t)
        return t

    def run(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= until:
            when, _, fn, args = heapq.heappop(self._heap)
            if fn is not None:
                self.now = when
                fn(*args)
        self.now = max(self.now, until)


# a plan: each first-level timer (time, children: delays of timers it schedules, cancel-th)
times = st.one_of(st.floats(0, 0.05), st.sampled_from([0.0, 0.001, 0.0015, 0.002, 0.0099999, 0.01]))
plans = st.lists(st.tuples(times, st.lists(st.one_of(st.floats(0, 0.02), st.just(0.0)), max_size=3),
                           st.integers(0, 5)), max_size=40)


def play(clock: Any, plan: list[tuple[float, list[float], int]], stops: list[float]) -> list[tuple[float, int]]:
    seen: list[tuple[float, int]] = []
    timers: list[list[Any]] = []

    def fire(i: int, depth: int, delays: list[float], victim: int) -> None:
        seen.append((clock.now, i))
        if timers and victim:
            cancel(timers[(i * 7 + victim) % len(timers)])
        if depth < 2:
            for j, d in enumerate(delays):
                timers.append(clock.at(clock.now + d, fire, i * 10 + j, depth + 1, delays[:1], 0))

    for i, (when, delays, victim) in enumerate(plan):
        timers.append(clock.at(when, fire, i, 0, delays, victim))
    for until in stops:
        clock.run(until)
    return seen


@settings(max_examples=300, deadline=None)
@given(plans, st.lists(st.floats(0, 0.08), max_size=3))
def test_calendar_order_is_the_heap_order(plan: list[tuple[float, list[float], int]], stops: list[float]) -> None:
    stops = sorted(stops) + [1.0]
    assert play(VirtualClock(), plan, stops) == play(HeapClock(), plan, stops)


def test_far_and_infinite_timers_run_last_in_order() -> None:
    clock, seen = VirtualClock(), []
    for when in (math.inf, FAR * 2, 5.0, FAR):
        clock.at(when, seen.append, when)
    clock.run(math.inf)
    assert seen == [5.0, FAR, FAR * 2, math.inf]
    assert clock.pending() == 0


def test_a_timer_in_the_past_runs_now_and_pending_counts_every_bucket() -> None:
    clock, seen = VirtualClock(), []
    clock.at(0.5, lambda: clock.at(0.1, seen.append, "late"))
    clock.at(0.5005, seen.append, "same bucket")
    clock.at(0.7, seen.append, "later")
    assert clock.pending() == 3
    clock.run(0.6)
    assert seen == ["late", "same bucket"] and clock.now == 0.6 and clock.pending() == 1
