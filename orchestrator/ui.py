"""Terminal output: run progress, the summary table, `status` and `watch` views (rich).

Progress goes to stderr when stdout is not a terminal (so `run > log` keeps the summary
clean), and turns into one plain line every few seconds instead of live bars (readable in
CI logs).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orchestrator.scenario import Sample

PLAIN_EVERY = 5.0  # seconds between progress lines when not on a terminal


def progress_console() -> Console:
    return Console(stderr=not sys.stdout.isatty(), highlight=False)


def out_console() -> Console:
    return Console(highlight=False)


def human_rate(bytes_per_s: Optional[float]) -> str:
    if not bytes_per_s:
        return "-"
    bits = float(bytes_per_s) * 8
    for unit, div in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= div:
            return f"{bits / div:.1f} {unit}"
    return f"{bits:.0f} bit/s"


def human_bytes(n: Optional[float]) -> str:
    if n is None:
        return "-"
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} GiB"


def _secs(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.1f}s"


class RunView:
    """Shows deploy messages and per-content swarm progress during `run`."""

    def __init__(self, console: Optional[Console] = None) -> None:
        self.console = console or progress_console()
        self.live = self.console.is_terminal
        self.progress: Optional[Progress] = None
        self.tasks: dict[str, TaskID] = {}
        self._last_line = 0.0

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message)
        else:
            self.console.print(f"meshbed: {message}", markup=False)

    def __enter__(self) -> RunView:
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), console=self.console, transient=False,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_sample(self, sample: Sample) -> None:
        rate = sum(float((st or {}).get("rate_down") or 0) for st in sample.statuses.values())
        down = sum(1 for st in sample.statuses.values() if st is None)
        if self.progress is not None:
            for name, (have, want) in sample.progress.items():
                ok, n = sample.done[name]
                info = f"{ok}/{n} verified  {human_rate(rate)}" + (f"  {down} down" if down else "")
                if name not in self.tasks:
                    self.tasks[name] = self.progress.add_task(name, total=want, info=info)
                self.progress.update(self.tasks[name], completed=have, total=want, info=info)
            return
        now = time.monotonic()
        if now - self._last_line < PLAIN_EVERY:
            return
        self._last_line = now
        parts = []
        for name, (have, want) in sample.progress.items():
            ok, n = sample.done[name]
            pct = 100.0 * have / want if want else 0.0
            parts.append(f"{name} {pct:5.1f}% ({ok}/{n} verified)")
        extra = f", {down} nodes down" if down else ""
        self.console.print(
            f"meshbed: t={sample.elapsed:5.1f}s {'; '.join(parts) or 'waiting'}; swarm {human_rate(rate)}{extra}",
            markup=False,
        )


def summary(report: dict[str, Any]) -> RenderableType:
    """Per node: time, verified, bytes from how many peers; per content: time vs bounds."""
    nodes = Table(title=f"{report['name']}: nodes", title_justify="left")
    for col in ("node", "content", "time", "verified", "received", "from peers"):
        nodes.add_column(col, justify="right" if col in ("time", "received", "from peers") else "left")
    for name, entry in report["nodes"].items():
        for content, f in entry["fetches"].items():
            per_peer = f["bytes_from"]  # None: a client node whose client does not say
            nodes.add_row(
                name, content, _secs(f["seconds"]),
                "yes" if f["verified"] else ("[red]no[/red]" if f["complete"] else "[red]incomplete[/red]"),
                "-" if per_peer is None else human_bytes(sum(int(v) for v in per_peer.values())),
                "-" if per_peer is None else str(sum(1 for v in per_peer.values() if v)),
            )
    contents = Table(title="distribution", title_justify="left")
    for col in ("content", "size", "chunks", "time", "lower bound", "efficiency", "client-server bound"):
        contents.add_column(col, justify="left" if col == "content" else "right")
    for name, d in report["distribution"].items():
        c = report["contents"][name]
        eff = d.get("efficiency")
        contents.add_row(
            name, human_bytes(c["size"]), str(c["chunks"]), _secs(d["seconds"]),
            _secs(d["lower_bound_seconds"]), "-" if eff is None else f"{eff:.2f}",
            _secs(d["client_server_bound_seconds"]),
        )
    verdict = Text("expectations met" if report["ok"] else f"expectations NOT met ({report.get('reason')})",
                   style="bold green" if report["ok"] else "bold red")
    return Group(nodes, contents, verdict)


def _torrent_for(st: Optional[dict[str, Any]], infohash: str) -> dict[str, Any]:
    if not st:
        return {}
    t: dict[str, Any] = st.get("torrents", {}).get(infohash) or {}
    return t


def node_state(st: Optional[dict[str, Any]], infohashes: list[str]) -> str:
    """down | idle (no content yet) | fetching | seeding (holds every content it has)."""
    if st is None:
        return "down"
    held = [_torrent_for(st, h) for h in infohashes if _torrent_for(st, h)]
    if not held:
        return "idle"
    return "seeding" if all(t.get("complete") for t in held) else "fetching"


def status_table(mesh_name: str, nodes: dict[str, dict[str, Any]], contents: dict[str, Any],
                 statuses: dict[str, Optional[dict[str, Any]]]) -> Table:
    table = Table(title=f"mesh {mesh_name}", title_justify="left")
    for col in ("node", "backend", "address", "state"):
        table.add_column(col)
    for cname in contents:
        table.add_column(cname, justify="right")
    table.add_column("up", justify="right")
    table.add_column("down", justify="right")
    for name, entry in nodes.items():
        st = statuses.get(name)
        cells = []
        for c in contents.values():
            t = _torrent_for(st, c.infohash)
            cells.append(f"{t.get('have', 0)}/{t.get('pieces', c.chunks)}" if t else "-")
        state = node_state(st, [c.infohash for c in contents.values()])
        table.add_row(
            name, entry.get("backend", "?"), entry.get("api", "?"), state, *cells,
            human_rate((st or {}).get("rate_up")), human_rate((st or {}).get("rate_down")),
        )
    return table


def _bar(frac: float, width: int = 24) -> Text:
    filled = int(round(max(0.0, min(1.0, frac)) * width))
    return Text("█" * filled + "░" * (width - filled), style="green" if frac >= 1 else "cyan")


def watch_frame(mesh_name: str, nodes: dict[str, dict[str, Any]], contents: dict[str, Any],
                statuses: dict[str, Optional[dict[str, Any]]]) -> RenderableType:
    """One frame of `watch`: swarm progress per content, then a chunk bar per node."""
    parts: list[RenderableType] = []
    swarm = Table(title=f"mesh {mesh_name}: swarm", title_justify="left", show_edge=False)
    swarm.add_column("content")
    swarm.add_column("progress")
    swarm.add_column("chunks", justify="right")
    swarm.add_column("complete nodes", justify="right")
    for cname, c in contents.items():
        have = want = complete = 0
        for name in nodes:
            t = _torrent_for(statuses.get(name), c.infohash)
            if t:
                have += int(t.get("have") or 0)
                want += int(t.get("pieces") or c.chunks)
                complete += 1 if t.get("complete") else 0
        swarm.add_row(cname, _bar(have / want if want else 0.0), f"{have}/{want}", f"{complete}/{len(nodes)}")
    parts.append(swarm)
    per_node = Table(show_edge=False)
    per_node.add_column("node")
    for cname in contents:
        per_node.add_column(cname)
    per_node.add_column("up", justify="right")
    per_node.add_column("down", justify="right")
    per_node.add_column("peers", justify="right")
    for name in nodes:
        st = statuses.get(name)
        if st is None:
            per_node.add_row(name, *(Text("down", style="red") for _ in contents), "-", "-", "-")
            continue
        bars: list[RenderableType] = []
        peers = 0
        for c in contents.values():
            t = _torrent_for(st, c.infohash)
            pieces = int(t.get("pieces") or c.chunks or 1)
            bars.append(_bar(int(t.get("have") or 0) / pieces) if t else Text("-"))
            peers = max(peers, int(t.get("peers") or 0))
        per_node.add_row(name, *bars, human_rate(st.get("rate_up")), human_rate(st.get("rate_down")), str(peers))
    parts.append(per_node)
    return Group(*parts)
