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
WIDE = 1000  # columns off a terminal: tables at full width, lines never hard-wrapped
_plain = False  # `--plain` / `--no-color`: plain output even on a terminal


def set_plain(on: bool = True) -> None:
    global _plain
    _plain = on


def make_console(stderr: bool = False) -> Console:
    """A terminal gets rich's colours and width; anything else (a pipe, a CI log, a file,
    or `--plain`) gets no colour, full-width tables and unwrapped lines, so grep works."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() and not _plain:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=WIDE, soft_wrap=True,
                   color_system=None, force_terminal=False, emoji=False)


def progress_console() -> Console:
    return make_console(stderr=not sys.stdout.isatty())


def out_console() -> Console:
    return make_console()


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


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

    def finish(self, report: dict[str, Any]) -> None:
        """Bring the live bars to where the run ended (the last poll may predate the end)."""
        if self.progress is None:
            return
        for name, d in (report.get("distribution") or {}).items():
            task = self.tasks.get(name)
            if task is None:
                continue
            n, ok = int(d.get("fetchers") or 0), int(d.get("verified") or 0)
            state = next(t for t in self.progress.tasks if t.id == task)
            done = (state.total or 0) if n and ok == n else state.completed
            self.progress.update(task, completed=done, info=f"{ok}/{n} verified")

    def on_sample(self, sample: Sample) -> None:
        rate = sum(float((st or {}).get("rate_down") or 0) for st in sample.statuses.values())
        down = sum(1 for st in sample.statuses.values() if st is None)
        if self.progress is not None:
            for name, (have, want) in sample.progress.items():
                ok, n = sample.done[name]
                info = f"{ok}/{n} verified  {human_rate(rate)}" + (f"  {plural(down, 'node')} down" if down else "")
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
        extra = f", {plural(down, 'node')} down" if down else ""
        self.console.print(
            f"meshbed: t={sample.elapsed:5.1f}s {'; '.join(parts) or 'waiting'}; swarm {human_rate(rate)}{extra}",
            markup=False,
        )


LEGEND = "\n".join((
    "time: first fetch request to the last verified copy",
    "lower bound: fluid-model minimum max(F/u_s, F/d_min, N*F/(u_s + sum of fetchers' upload))",
    "efficiency: lower bound / time (1.00: as fast as the links allow)",
    "client-server bound: time one server would need, max(N*F/u_s, F/d_min)",
    "received: bytes that reached the node; wasted: the part of it thrown away "
    "(duplicate end-game blocks, pieces failing their hash)",
    "from peers: how many peers sent the node data",
))


def summary(report: dict[str, Any]) -> RenderableType:
    """Per node: time, verified, bytes from how many peers; per content: time vs bounds."""
    nodes = Table(title=f"{report['name']}: nodes", title_justify="left")
    for col in ("node", "content", "time", "verified", "received", "wasted", "from peers"):
        nodes.add_column(col, justify="right" if col in ("time", "received", "wasted", "from peers") else "left")
    for name, entry in report["nodes"].items():
        for content, f in entry["fetches"].items():
            per_peer = f["bytes_from"]  # None: a client node whose client does not say
            nodes.add_row(
                name, content, _secs(f["seconds"]),
                "yes" if f["verified"] else ("[red]no[/red]" if f["complete"] else "[red]incomplete[/red]"),
                "-" if per_peer is None else human_bytes(sum(int(v) for v in per_peer.values())),
                human_bytes(f.get("wasted") or 0),
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
    return Group(nodes, contents, Text(LEGEND, style="dim"), verdict)


def final_lines(report: dict[str, Any]) -> list[str]:
    """One line per content: ``movie: 8/8 verified in 23.5 s, 0.96 of the lower bound``."""
    out = []
    for name, d in (report.get("distribution") or {}).items():
        n, ok = int(d.get("fetchers") or 0), int(d.get("verified") or 0)
        line = f"{name}: {ok}/{n} verified"
        if d.get("seconds") is not None:
            line += f" in {d['seconds']:.1f} s"
        eff = d.get("efficiency")
        if eff is not None:
            line += f", {eff:.2f} of the lower bound ({d['lower_bound_seconds']:.1f} s)"
        elif n:
            line += ", no lower bound (uncapped links)"
        out.append(line)
    return out


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


def guess_seeders(contents: dict[str, Any], statuses: dict[str, Optional[dict[str, Any]]]) -> dict[str, set[str]]:
    """Without the topology: a node that holds the whole content and downloaded none of it."""
    out: dict[str, set[str]] = {}
    for cname, c in contents.items():
        out[cname] = {n for n, st in statuses.items()
                      if (t := _torrent_for(st, c.infohash)) and t.get("complete") and not t.get("downloaded")}
    return out


def play_line(mesh_name: str, play: Optional[dict[str, Any]]) -> Optional[str]:
    """What the detached scenario player is at (None when no scenario was played)."""
    from orchestrator.player import describe_event, is_playing

    if not play:
        return None
    if play.get("by_run"):
        return "a scenario is playing (`meshbed run` in another shell)"
    events = play.get("events") or []
    last = describe_event(events[-1]) if events else "none yet"
    elapsed = float(play.get("elapsed") or 0)
    total = int(play.get("scenario") or len(events))
    if is_playing(play):
        return f"scenario playing: t={elapsed:.0f}s, {len(events)}/{total} events played, last: {last}"
    phase = play.get("phase", "?")
    reason = f" ({play['reason']})" if play.get("reason") else ""
    return f"scenario {phase}{reason} after {elapsed:.0f}s; `meshbed report {mesh_name}` prints the report"


def watch_frame(mesh_name: str, nodes: dict[str, dict[str, Any]], contents: dict[str, Any],
                statuses: dict[str, Optional[dict[str, Any]]], seeders: Optional[dict[str, set[str]]] = None,
                play: Optional[dict[str, Any]] = None, up_seconds: Optional[float] = None) -> RenderableType:
    """One frame of `watch`: a header (time up, scenario event), per content the fetchers'
    progress with fetchers and seeders counted apart, then per node chunks held of each content."""
    seeders = seeders if seeders is not None else guess_seeders(contents, statuses)
    parts: list[RenderableType] = []
    down = sorted(n for n in nodes if statuses.get(n) is None)
    head = f"mesh {mesh_name}: {plural(len(nodes), 'node')}"
    if up_seconds is not None:
        head += f", up {_duration(up_seconds)}"
    if down:
        head += f", {len(down)} down"
    parts.append(Text(head, style="bold"))
    line = play_line(mesh_name, play)
    parts.append(Text(line or f"no scenario playing: `meshbed play {mesh_name}` plays one"))
    swarm = Table(title="swarm", title_justify="left", show_edge=False)
    for col in ("content", "fetchers' progress", "fetchers complete", "seeders", "nodes down"):
        swarm.add_column(col, justify="left" if col in ("content", "fetchers' progress") else "right")
    for cname, c in contents.items():
        fetchers = [n for n in nodes if n not in seeders.get(cname, set())]
        fracs, complete = [], 0
        for n in fetchers:
            t = _torrent_for(statuses.get(n), c.infohash)
            pieces = int(t.get("pieces") or c.chunks or 1)
            fracs.append(min(1.0, int(t.get("have") or 0) / pieces) if t else 0.0)
            complete += 1 if t.get("complete") else 0
        mean = sum(fracs) / len(fracs) if fracs else 0.0
        bar = _bar(mean)
        bar.append(f" {100 * mean:5.1f}%", style="")
        live_seeders = sum(1 for n in seeders.get(cname, set()) if statuses.get(n) is not None)
        swarm.add_row(cname, bar, f"{complete}/{len(fetchers)}", str(live_seeders),
                      str(sum(1 for n in down if n in fetchers)))
    parts.append(swarm)
    per_node = Table(show_edge=False)
    per_node.add_column("node")
    for cname in contents:
        per_node.add_column(f"{cname} chunks", no_wrap=True)
    per_node.add_column("up", justify="right")
    per_node.add_column("down", justify="right")
    per_node.add_column("peers", justify="right")
    for name in nodes:
        st = statuses.get(name)
        if st is None:
            per_node.add_row(name, *(Text("down", style="red") for _ in contents), "-", "-", "-")
            continue
        cells: list[RenderableType] = []
        peers = 0
        for cname, c in contents.items():
            t = _torrent_for(st, c.infohash)
            if not t:
                cells.append(Text("-"))
                continue
            pieces = int(t.get("pieces") or c.chunks or 1)
            have = int(t.get("have") or 0)
            cell = _bar(have / pieces, 16)
            cell.append(f" {have}/{pieces}" + (" seeder" if name in seeders.get(cname, set()) else ""), style="")
            cells.append(cell)
            peers = max(peers, int(t.get("peers") or 0))
        per_node.add_row(name, *cells, human_rate(st.get("rate_up")), human_rate(st.get("rate_down")), str(peers))
    parts.append(per_node)
    return Group(*parts)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
