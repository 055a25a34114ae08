"""Virtual time: timed callbacks run in time order. Ties run in scheduling order (a sequence
number), so a run depends only on its inputs and seed, never on wall time or hash order.

The queue is a calendar: timers fall into buckets of 1 ms of virtual time; only the bucket
being run is a heap. One heap of all pending timers (millions at 100,000 peers) made every
pop walk ~22 levels, each a cache miss; a bucket holds a few thousand at most, later ones
are plain lists until their turn. The order is exactly the one heap's: a bucket's number is
monotone in ``when`` and equal times share a bucket."""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any, Callable

# A scheduled callback is its queue entry, a list [when, seq, fn, args] (no object besides:
# a run schedules millions); ``cancel`` makes the loop skip it (lazy deletion). Entries
# compare by (when, seq): seq is unique, so fn and args are never compared.
Timer = list
WHEN, FN, ARGS = 0, 2, 3  # the fields of a Timer the others read or clear
BUCKETS_PER_SECOND = 1000  # a bucket is 1 ms: ~100 timers at 1,000 peers, ~10,000 at 100,000
FAR = 1e12  # virtual seconds; timers this late (or at infinity) share the last bucket
FAR_KEY = int(FAR * BUCKETS_PER_SECOND)


def cancel(t: Timer) -> None:
    t[FN] = None
    t[ARGS] = ()


class VirtualClock:
    """``now`` only moves when the loop pops the next timer.

    Invariant: every timer in ``_due`` (a heap) is in bucket ``_key`` or an earlier one;
    every timer in ``_later`` (bucket number -> unsorted list) is in a later bucket, and
    ``_keys`` is the heap of those bucket numbers."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0  # callbacks run
        self._due: list[Timer] = []
        self._key = 0
        self._later: dict[int, list[Timer]] = {}
        self._keys: list[int] = []
        self._seq = 0
        self._stopped = False

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        if when < self.now:
            when = self.now
        self._seq += 1
        t = [when, self._seq, fn, args]
        key = int(when * BUCKETS_PER_SECOND) if when < FAR else FAR_KEY  # when >= 0: int() is floor
        if key <= self._key:
            heappush(self._due, t)
        else:
            bucket = self._later.get(key)
            if bucket is None:
                self._later[key] = [t]
                heappush(self._keys, key)
            else:
                bucket.append(t)
        return t

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.at(self.now + max(0.0, delay), fn, *args)

    def stop(self) -> None:
        self._stopped = True

    def pending(self) -> int:
        return len(self._due) + sum(len(b) for b in self._later.values())

    def run(self, until: float) -> None:
        """Run callbacks in time order until ``until`` (virtual seconds) or :meth:`stop`."""
        heap, keys, later, pop = self._due, self._keys, self._later, heappop
        self._stopped = False
        events = 0  # counted locally: the loop runs millions of times
        try:
            while True:
                if not heap:
                    if not keys:
                        break
                    key = pop(keys)  # the next bucket becomes the heap
                    heap = self._due = later.pop(key)
                    heapify(heap)
                    self._key = key
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
