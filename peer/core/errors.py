"""The one error the core raises on bad input from a peer."""

from __future__ import annotations


class ProtocolError(Exception):
    """A peer broke the protocol: its connection ends, ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
