"""Virtual time: a heap of timed callbacks. Ties run in scheduling order (a sequence number),
so a run depends only on its inputs and seed, never on wall time or hash order."""

from __future__ import annotations

import heapq
from typing import Any, Callable

# A scheduled callback is its heap entry, a list [when, seq, fn, args] (no object besides:
# a run schedules millions); ``cancel`` makes the loop skip it (lazy deletion). Entries
# compare by (when, seq): seq is unique, so fn and args are never compared.
Timer = list
WHEN, FN, ARGS = 0, 2, 3  # the fields of a Timer the others read or clear


def cancel(t: Timer) -> None:
    t[FN] = None
    t[ARGS] = ()


class VirtualClock:
    """``now`` only moves when the loop pops the next timer."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0  # callbacks run
        self._heap: list[Timer] = []
        self._seq = 0
        self._stopped = False

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        if when < self.now:
            when = self.now
        self._seq += 1
        t = [when, self._seq, fn, args]
        heapq.heappush(self._heap, t)
        return t

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.at(self.now + max(0.0, delay), fn, *args)

    def stop(self) -> None:
        self._stopped = True

    def pending(self) -> int:
        return len(self._heap)

    def run(self, until: float) -> None:
        """Run callbacks in time order until ``until`` (virtual seconds) or :meth:`stop`."""
        heap, pop = self._heap, heapq.heappop
        self._stopped = False
        events = 0  # counted locally: the loop runs millions of times
        try:
            while heap:
                if heap[0][0] > until:
                    break
                when, _, fn, args = pop(heap)
                if fn is None:
                    continue
                self.now = when
                events += 1
                fn(*args)
                if self._stopped:
                    break
        finally:
            self.events += events
        if not self._stopped and self.now < until:
            self.now = until  # nothing else happens before it
