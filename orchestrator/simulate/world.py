"""A topology in virtual time: agents, the network, the scenario, samples, the verdict.

``World(topology).play()`` runs the timeline (fetch, kill, stop, start, link, partition,
heal) and stops like ``meshbed run`` does (orchestrator/scenario.py): every fetch
complete, the deadline, the timeout, or no progress any more. One sample per virtual
second: pieces held, fetches complete, and how much of the swarm's upload capacity was
used (``utilisation``).
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from orchestrator.errors import MeshbedError
from orchestrator.model import (
    FetchEvent,
    HealEvent,
    KillEvent,
    LinkEvent,
    PartitionEvent,
    StartEvent,
    StopEvent,
    Topology,
)
from orchestrator.scenario import Sample
from orchestrator.simulate import setup
from orchestrator.simulate.agents import WIRE_PORT, Endpoint, SimAgent, deliver, sent
from orchestrator.simulate.checkpoint import Checkpoint
from orchestrator.simulate.clock import VirtualClock
from orchestrator.simulate.network import KERNEL_PAYLOAD_SHARE, UNCAPPED_BPS, Network
from peer.core import CoreConfig, PeerState
from peer.wire import BLOCK


class Paused(Exception):
    """The user asked a run with a checkpoint to stop: it is saved and can go on."""

    def __init__(self, path: Path, virtual: float) -> None:
        super().__init__(f"stopped at virtual {virtual:.1f} s; saved to {path}")
        self.path = path
        self.virtual = virtual


def _quiet(message: str) -> None:
    pass


RANDOM_BOOTSTRAP = 6  # as orchestrator/scenario.py: random other fetchers given besides seeders
STUCK_SECONDS = 10.0
STALL_SECONDS = 60.0
CONNECT_TIMEOUT = 5.0  # a dial into a partition (dropped SYNs) fails after this
KERNEL_SHAPED = ("netns", "docker", "swarm", "ssh")  # links shaped by tc: headers count
# The cycle collector while a simulation runs: a young collection per 100,000 allocations
# instead of 700, and fewer full ones (each walks every object of the run). The run
# allocates millions of short-lived tuples and messages; the collections took a quarter of
# the CPU at 1,200 peers (128 -> 97 s, the same events; peak memory no higher).
GC_THRESHOLDS = (100_000, 50, 100)
# Beyond 1,000 nodes, 100 allocations per node: a young collection walks what young objects
# refer to (a HAVE slot's batches for every node, timer buckets), which grows with N, and
# at a fixed count the collections per virtual second grow with N too: N squared. At
# 100,000 nodes the collector took 11-33 % of the CPU (py-spy); with 10,000,000, 49.5 CPU s
# of the first two virtual seconds instead of 133.2 (the same events; docs/simulate.md).
GC_YOUNG_PER_NODE = 100


def gc_thresholds(nodes: int) -> tuple[int, int, int]:
    """The collector's thresholds for a run of ``nodes`` nodes."""
    young, middle, old = GC_THRESHOLDS
    return max(young, GC_YOUNG_PER_NODE * nodes), middle, old


@dataclass
class ContentInfo:
    name: str
    size: int
    piece_length: int
    pieces: int
    seeders: tuple[str, ...]
    fetchers: list[str] = field(default_factory=list)  # in scenario order, no seeders


@dataclass
class FetchRecord:
    node: str
    content: str
    started: float  # virtual seconds of the fetch event
    completed: Optional[float] = None
    resumed: int = 0
    past: dict[str, Any] = field(default_factory=dict)  # counters of cores lost to kills


class World:
    def __init__(self, topology: Topology, say: Callable[[str], None] = _quiet,
                 core_config: Optional[CoreConfig] = None) -> None:
        self.topo = topology
        self.say = say
        self.seed = topology.seed
        self.mesh = topology.name
        self.core_config = core_config or setup.core_config(topology)
        self.clock = VirtualClock()
        kernel = all(b in KERNEL_SHAPED for b in topology.backends_used())
        self.net = Network(self.clock, payload_share=KERNEL_PAYLOAD_SHARE if kernel else 1.0)
        if len(topology.nodes) > setup.LARGE_SWARM:
            self.net.have_quantum = setup.LARGE_HAVE_QUANTUM
            self.net.partial_reshare = True
        self.agents: dict[str, SimAgent] = {}
        self.by_ip: dict[str, SimAgent] = {}
        for i, node in enumerate(topology.nodes):
            port = self.net.add_port(node.name, f"{self.seed}:link:{node.name}")
            self.net.set_link(port, node.link)
            a = SimAgent(self, node.name, i + 1, port)
            port.on_batch = a.received_batch
            self.agents[node.name] = a
            self.by_ip[a.ip] = a
        # every node's address, one tuple each: the cores keep these instead of the equal
        # tuples PEX decodes (100 known addresses per core: ~13 KiB per node saved)
        self._addrs = {a.addr: a.addr for a in self.agents.values()}
        self.group_of = {n.name: n.group for n in topology.nodes}
        self.contents: dict[str, ContentInfo] = {}
        for c in topology.contents:
            assert c.size is not None
            seeders = set(c.seeders)
            fetchers: dict[str, None] = {}
            for ev in topology.scenario:
                if isinstance(ev, FetchEvent) and ev.content == c.name:
                    for n in ev.nodes:
                        if n not in seeders:
                            fetchers[n] = None
            self.contents[c.name] = ContentInfo(
                c.name, c.size, c.chunk_size, -(-c.size // c.chunk_size), c.seeders, list(fetchers))
        self.client_server = topology.strategy == "client-server"
        self.sides: Optional[dict[str, int]] = None  # node -> partition side
        self.fetches: dict[tuple[str, str], FetchRecord] = {}
        self.pending: dict[str, list[str]] = {}  # node -> contents to fetch once started
        self.fetch_started: dict[str, float] = {}
        self.events: list[dict[str, Any]] = []
        self.timeline_done = False
        self.next_cid = 0
        self.samples: list[dict[str, Any]] = []  # per node and second (small meshes only)
        self.utilisation: list[float] = []
        # what the upload carried, per second, as shares of the same capacity (report.py)
        self.carried: dict[str, list[float]] = {"first": [], "copies": [], "waste": []}
        self._carried_last = (0, 0)  # live cores' first copies and waste, bytes
        self.keep_node_samples = len(topology.nodes) <= 64
        self.reason = "timeout"
        self.stuck: list[str] = []
        self._moved_last = 0.0
        self._have_last = -1
        self._have_changed = 0.0
        self._fetcher_sets: dict[str, set[str]] = {}
        self.links = {n.name: n.link for n in topology.nodes}
        self.next_sample = 0.0  # virtual second of the next sample; 0: the run has not begun
        self.spent = (0.0, 0.0)  # wall and CPU seconds of the run before its last checkpoint
        self.resumed = 0  # times this run went on from a checkpoint
        self._save_cpu = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["say"]  # the terminal of the run that saved: the one that resumes gives its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.say = _quiet

    # --- network services for the agents ------------------------------------------------
    def blocked(self, me: str, node: Optional[str], ip: str) -> bool:
        sides = self.sides
        if sides is None:
            return False
        if node is None:
            other = self.by_ip.get(ip)
            if other is None:
                return False
            node = other.name
        a, b = sides.get(me), sides.get(node)
        return a is not None and b is not None and a != b

    def intern_addr(self, addr: tuple[str, int]) -> tuple[str, int]:
        return self._addrs.get(addr, addr)

    def rtt(self, a: SimAgent, b: SimAgent) -> float:
        return a.port.latency + b.port.latency

    def dial(self, agent: SimAgent, content: str, addr: tuple[str, int]) -> None:
        target = self.by_ip.get(addr[0]) if addr[1] == WIRE_PORT else None
        clock = self.clock
        if target is None or self.blocked(agent.name, target.name, target.ip):
            clock.after(CONNECT_TIMEOUT, self._dial_failed, agent, content, addr)
        elif not target.alive or content not in target.cores:
            clock.after(self.rtt(agent, target), self._dial_failed, agent, content, addr)
        else:
            clock.after(1.5 * self.rtt(agent, target), self._connect, agent, content, target)

    def _dial_failed(self, agent: SimAgent, content: str, addr: tuple[str, int]) -> None:
        core = agent.cores.get(content)
        if agent.alive and core is not None:
            core.dial_done(addr, False, self.clock.now)
            agent.run(content, core)

    def _connect(self, agent: SimAgent, content: str, target: SimAgent) -> None:
        now = self.clock.now
        core = agent.cores.get(content)
        if not agent.alive or core is None:
            return
        tcore = target.cores.get(content)
        if (not target.alive or tcore is None or self.blocked(agent.name, target.name, target.ip)):
            core.dial_done(target.addr, False, now)
            agent.run(content, core)
            return
        info = self.contents[content]
        self.next_cid += 1
        cid = self.next_cid
        mine = PeerState(info.pieces, now, peer_id=target.peer_id, ip=target.ip, port=WIRE_PORT,
                         outgoing=True, listen_port=WIRE_PORT, block=BLOCK)
        mine.listen_addr = target.addr  # the equal tuple every core shares
        theirs = PeerState(info.pieces, now, peer_id=agent.peer_id, ip=agent.ip,
                           port=40000 + cid % 20000, outgoing=False, block=BLOCK)
        a_out = self.net.channel(agent.port, target.port)
        b_out = self.net.channel(target.port, agent.port)
        ea = Endpoint(cid, agent, content, core, mine, a_out)
        eb = Endpoint(cid, target, content, tcore, theirs, b_out)
        ea.remote, eb.remote = eb, ea
        a_out.to, b_out.to = eb, ea
        a_out.on_message = b_out.on_message = deliver
        a_out.on_sent = b_out.on_sent = sent
        agent.conns[cid] = ea
        target.conns[cid] = eb
        if not tcore.peer_connected(theirs, now):
            self._drop(eb, now)
            self._drop(ea, now)
            core.dial_done(target.addr, False, now)
            target.run(content, tcore)
            agent.run(content, core)
            return
        ok = core.peer_connected(mine, now)
        core.dial_done(target.addr, ok, now)
        if not ok:
            self._drop(ea, now)
            self.clock.after(target.port.latency, self._drop, eb)
        target.run(content, tcore)
        agent.run(content, core)

    def _drop(self, ep: Endpoint, now: Optional[float] = None) -> None:
        """End our side of a connection: no more traffic, the core forgets the peer."""
        if not ep.open:
            return
        ep.open = False
        ep.out.close()
        ep.agent.conns.pop(ep.id, None)
        agent, core = ep.agent, ep.core
        if agent.alive and agent.cores.get(ep.content) is core:
            core.peer_closed(ep.peer, self.clock.now)
            agent.run(ep.content, core)
        remote = ep.remote
        if remote is None or not remote.open:
            _unlink(ep)

    def disconnect(self, ep: Endpoint, now: float) -> None:
        """Our side closes; the other side notices one latency later (FIN/RST)."""
        self._drop(ep)
        remote = ep.remote
        if remote is not None and remote.open:
            remote.out.close()  # what it was sending us is dropped
            self.clock.after(remote.agent.port.latency, self._drop, remote)

    def completed(self, agent: SimAgent, content: str) -> None:
        rec = self.fetches.get((agent.name, content))
        if rec is not None and rec.completed is None:
            rec.completed = self.clock.now

    # --- scenario -----------------------------------------------------------------------
    def bootstrap(self, content: str, node: str) -> list[tuple[str, int]]:
        """Seeders plus RANDOM_BOOTSTRAP random other fetchers, as `run` gives (same RNG)."""
        info = self.contents[content]
        chosen = [s for s in info.seeders if s != node]
        if not self.client_server:
            pool = info.fetchers
            k = min(RANDOM_BOOTSTRAP, len(pool) - (1 if node in self._fetcher_set(content) else 0))
            rng = random.Random(f"{self.seed}:{content}:{node}")
            picked = rng.sample(pool, min(len(pool), k + 1))  # one more: it may be us
            chosen += [p for p in picked if p != node][:k]
        return [self.agents[n].addr for n in chosen]

    def _fetcher_set(self, content: str) -> set[str]:
        if content not in self._fetcher_sets:
            self._fetcher_sets[content] = set(self.contents[content].fetchers)
        return self._fetcher_sets[content]

    def start_fetch(self, node: str, content: str) -> None:
        agent = self.agents[node]
        now = self.clock.now
        core = agent.cores.get(content)
        if core is None:
            have = agent.kept.pop(content, [])
            core = agent.add_core(content, have, upload=not self.client_server,
                                  pex=not self.client_server)
            rec = self.fetches.get((node, content))
            if rec is not None:
                rec.resumed = len(have)
            if core.complete:
                core.complete_on_resume()
        if (node, content) not in self.fetches:
            self.fetches[(node, content)] = FetchRecord(node, content, now)
        core.add_peers(self.bootstrap(content, node), "given", now)
        agent.run(content, core)

    def seed_all(self) -> None:
        for info in self.contents.values():
            for s in info.seeders:
                core = self.agents[s].add_core(info.name, range(info.pieces), upload=True,
                                               pex=not self.client_server)
                self.agents[s].run(info.name, core)

    def kill(self, names: tuple[str, ...]) -> None:
        now = self.clock.now
        for n in names:
            agent = self.agents[n]
            if not agent.alive:
                continue
            for cname, core in agent.cores.items():
                agent.kept[cname] = agent.have(cname)
                rec = self.fetches.get((n, cname))
                if rec is not None:
                    for k in ("downloaded", "uploaded", "redownloaded", "wasted"):
                        rec.past[k] = rec.past.get(k, 0) + getattr(core, k)
                    src = rec.past.setdefault("bytes_from", {})
                    for k, v in core.bytes_from.items():
                        src[k] = src.get(k, 0) + v
            agent.alive = False
            for ep in list(agent.conns.values()):
                self.disconnect(ep, now)
            agent.cores = {}
            agent.conns = {}

    def start(self, names: tuple[str, ...]) -> None:
        for n in names:
            agent = self.agents[n]
            if agent.alive:
                continue
            agent.alive = True
            agent.ticking = False
            kept, agent.kept = agent.kept, {}
            for cname, have in kept.items():
                info = self.contents[cname]
                if n in info.seeders:
                    core = agent.add_core(cname, have, upload=True, pex=not self.client_server)
                    agent.run(cname, core)
                else:
                    agent.kept[cname] = have
                    self.start_fetch(n, cname)
            for cname in self.pending.pop(n, []):
                self.start_fetch(n, cname)

    def _event(self, ev: Any) -> None:
        now = self.clock.now
        record: dict[str, Any] = {"at": ev.at, "t": round(now, 3)}
        if isinstance(ev, FetchEvent):
            record.update(kind="fetch", content=ev.content, nodes=list(ev.nodes))
            self.fetch_started.setdefault(ev.content, now)
            seeders = set(self.contents[ev.content].seeders)
            for n in ev.nodes:
                if n in seeders:
                    continue
                if not self.agents[n].alive:
                    self.pending.setdefault(n, []).append(ev.content)
                    self.fetches.setdefault((n, ev.content), FetchRecord(n, ev.content, now))
                else:
                    self.start_fetch(n, ev.content)
        elif isinstance(ev, (KillEvent, StopEvent)):
            record.update(kind="stop" if isinstance(ev, StopEvent) else "kill", nodes=list(ev.nodes))
            self.kill(ev.nodes)
        elif isinstance(ev, StartEvent):
            record.update(kind="start", nodes=list(ev.nodes))
            self.start(ev.nodes)
        elif isinstance(ev, LinkEvent):
            record.update(kind="link", nodes=list(ev.nodes), fields=sorted(ev.change.fields))
            for n in ev.nodes:
                self.links[n] = self.links[n].merged(ev.change)
                self.net.set_link(self.agents[n].port, self.links[n])
        elif isinstance(ev, PartitionEvent):
            record.update(kind="partition", sides=[list(s) for s in ev.sides])
            self.sides = {n: i for i, side in enumerate(ev.sides) for n in side}
            self._blocklist_changed()
        elif isinstance(ev, HealEvent):
            record.update(kind="heal")
            self.sides = None
            self._blocklist_changed()
        self.events.append(record)

    def _blocklist_changed(self) -> None:
        now = self.clock.now
        for agent in self.agents.values():
            if not agent.alive:
                continue
            for cname, core in list(agent.cores.items()):
                core.link_changed(now)
                agent.run(cname, core)

    # --- sampling and the end -----------------------------------------------------------
    def _carry(self, used: float, cap: float) -> None:
        """This second's upload split into first copies, further copies and waste (counted
        when a block's last byte lands; a node that dies takes its counts along)."""
        first = waste = 0
        for a in self.agents.values():
            if a.alive:
                for core in a.cores.values():
                    first += core.uploaded_first
                    waste += core.wasted
        f0, w0 = self._carried_last
        self._carried_last = (first, waste)
        df, dw = max(0, first - f0), max(0, waste - w0)
        share = (lambda b: round(b / cap, 4)) if cap else (lambda b: 0.0)
        self.carried["first"].append(share(df))
        self.carried["waste"].append(share(dw))
        self.carried["copies"].append(share(max(0.0, used - df - dw)))

    def _sample(self, on_sample: Optional[Callable[[Sample], None]]) -> bool:
        """Once a virtual second: samples, progress, and True when the run is over."""
        now = self.clock.now
        progress: dict[str, tuple[int, int]] = {}
        done: dict[str, tuple[int, int]] = {}
        have_total = 0
        for name, info in self.contents.items():
            recs = [r for (n, c), r in self.fetches.items() if c == name]
            if not recs:
                continue
            have = 0
            for r in recs:
                core = self.agents[r.node].cores.get(name)
                have += core.picker.have_count if core is not None else len(self.agents[r.node].kept.get(name, ()))
            have_total += have
            progress[name] = (have, info.pieces * len(recs))
            done[name] = (sum(1 for r in recs if r.completed is not None), len(recs))
        moved = self.net.moved_now()
        cap = sum(min(a.port.up, UNCAPPED_BPS / 8) for a in self.agents.values() if a.alive and a.cores)
        used = moved - self._moved_last
        self._moved_last = moved
        if self.fetch_started:
            self.utilisation.append(round(used / cap, 4) if cap else 0.0)
            self._carry(used, cap)
        if self.keep_node_samples:
            for name, a in self.agents.items():
                row: dict[str, Any] = {"t": round(now, 3), "node": name, "up": a.alive}
                if a.alive:
                    row["contents"] = {c: {"have": core.picker.have_count, "pieces": core.num_pieces,
                                           "bytes": core.downloaded, "uploaded": core.uploaded}
                                       for c, core in a.cores.items()}
                self.samples.append(row)
        if on_sample is not None:
            statuses: dict[str, Optional[dict[str, Any]]] = {"swarm": {"rate_down": used}}
            for name, a in self.agents.items():
                if not a.alive:
                    statuses[name] = None
            on_sample(Sample(now, statuses, progress, done))
        if have_total != self._have_last:
            self._have_last, self._have_changed = have_total, now
        return self._over(now)

    def _all_done(self) -> bool:
        if not self.timeline_done:
            return False
        for (n, _c), rec in self.fetches.items():
            if rec.completed is None and self.agents[n].alive:
                return False
        return True

    def _over(self, now: float) -> bool:
        if self._all_done():
            self.reason = "complete"
            return True
        if not self.timeline_done:
            return False
        quiet = now - self._have_changed
        if quiet >= STUCK_SECONDS:
            stuck = [c for c in self.contents if self._unfinished(c) and not self._source_alive(c)]
            if stuck:
                self.stuck = stuck
                self.reason = "stuck"
                return True
        if quiet >= STALL_SECONDS:
            self.reason = "stalled"
            return True
        return False

    def _unfinished(self, content: str) -> bool:
        return any(r.completed is None for (n, c), r in self.fetches.items() if c == content)

    def _source_alive(self, content: str) -> bool:
        """Do the live nodes together hold every piece?"""
        info = self.contents[content]
        missing = set(range(info.pieces))
        for a in self.agents.values():
            core = a.cores.get(content)
            if a.alive and core is not None:
                status = core.picker.status
                missing = {i for i in missing if status[i] != 3}
                if not missing:
                    return True
        return False

    def play(self, on_sample: Optional[Callable[[Sample], None]] = None,
             checkpoint: Optional[Checkpoint] = None) -> float:
        """Run the whole scenario, or the rest of it for a world loaded from a checkpoint;
        returns the wall seconds the run took (all its parts). With ``checkpoint``, the world
        saves itself there every ``checkpoint.every`` wall seconds (at a virtual second) and,
        when the user asks to stop, at the next event: then :class:`Paused`."""
        saved = gc.get_threshold()
        gc.set_threshold(*gc_thresholds(len(self.agents)))
        started = time.monotonic(), time.process_time()
        self._save_cpu = 0.0  # CPU of this part's saves
        try:
            self._play(on_sample, checkpoint, started)
        finally:
            gc.set_threshold(*saved)
        return self.spent[0] + time.monotonic() - started[0]

    def cpu_seconds(self, started: float) -> float:
        """CPU seconds the simulation of the whole run took, this part having begun at
        ``started`` (process time); what saving checkpoints took is not counted."""
        return self.spent[1] + time.process_time() - started - self._save_cpu

    def _play(self, on_sample: Optional[Callable[[Sample], None]], checkpoint: Optional[Checkpoint],
              started: tuple[float, float]) -> None:
        topo = self.topo
        expect = topo.expect.all_complete_within
        limit = topo.timeout if expect is None else min(topo.timeout, expect)
        clock = self.clock
        if not self.next_sample:  # a new run, not one resumed from a checkpoint
            self.seed_all()
            for ev in topo.scenario:
                clock.at(ev.at, self._event, ev)
            last_at = max((ev.at for ev in topo.scenario), default=0.0)
            clock.at(last_at, self._timeline_over)
            self.next_sample = 1.0
        else:
            self.resumed += 1
        while True:
            t = self.next_sample
            stop = checkpoint is not None and checkpoint.stop_requested
            if not stop:  # (asked between two seconds: clock.run would not see it)
                clock.run(until=min(t, limit))
            if checkpoint is not None and checkpoint.stop_requested:
                self._save(checkpoint, started)
                raise Paused(checkpoint.path, clock.now)
            if self._sample(on_sample):
                break
            if t >= limit:
                self.reason = "deadline" if expect is not None and expect <= topo.timeout else "timeout"
                break
            self.next_sample = t + 1.0
            if checkpoint is not None and checkpoint.due():
                self._save(checkpoint, started)

    def _save(self, checkpoint: Checkpoint, started: tuple[float, float]) -> None:
        """Save to ``checkpoint``. A periodic save that fails (disk full) is skipped with a
        warning: the run matters more than its checkpoint; a stop that cannot save is an
        error (MeshbedError, exit 1)."""
        before = self.spent
        wall, cpu = time.monotonic() - started[0], time.process_time() - started[1]
        self.spent = (before[0] + wall, before[1] + cpu - self._save_cpu)  # what the next part adds to
        try:
            size = checkpoint.save(self)
        except OSError as exc:
            if checkpoint.stop_requested:
                raise MeshbedError(f"cannot save the checkpoint {checkpoint.path}: {exc.strerror or exc}") from None
            self.say(f"warning: cannot save the checkpoint {checkpoint.path} ({exc.strerror or exc}); "
                     "going on, next try in --checkpoint-every")
            return
        finally:
            self.spent = before
            self._save_cpu += time.process_time() - started[1] - cpu
        self.say(f"checkpoint at virtual {self.clock.now:.1f} s: {checkpoint.path} ({size / 2**20:.0f} MiB)")

    def _timeline_over(self) -> None:
        self.timeline_done = True


def _unlink(ep: Endpoint) -> None:
    """Both sides of a connection are closed (their channels too), and nothing follows its
    links again: break its cycles (endpoint <-> peer state, endpoint <-> endpoint, channel ->
    endpoint), so that reference counting frees it at once, not the cycle collector (at
    1,200 nodes the 11,146 connections closed in a run were all of its garbage: 232,303
    objects; at 100,000 nodes with the young threshold of ``gc_thresholds``, 7,250 MiB at
    virtual second 1 against 6,775 with the old threshold; 6,622 once unlinked)."""
    for e in (ep, ep.remote):
        if e is not None:
            e.peer.key = None
            e.out.to = None
            e.remote = None
