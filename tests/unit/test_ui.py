"""Terminal output as text: plain off a terminal, final lines, the watch frame."""

from __future__ import annotations

import io
from typing import Any, Optional

from rich.console import Console

from orchestrator import ui
from orchestrator.seeding import SeededContent

CONTENT = SeededContent(name="movie", infohash="ab" * 20, metainfo="", size=1 << 20, chunks=8,
                        piece_length=1 << 17, sha256="", seed=1, synthetic=True)


def text_of(renderable: Any) -> str:
    buf = io.StringIO()
    Console(file=buf, width=ui.WIDE, color_system=None, soft_wrap=True).print(renderable)
    return buf.getvalue()


def status(have: int, complete: bool = False, downloaded: int = 1) -> dict[str, Any]:
    return {"rate_up": 0, "rate_down": 0, "torrents": {CONTENT.infohash: {
        "have": have, "pieces": 8, "complete": complete, "downloaded": downloaded, "peers": 2}}}


def test_plain_console_off_a_terminal_is_wide_and_uncoloured() -> None:
    c = ui.make_console()  # pytest captures stdout: not a terminal
    assert c.width == ui.WIDE and c.color_system is None and not c.is_terminal


def test_plural() -> None:
    assert ui.plural(1, "node") == "1 node" and ui.plural(2, "node") == "2 nodes"


def test_final_line_per_content() -> None:
    report = {"distribution": {
        "movie": {"fetchers": 8, "verified": 8, "seconds": 23.46, "efficiency": 0.96, "lower_bound_seconds": 22.5},
        "paper": {"fetchers": 2, "verified": 1, "seconds": None, "efficiency": None},
    }}
    assert ui.final_lines(report) == [
        "movie: 8/8 verified in 23.5 s, 0.96 of the lower bound (22.5 s)",
        "paper: 1/2 verified, no lower bound (uncapped links)",
    ]


def test_summary_shows_wasted_and_a_legend() -> None:
    report = {"name": "m", "ok": True, "contents": {"movie": {"size": 1 << 20, "chunks": 8}},
              "distribution": {"movie": {"seconds": 2.0, "lower_bound_seconds": 1.0, "efficiency": 0.5,
                                         "client_server_bound_seconds": 4.0}},
              "nodes": {"l-0": {"fetches": {"movie": {"seconds": 2.0, "verified": True, "complete": True,
                                                      "bytes_from": {"s-0": 3 << 20}, "wasted": 2 << 20}}}}}
    out = text_of(ui.summary(report))
    assert "wasted" in out and "2.0 MiB" in out and "3.0 MiB" in out
    assert "lower bound: fluid-model minimum" in out and "client-server bound: time one server" in out


def test_watch_frame_counts_fetchers_and_seeders_apart() -> None:
    nodes = {n: {} for n in ("seeders-0", "leechers-0", "leechers-1", "leechers-2")}
    statuses: dict[str, Optional[dict[str, Any]]] = {
        "seeders-0": status(8, True, downloaded=0), "leechers-0": status(8, True),
        "leechers-1": status(4), "leechers-2": None,
    }
    play = {"pid": 0, "phase": "done", "reason": "complete", "elapsed": 12.0,
            "events": [{"at": 5, "kind": "kill", "nodes": ["leechers-2"]}], "scenario": 1}
    out = text_of(ui.watch_frame("m", nodes, {"movie": CONTENT}, statuses, None, play, 75.0))
    assert "mesh m: 4 nodes, up 1m15s, 1 down" in out
    assert "scenario done (complete) after 12s" in out
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("movie"))
    assert "1/3" in row and " 50.0%" in row  # fetchers: (1 + 0.5 + 0) / 3; the seeder is apart
    assert "8/8 seeder" in out and "4/8" in out  # chunks per node, not summed


def test_play_line_names_the_last_event() -> None:
    from orchestrator.player import describe_event

    assert describe_event({"at": 5, "kind": "kill", "nodes": ["a", "b"]}) == "5s kill a, b"
    assert describe_event({"at": 0, "kind": "fetch", "content": "movie",
                           "nodes": [f"n{i}" for i in range(6)]}) == "0s fetch movie by n0, n1, n2, n3 (+2)"
    assert describe_event({"at": 10, "kind": "partition", "sides": [["a"], ["b", "c"]]}) == "10s partition a | b, c"
