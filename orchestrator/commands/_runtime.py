"""Shared by the mesh commands: run a coroutine so that Ctrl-C / SIGTERM cancel it (the
command's own ``finally`` tears down) and the process exits 130."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable
from typing import Callable

INTERRUPTED = 130


def run_interruptible(main: Callable[[], Awaitable[int]]) -> int:
    interrupted = False

    async def wrapper() -> int:
        nonlocal interrupted
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal() -> None:
            nonlocal interrupted
            if interrupted:  # a second Ctrl-C must not cut the teardown short
                print("meshbed: tearing down, please wait", file=sys.stderr)
                return
            interrupted = True
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            return await main()
        except asyncio.CancelledError:
            if interrupted:
                return INTERRUPTED
            raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    code = asyncio.run(wrapper())
    if interrupted:
        print("meshbed: interrupted; the mesh was torn down", file=sys.stderr)
        return INTERRUPTED
    return code

