"""Play a topology's timeline on a deployed mesh while polling every agent.

Two tasks: the timeline (events at ``t0 + at``) and the poller (GET /status of every node
about once a second, samples kept in memory and appended to ``<mesh>/samples.jsonl``).
The run ends when the timeline is over and every fetch is complete and verified, at the
expectation's deadline or ``topology.timeout``, or when a content cannot complete any more
(every source dead and no progress for ``STUCK_SECONDS``), or when the timeline is over and
no unfinished fetch has received a byte for ``STALL_SECONDS`` (an agent bug or a partition
never healed: better a clear verdict than waiting for the timeout).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from orchestrator import backends as registry
from orchestrator import clients
from orchestrator.backends.base import Capability
from orchestrator.model import (
    FetchEvent,
    HealEvent,
    KillEvent,
    LinkEvent,
    PartitionEvent,
    StartEvent,
    StopEvent,
)
from orchestrator.peerclient import PeerError

if TYPE_CHECKING:
    from orchestrator.mesh import Mesh

POLL_INTERVAL = 1.0
STUCK_SECONDS = 10.0
STALL_SECONDS = 60.0
RANDOM_BOOTSTRAP = 6  # random other nodes given to each fetcher besides the seeders
CLOCK_SLACK = 2.0  # agent clocks within this of ours are taken as ours


@dataclass
class FetchState:
    node: str
    content: str
    posted_wall: float  # our wall clock when POST /fetch answered
    clock_offset: float = 0.0  # agent clock minus ours (only trusted beyond CLOCK_SLACK)
    offset_known: bool = False  # measured once, at the first sighting (a restart resets started_at)
    finished_wall: Optional[float] = None  # in our clock
    complete: bool = False
    verified: Optional[bool] = None
    torrent: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlayResult:
    t0: float  # wall clock of the scenario start
    ended: float
    reason: str  # "complete" | "deadline" | "timeout" | "stuck" | "cancelled"
    fetch_started: dict[str, float]  # content -> wall clock of its first fetch event
    fetches: dict[tuple[str, str], FetchState]
    events: list[dict[str, Any]]
    stuck: list[str]  # contents that can no longer complete
    last: dict[str, Optional[dict[str, Any]]]  # last /status per node
    problems: list[str]
    samples: list[dict[str, Any]] = field(default_factory=list)  # what samples.jsonl holds


@dataclass
class Sample:
    """What the UI gets after every poll."""

    elapsed: float
    statuses: dict[str, Optional[dict[str, Any]]]
    progress: dict[str, tuple[int, int]]  # content -> (pieces held by fetchers, pieces wanted)
    done: dict[str, tuple[int, int]]  # content -> (verified fetchers, fetchers)


class Player:
    def __init__(self, mesh: Mesh, on_sample: Optional[Callable[[Sample], None]] = None) -> None:
        assert mesh.topology is not None and mesh.state is not None
        self.mesh = mesh
        self.topo = mesh.topology
        self.on_sample = on_sample
        self.fetches: dict[tuple[str, str], FetchState] = {}
        self.pending: dict[str, list[str]] = {}  # node -> contents it was to fetch while down
        self.fetch_started: dict[str, float] = {}
        self.events: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.timeline_done = False
        self.last: dict[str, Optional[dict[str, Any]]] = {}
        self._progress_at: dict[str, tuple[int, float]] = {}  # content -> (bytes, when it last grew)
        self._moved_at: tuple[int, float] = (-1, 0.0)  # bytes into unfinished fetches, when it grew
        self.stalled: list[str] = []
        self.samples_path = mesh.state.dir / "samples.jsonl"
        self.samples: list[dict[str, Any]] = []
        self.t0 = 0.0
        self._reachable_backends: dict[str, bool] = {}

    # --- fetch bodies -------------------------------------------------------------------
    def reachable(self, src: str, dst: str) -> bool:
        """Can ``src`` dial ``dst``'s wire address? Agents of a backend without
        ``Capability.REACHABLE`` listen on the host's loopback, so only agents on the host
        reach them; those in turn dial containers/namespaces/devices through the host's
        routes. (BitTorrent connections carry traffic both ways once open.)"""
        return self._reachable(dst) or not self._reachable(src)

    def _reachable(self, node: str) -> bool:
        backend = self.topo.node(node).backend
        if backend not in self._reachable_backends:
            caps = registry.get(backend).capabilities
            self._reachable_backends[backend] = bool(caps & Capability.REACHABLE)
        return self._reachable_backends[backend]

    def bootstrap_nodes(self, content: str, node: str) -> list[str]:
        c = self.topo.content(content)
        chosen = [s for s in c.seeders if s != node]
        if self.topo.strategy != "client-server":
            others = [n for n in self.topo.fetchers(content) if n != node and n not in c.seeders]
            rng = random.Random(f"{self.topo.seed}:{content}:{node}")
            chosen += rng.sample(others, min(RANDOM_BOOTSTRAP, len(others)))
        return [n for n in chosen if n in self.mesh.endpoints]

    def bootstrap(self, content: str, node: str) -> list[str]:
        eps = self.mesh.endpoints
        return [eps[n].wire for n in self.bootstrap_nodes(content, node) if self.reachable(node, n)]

    async def dial_back(self, content: str, node: str) -> None:
        """Peers ``node`` cannot reach but that can reach it are asked to dial it."""
        eps = self.mesh.endpoints
        infohash = self.mesh.contents[content].infohash
        for n in self.bootstrap_nodes(content, node):
            if not self.reachable(node, n) and self.reachable(n, node):
                try:
                    await self.mesh.client(n).peers([eps[node].wire], infohash)
                except PeerError as exc:  # a dead peer during a kill window: PEX covers it
                    self.problems.append(f"{n}: /peers for {node}: {exc}")

    async def ask_to_dial(self, content: str, node: str) -> None:
        """A client node proves no mesh name, so `access: mesh` agents admit it only at an
        address they were given, and some clients take no peer addresses (transmission,
        aria2): its bootstrap peers that have the content are given its address (and dial it)."""
        eps = self.mesh.endpoints
        infohash = self.mesh.contents[content].infohash
        seeders = self.topo.content(content).seeders
        for n in self.bootstrap_nodes(content, node):
            if not clients.accepts_peers(clients.client_of(self.topo.node(n).options)):
                continue
            if (n in seeders or (n, content) in self.fetches) and n not in self.mesh.dead:
                try:
                    await self.mesh.client(n).peers([eps[node].wire], infohash)
                except PeerError as exc:
                    self.problems.append(f"{n}: /peers for {node}: {exc}")

    def fetch_body(self, content: str, node: str) -> dict[str, Any]:
        seeded = self.mesh.contents[content]
        cs = self.topo.strategy == "client-server"
        source = {"magnet": seeded.magnet} if seeded.magnet else {"metainfo": seeded.metainfo}
        return {
            **source,
            "peers": self.bootstrap(content, node),
            "pex": not cs,
            "upload": not cs,
            "sha256": seeded.sha256,
        }

    async def post_fetch(self, content: str, node: str) -> None:
        answer = await self.mesh.client(node).fetch(self.fetch_body(content, node))
        if len(self.topo.backends_used()) > 1:
            await self.dial_back(content, node)
        if clients.client_of(self.topo.node(node).options) != clients.MESHBED:
            await self.ask_to_dial(content, node)
        if answer.get("infohash") not in (None, self.mesh.contents[content].infohash):
            self.problems.append(f"{node}: /fetch {content} answered infohash {answer.get('infohash')}")
        key = (node, content)
        if key not in self.fetches:
            self.fetches[key] = FetchState(node=node, content=content, posted_wall=time.time())

    async def refetch(self, node: str) -> None:
        """After a restart: POST /fetch again for every content it fetches (it resumes)."""
        for (n, content), fs in list(self.fetches.items()):
            if n == node and not (fs.complete and fs.verified):
                await self.post_fetch(content, node)
        for content in self.pending.pop(node, []):
            await self.post_fetch(content, node)

    # --- timeline -----------------------------------------------------------------------
    async def _event(self, ev: Any) -> None:
        mesh = self.mesh
        record: dict[str, Any] = {"at": ev.at, "t": round(time.time() - self.t0, 3)}
        if isinstance(ev, FetchEvent):
            record.update(kind="fetch", content=ev.content, nodes=list(ev.nodes))
            self.fetch_started.setdefault(ev.content, time.time())
            targets = [n for n in ev.nodes if n not in self.topo.content(ev.content).seeders]
            for n in targets:
                if n in mesh.dead:  # fetches once it is started again
                    self.pending.setdefault(n, []).append(ev.content)
            await asyncio.gather(*(self.post_fetch(ev.content, n) for n in targets if n not in mesh.dead))
        elif isinstance(ev, (KillEvent, StopEvent)):
            graceful = isinstance(ev, StopEvent)
            record.update(kind="stop" if graceful else "kill", nodes=list(ev.nodes))
            await mesh.kill(ev.nodes, graceful=graceful)
        elif isinstance(ev, StartEvent):
            record.update(kind="start", nodes=list(ev.nodes))
            await mesh.start(ev.nodes, self.refetch)
        elif isinstance(ev, LinkEvent):
            record.update(kind="link", nodes=list(ev.nodes), fields=sorted(ev.change.fields))
            for n in ev.nodes:
                mesh.links[n] = mesh.links[n].merged(ev.change)
            await asyncio.gather(*(mesh.apply_link(n) for n in ev.nodes if n not in mesh.dead))
        elif isinstance(ev, PartitionEvent):
            record.update(kind="partition", sides=[list(s) for s in ev.sides])
            await mesh.partition(ev.sides)
        elif isinstance(ev, HealEvent):
            record.update(kind="heal")
            await mesh.heal()
        self.events.append(record)

    async def _timeline(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for ev in self.topo.scenario:
            delay = start + ev.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._event(ev)
            except PeerError as exc:
                self.problems.append(f"event at {ev.at}s: {exc}")
                self.mesh.say(f"event at {ev.at:g}s failed: {exc}")
        self.timeline_done = True

    # --- polling ------------------------------------------------------------------------
    def _absorb(self, statuses: dict[str, Optional[dict[str, Any]]], now: float) -> None:
        for (node, content), fs in self.fetches.items():
            st = statuses.get(node)
            if st is None:
                continue
            t = st.get("torrents", {}).get(self.mesh.contents[content].infohash)
            if not t:
                continue
            fs.torrent = t
            started_at = t.get("started_at")
            if started_at and not fs.offset_known:
                offset = float(started_at) - fs.posted_wall
                fs.clock_offset = offset if abs(offset) > CLOCK_SLACK else 0.0
                fs.offset_known = True
            if t.get("complete") and not fs.complete:
                fs.complete = True
                done_at = t.get("completed_at")
                fs.finished_wall = float(done_at) - fs.clock_offset if done_at else now
            if fs.complete:
                fs.verified = t.get("verified")

    def _sample_lines(self, statuses: dict[str, Optional[dict[str, Any]]], now: float) -> str:
        by_hash: dict[str, list[str]] = {}  # a `magnet: "@NAME"` content shares NAME's hash
        for name, c in self.mesh.contents.items():
            by_hash.setdefault(c.infohash, []).append(name)
        lines = []
        for node, st in statuses.items():
            row: dict[str, Any] = {"t": round(now - self.t0, 3), "node": node, "up": st is not None}
            if st is not None:
                row["rate_up"] = st.get("rate_up")
                row["rate_down"] = st.get("rate_down")
                row["contents"] = {
                    name: {
                        "have": t.get("have"), "pieces": t.get("pieces"),
                        "rate_up": t.get("rate_up"), "rate_down": t.get("rate_down"),
                        "bytes": t.get("downloaded"), "uploaded": t.get("uploaded"),
                        "first": t.get("uploaded_first"), "wasted": t.get("wasted"),
                        "wasted_from": t.get("wasted_from"),
                    }
                    for h, t in st.get("torrents", {}).items() if h in by_hash
                    for name in self._names_on(node, by_hash[h])
                }
            self.samples.append(row)
            lines.append(json.dumps(row, separators=(",", ":")))
        return "\n".join(lines) + "\n"

    def _names_on(self, node: str, names: list[str]) -> list[str]:
        """Of the contents sharing one infohash, those ``node`` seeds or fetches."""
        mine = [n for n in names if (node, n) in self.fetches or node in self.topo.content(n).seeders]
        return mine or names[:1]

    async def _append_samples(self, text: str) -> None:
        """Append to samples.jsonl off the event loop (a slow disk must not delay polls)."""

        def append() -> None:
            with open(self.samples_path, "a") as f:
                f.write(text)

        await asyncio.to_thread(append)

    def _sample(self, statuses: dict[str, Optional[dict[str, Any]]], now: float) -> Sample:
        progress: dict[str, tuple[int, int]] = {}
        done: dict[str, tuple[int, int]] = {}
        for name, c in self.mesh.contents.items():
            fetchers = [fs for (n, cn), fs in self.fetches.items() if cn == name]
            if not fetchers:
                continue
            have = sum(int(fs.torrent.get("have") or 0) for fs in fetchers)
            progress[name] = (have, c.chunks * len(fetchers))
            done[name] = (sum(1 for fs in fetchers if fs.complete and fs.verified), len(fetchers))
        return Sample(elapsed=now - self.t0, statuses=statuses, progress=progress, done=done)

    def _stuck(self, statuses: dict[str, Optional[dict[str, Any]]], sample: Sample, now: float) -> list[str]:
        """Contents with unfinished fetches, no live complete source and no progress lately."""
        if any(isinstance(ev, StartEvent) and ev.at > now - self.t0 for ev in self.topo.scenario):
            return []  # someone may come back
        out = []
        for name, c in self.mesh.contents.items():
            have, want = sample.progress.get(name, (0, 0))
            if want == 0 or sample.done.get(name, (0, 1))[0] == sample.done.get(name, (0, 1))[1]:
                continue
            got = sum(int(fs.torrent.get("downloaded") or 0) for (n, cn), fs in self.fetches.items() if cn == name)
            prev = self._progress_at.get(name)
            if prev is None or got > prev[0]:
                self._progress_at[name] = (got, now)
                continue
            content = self.topo.content(name)
            candidates = list(content.seeders)
            if self.topo.strategy != "client-server":
                candidates += [n for (n, cn), fs in self.fetches.items() if cn == name]
            alive_source = False
            for n in candidates:
                st = statuses.get(n)
                t = (st or {}).get("torrents", {}).get(c.infohash)
                if st is not None and t and t.get("complete"):
                    alive_source = True
            if not alive_source and now - prev[1] >= STUCK_SECONDS:
                out.append(name)
        return out

    def _stalled(self, now: float) -> list[str]:
        """Unfinished fetches (as "node (have/pieces)") when none received a byte for
        STALL_SECONDS after the timeline ended; else []."""
        if not self.timeline_done:
            self._moved_at = (-1, now)
            return []
        open_fetches = [fs for fs in self.fetches.values()
                        if not fs.complete and fs.node not in self.mesh.dead]
        got = sum(int(fs.torrent.get("downloaded") or 0) for fs in open_fetches)
        if got != self._moved_at[0]:
            self._moved_at = (got, now)
            return []
        if not open_fetches or now - self._moved_at[1] < STALL_SECONDS:
            return []
        return [f"{fs.node} ({fs.torrent.get('have', 0)}/{fs.torrent.get('pieces', '?')})" for fs in open_fetches]

    def _all_done(self) -> bool:
        if not self.timeline_done:
            return False
        # A fetcher killed for good cannot finish: it counts as done (and failed).
        wanted = {(n, ev.content) for ev in self.topo.scenario if isinstance(ev, FetchEvent)
                  for n in ev.nodes
                  if n not in self.topo.content(ev.content).seeders and n not in self.mesh.dead}
        return all(
            (key in self.fetches and self.fetches[key].complete and self.fetches[key].verified is not None)
            for key in wanted
        )

    async def run(self) -> PlayResult:
        self.t0 = time.time()
        expect = self.topo.expect.all_complete_within
        limit = self.topo.timeout if expect is None else min(self.topo.timeout, expect)
        deadline = self.t0 + limit
        timeline = asyncio.create_task(self._timeline())
        reason, stuck = "timeout", []
        try:
            while True:
                await asyncio.sleep(POLL_INTERVAL if self.fetches else 0.25)
                statuses = await self.mesh.statuses(keep=True)
                for n in await self.mesh.notice_lost(statuses):  # a host gone: stop waiting for it
                    self.problems.append(f"lost {n}: {self.mesh.lost[n]}")
                now = time.time()
                self.last = statuses
                self._absorb(statuses, now)
                await self._append_samples(self._sample_lines(statuses, now))
                sample = self._sample(statuses, now)
                if self.on_sample is not None:
                    self.on_sample(sample)
                if timeline.done() and timeline.exception() is not None:
                    raise timeline.exception()  # type: ignore[misc]
                if self._all_done():
                    reason = "complete"
                    break
                stuck = self._stuck(statuses, sample, now)
                if stuck:
                    reason = "stuck"
                    for name in stuck:
                        self.mesh.say(f"content {name} cannot complete: every node that has it is down")
                    break
                self.stalled = self._stalled(now)
                if self.stalled:
                    reason = "stalled"
                    self.mesh.say(f"no data moved for {STALL_SECONDS:.0f}s; stalled: {', '.join(self.stalled)}")
                    break
                if now >= deadline:
                    reason = "deadline" if expect is not None and expect <= self.topo.timeout else "timeout"
                    break
        finally:
            if not timeline.done():
                timeline.cancel()
                await asyncio.gather(timeline, return_exceptions=True)
        return PlayResult(
            t0=self.t0, ended=time.time(), reason=reason, fetch_started=dict(self.fetch_started),
            fetches=self.fetches, events=self.events, stuck=stuck, last=self.last,
            problems=self.problems + ([f"stalled: {', '.join(self.stalled)}"] if self.stalled else []),
            samples=self.samples,
        )
