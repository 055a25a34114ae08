"""Contestants of bench/swarm_vs_bittorrent.py: each runs one swarm on a prepared Lab and
returns when every leecher holds a complete copy (or the timeout passes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bench._netlab import Lab


@dataclass(frozen=True)
class Swarm:
    """What every BitTorrent contestant gets: the same lab, torrent and tracker."""

    lab: Lab
    seeder: str
    leechers: tuple[str, ...]
    content: Path  # the complete file (on the host file system)
    torrent: Path  # v1 .torrent announcing to the tracker
    name: str  # file name inside the torrent
    sha256: str
    size: int
    piece_length: int
    tracker: str  # announce URL
    timeout: float


@dataclass
class Outcome:
    contestant: str
    ok: bool
    seconds: Optional[float]  # until the last leecher held a verified copy
    completions: list[float] = field(default_factory=list)  # per leecher, from the start
    verified: int = 0
    error: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)
