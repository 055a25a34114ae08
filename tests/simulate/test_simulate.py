"""`meshbed simulate`: small topologies in virtual time (each well under a second)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator import cli
from orchestrator.errors import InputError
from orchestrator.simulate import setup
from orchestrator.simulate.report import build_report
from orchestrator.simulate.world import World

SWARM = """\
name: simtest
backend: {backend}
seed: {seed}
strategy: {strategy}
chunk_size: 64KiB
defaults:
  link: {{up: 8mbit, down: 40mbit, latency: 5ms}}
groups:
  seeders:
    count: 1
    link: {{up: 16mbit}}
  leechers:
    count: {n}
content:
  movie:
    size: 4MiB
    seeders: [seeders]
scenario:
  - {{at: 0s, fetch: {{content: movie, by: leechers}}}}
{extra}
"""


def write(tmp_path: Path, text: str, name: str = "topo.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def simulate(tmp_path: Path, n: int = 8, strategy: str = "swarm", seed: int = 3, extra: str = "",
             backend: str = "local") -> dict[str, Any]:
    path = write(tmp_path, SWARM.format(n=n, strategy=strategy, seed=seed, extra=extra, backend=backend))
    world = World(setup.load(path))
    wall = world.play()
    return build_report(world, wall)


def stable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "wall_seconds"}


def test_every_fetcher_completes_within_the_bounds(tmp_path: Path) -> None:
    r = simulate(tmp_path)
    d = r["distribution"]["movie"]
    assert r["ok"] and r["simulated"] is True and r["reason"] == "complete"
    assert d["verified"] == d["fetchers"] == 8
    assert len(d["completions"]) == 8 and d["completions"] == sorted(d["completions"])
    assert d["seconds"] >= d["lower_bound_seconds"]
    assert d["seconds"] == d["completions"][-1]
    assert all(0.0 <= u <= 1.0 + 1e-3 for u in r["utilisation"])
    # what the upload carried: a series per kind, as long as utilisation; the seeder's one
    # copy of each piece is the only first copy, so first copies are a small share
    carried = r["carried"]
    assert {k: len(v) for k, v in carried.items()} == {k: len(r["utilisation"]) for k in carried}
    assert set(carried) == {"first", "copies", "waste"}
    assert 0 < sum(carried["first"]) < sum(carried["copies"])
    assert r["events_processed"] > 0
    for name, node in r["nodes"].items():
        if name.startswith("leechers"):
            got = node["fetches"]["movie"]["bytes_from"]
            assert sum(got.values()) >= 4 * 2**20  # every byte came from some peer
            assert len(got) > 1  # a swarm: not only from the seeder


def test_same_seed_same_report_other_seed_other_run(tmp_path: Path) -> None:
    a = simulate(tmp_path, seed=3)
    b = simulate(tmp_path, seed=3)
    c = simulate(tmp_path, seed=4)
    assert stable(a) == stable(b)
    assert a["distribution"]["movie"]["completions"] != c["distribution"]["movie"]["completions"]


def test_play_collects_cycles_rarely_and_restores_the_collector(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from orchestrator.simulate import world as world_mod

    seen: list[tuple[int, ...]] = []

    def sample_once(self: World, on_sample: Any) -> bool:
        seen.append(gc.get_threshold())
        return True  # the run is over after its first second

    monkeypatch.setattr(world_mod.World, "_sample", sample_once)
    before = gc.get_threshold()
    simulate(tmp_path, n=2)
    assert seen == [world_mod.GC_THRESHOLDS]
    assert gc.get_threshold() == before


def test_the_young_collections_grow_rarer_with_the_number_of_nodes() -> None:
    from orchestrator.simulate.world import GC_THRESHOLDS, gc_thresholds

    assert gc_thresholds(2) == gc_thresholds(1_000) == GC_THRESHOLDS
    assert gc_thresholds(10_000) == (1_000_000, *GC_THRESHOLDS[1:])
    assert gc_thresholds(100_000) == (10_000_000, *GC_THRESHOLDS[1:])


def test_closed_connections_leave_no_cycles_behind(tmp_path: Path) -> None:
    """Reference counting frees a connection closed on both sides (a kill closes them all):
    the cycle collector, which a big run calls rarely, finds none of it."""
    import gc

    from orchestrator.simulate.agents import Endpoint
    from orchestrator.simulate.network import Channel

    path = write(tmp_path, SWARM.format(n=8, strategy="swarm", seed=3, backend="local",
                                        extra="  - {at: 1s, kill: leechers-0}\n  - {at: 2s, start: leechers-0}\n"
                                              "  - {at: 2.5s, kill: leechers-1}\n"))
    world = World(setup.load(path))
    gc.collect()
    gc.disable()
    try:
        world.play()
        closed = sum(1 for o in gc.get_objects() if isinstance(o, Endpoint) and not o.open)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        leaked = [o for o in gc.garbage if isinstance(o, (Endpoint, Channel))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert closed == 0  # every closed endpoint was freed, none is waiting in a cycle
    assert leaked == []


def test_client_server_is_slower_than_the_swarm(tmp_path: Path) -> None:
    swarm = simulate(tmp_path, n=8)["distribution"]["movie"]
    cs = simulate(tmp_path, n=8, strategy="client-server")["distribution"]["movie"]
    assert cs["verified"] == 8
    assert cs["seconds"] > 1.5 * swarm["seconds"]
    # fetchers upload nothing: every byte comes from the server, near its bound
    assert cs["seconds"] >= cs["client_server_bound_seconds"]
    assert cs["seeder_copies"] == pytest.approx(8.0, abs=0.01)


def test_a_partition_delays_completion_until_heal(tmp_path: Path) -> None:
    free = simulate(tmp_path)["distribution"]["movie"]
    split = simulate(tmp_path, extra=(
        '  - {at: 0.5s, partition: [[seeders, "leechers[0:4]"], ["leechers[4:]"]]}\n'
        "  - {at: 20s, heal: true}\n"))
    d = split["distribution"]["movie"]
    assert split["ok"] and d["verified"] == 8
    assert d["seconds"] > 20.0 > free["seconds"]
    assert [e["kind"] for e in split["events"]] == ["fetch", "partition", "heal"]


def test_a_killed_fetcher_resumes_after_start(tmp_path: Path) -> None:
    r = simulate(tmp_path, extra="  - {at: 2s, kill: leechers-0}\n  - {at: 6s, start: leechers-0}\n")
    f = r["nodes"]["leechers-0"]["fetches"]["movie"]
    assert r["ok"] and f["complete"]
    assert f["resumed_pieces"] > 0
    assert f["seconds"] > 6.0


def test_a_seeder_killed_for_good_leaves_the_content_stuck(tmp_path: Path) -> None:
    r = simulate(tmp_path, extra="  - {at: 0.3s, kill: seeders}\n")
    assert not r["ok"]
    assert r["reason"] == "stuck" and r["stuck"] == ["movie"]


def test_kernel_shaped_backends_lose_header_share(tmp_path: Path) -> None:
    local = simulate(tmp_path, backend="local")["distribution"]["movie"]["seconds"]
    netns = simulate(tmp_path, backend="netns")["distribution"]["movie"]["seconds"]
    assert netns > local * 1.02


def test_cli_writes_report_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = write(tmp_path, SWARM.format(n=4, strategy="swarm", seed=1, extra="", backend="local"))
    code = cli.main(["simulate", str(topo), "--report", str(tmp_path / "r.json"),
                     "--html", str(tmp_path / "r.html")])
    assert code == 0
    r = json.loads((tmp_path / "r.json").read_text())
    for key in ("name", "backend", "ok", "contents", "distribution", "nodes", "expect", "events",
                "simulated", "wall_seconds", "events_processed", "utilisation"):
        assert key in r
    page = (tmp_path / "r.html").read_text()
    assert "meshbed simulate" in page and "fetchers complete over time" in page
    assert "this run against both bounds, 10 to 100,000 fetchers" in page


def test_cli_exit_1_when_expectations_fail(tmp_path: Path) -> None:
    topo = write(tmp_path, SWARM.format(n=4, strategy="swarm", seed=1, backend="local",
                                        extra="expect:\n  all_complete_within: 1s\n"))
    assert cli.main(["simulate", str(topo)]) == 1


def test_bad_input_is_refused_like_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = SWARM.format(n=4, strategy="swarm", seed=1, extra="", backend="local").replace(
        "by: leechers", "by: leechersx")
    topo = write(tmp_path, bad)
    assert cli.main(["simulate", str(topo)]) == 2
    sim_err = capsys.readouterr().err.strip()
    assert cli.main(["run", str(topo)]) == 2
    run_err = capsys.readouterr().err.strip()
    assert sim_err == run_err
    assert sim_err.startswith(f"{topo.resolve()}:") or sim_err.startswith(f"{topo}:")
    line = sim_err.split(":")[1]
    assert line.isdigit() and bad.splitlines()[int(line) - 1].lstrip().startswith("- {at: 0s, fetch")


def test_backend_only_fields_get_one_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SWARM.format(n=2, strategy="swarm", seed=1, extra="", backend="docker").replace(
        "    count: 2\n", "    count: 2\n    image: example/peer:1\n    resources: {cpus: 0.5}\n")
    code = cli.main(["simulate", str(write(tmp_path, text))])
    err = capsys.readouterr().err
    assert code == 0
    notes = [ln for ln in err.splitlines() if ln.startswith("note: simulate ignores")]
    assert notes == ["note: simulate ignores image, resources (only a real backend uses them)"]


def test_too_large_for_memory_is_refused_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    topo = write(tmp_path, SWARM.format(n=200_000, strategy="swarm", seed=1, extra="", backend="local"))
    monkeypatch.setattr(setup, "available_memory", lambda: 2 << 30)
    assert cli.main(["simulate", str(topo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(str(topo.resolve())) and "200001 nodes needs about" in err
    with pytest.raises(InputError):
        setup.check_memory(setup.load(topo))


def test_large_swarms_run_with_capped_agents(tmp_path: Path) -> None:
    """Beyond LARGE_SWARM nodes the agents keep fewer connections and addresses, and the
    memory estimate counts those caps; at LARGE_SWARM the agent's own defaults hold."""
    small = setup.load(write(tmp_path, SWARM.format(n=setup.LARGE_SWARM - 1, strategy="swarm", seed=1,
                                                    extra="", backend="local")))
    big = setup.load(write(tmp_path, SWARM.format(n=setup.LARGE_SWARM, strategy="swarm", seed=1, extra="",
                                                  backend="local"), "big.yaml"))
    assert (setup.core_config(small).max_peers, setup.core_config(small).max_known) == (50, 1000)
    capped = setup.core_config(big)
    assert (capped.max_peers, capped.max_known) == (setup.LARGE_MAX_PEERS, setup.LARGE_MAX_KNOWN)
    per_node_small = setup.memory_estimate(small) / len(small.nodes)
    per_node_big = setup.memory_estimate(big) / len(big.nodes)
    assert per_node_big < 0.5 * per_node_small
    # client-server: fetchers hold one connection; a cap would make the server turn them away
    server = setup.core_config(setup.load(write(tmp_path, SWARM.format(
        n=setup.LARGE_SWARM, strategy="client-server", seed=1, extra="", backend="local"), "cs.yaml")))
    assert (server.max_peers, server.max_known) == (50, 1000)
    assert server.block_seconds == capped.block_seconds == setup.WHOLE_PIECE_BLOCKS


def test_a_capped_swarm_completes_with_partial_re_shares_and_repeats_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The big-swarm settings (caps, whole pieces, 50 ms HAVE slots, partial re-shares) on a
    small swarm: every fetcher completes, the report says so, and the same seed repeats."""
    monkeypatch.setattr(setup, "LARGE_SWARM", 4)
    first = simulate(tmp_path, n=12, seed=5)
    assert first["ok"] and first["reason"] == "complete"
    assert first["agent_limits"]["partial_reshare"] is True
    assert first["agent_limits"]["have_batch_seconds"] == setup.LARGE_HAVE_QUANTUM
    assert stable(simulate(tmp_path, n=12, seed=5)) == stable(first)


def test_cores_keep_the_nodes_own_address_tuples(tmp_path: Path) -> None:
    """Every address a simulated core knows (given, from PEX, incoming) is its node's one
    tuple (World.intern_addr), not an equal copy: the memory a big swarm is sized for."""
    path = write(tmp_path, SWARM.format(n=12, strategy="swarm", seed=2, extra="", backend="local"))
    world = World(setup.load(path))
    world.play()
    own = {id(a.addr) for a in world.agents.values()}
    known = [addr for a in world.agents.values() for core in a.cores.values() for addr in core.known]
    assert len(known) > 12  # PEX spread addresses beyond the bootstrap ones
    assert all(id(addr) in own for addr in known)
