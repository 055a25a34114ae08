"""An asyncio event loop on a virtual clock, for timing tests that must neither sleep nor
depend on how busy the host is.

``loop.time()`` starts at 0 and only moves when the loop would otherwise wait for its next
timer: then the clock jumps to that timer at once. Real I/O (loopback sockets) still works:
before a jump the loop polls its sockets (and gives the kernel a moment) so bytes already
on their way are read first, at the virtual time they arrived. Code that reads time from
the loop (``loop.time()``, ``asyncio.sleep``, ``call_later``), like ``peer.shaping``, thus
runs on this clock unchanged: the clock is injected through the loop.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, Optional, TypeVar

T = TypeVar("T")
KERNEL_GRACE = 0.0005  # real seconds for in-flight loopback I/O before the clock jumps


class _JumpingSelector(selectors.BaseSelector):
    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.now = 0.0

    def select(self, timeout: Optional[float] = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # no timer at all: only I/O can wake the loop
            return self._real.select(None)
        events = self._real.select(min(timeout, KERNEL_GRACE))
        if not events:
            self.now += timeout  # nothing to do until the next timer: go there
        return events

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        asyncio.set_event_loop(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
