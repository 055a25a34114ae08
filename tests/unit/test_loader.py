"""orchestrator.loader: YAML -> Topology, and `meshbed validate`.

The error corpus: every ``tests/data/invalid/*.yaml`` starts with
``# error: LINE: FRAGMENT`` (regenerate with ``python3 tests/data/make_invalid_corpus.py``);
loading it must raise InputError with that line and a message containing that fragment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.cli import main as cli_main
from orchestrator.dump import topology_to_yaml
from orchestrator.errors import InputError
from orchestrator.loader import load_topology, load_topology_text
from orchestrator.model import (
    FetchEvent,
    HealEvent,
    KillEvent,
    Link,
    LinkEvent,
    PartitionEvent,
    StartEvent,
    StopEvent,
)

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
VALID = sorted((DATA / "valid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
EXPECTED = re.compile(r"^# error: (\d+): (.+)$")
MiB = 1024 * 1024


def expected_error(path: Path) -> tuple[int, str]:
    first = path.read_text().splitlines()[0]
    m = EXPECTED.match(first)
    assert m, f"{path.name}: first line must be '# error: LINE: FRAGMENT'"
    return int(m.group(1)), m.group(2)


def test_corpus_is_there() -> None:
    assert len(INVALID) >= 80 and len(VALID) >= 5 and len(EXAMPLES) >= 7


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_corpus(path: Path) -> None:
    line, fragment = expected_error(path)
    with pytest.raises(InputError) as info:
        load_topology(path)
    err = info.value
    assert fragment in err.message
    assert err.line == line, str(err)
    assert err.file == str(path)
    text = str(err)
    assert text.startswith(f"{path}:{line}: ") and "\n" not in text


@pytest.mark.parametrize("path", VALID + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_files_round_trip(path: Path) -> None:
    topology = load_topology(path)
    again = load_topology_text(topology_to_yaml(topology), path)
    assert again == topology
    assert {n.name for n in topology.nodes} == {
        f"{g.name}-{i}" for g in topology.groups for i in range(g.count)
    }
    ats = [ev.at for ev in topology.scenario]
    assert ats == sorted(ats)


def test_design_example_in_detail() -> None:
    t = load_topology(DATA / "valid" / "design-example.yaml")
    assert (t.name, t.backend, t.seed, t.strategy, t.chunk_size) == (
        "quickstart",
        "local",
        7,
        "swarm",
        256 * 1024,
    )
    assert t.defaults_link == Link(up_bps=100_000_000, down_bps=100_000_000)
    seeders, leechers, lab = t.groups
    # group link merges over defaults.link
    assert seeders.link == Link(up_bps=40_000_000, down_bps=100_000_000)
    assert leechers.backend == "docker" and leechers.count == 16
    assert leechers.resources.cpus == 0.5 and leechers.resources.memory_bytes == 256 * MiB
    assert (lab.backend, lab.count, lab.options["devices"]) == ("ssh", 2, ("pi-kitchen", "router-1"))
    assert t.node("lab-1").options == {"device": "router-1"} and t.node("lab-1").backend == "ssh"
    assert t.backends_used() == ("local", "docker", "ssh")
    movie, paper = t.contents
    assert (movie.size, movie.chunk_size, movie.seeders, movie.synthetic) == (
        32 * MiB,
        256 * 1024,
        ("seeders-0",),
        True,
    )
    assert paper.path == (DATA / "valid" / "files" / "paper.txt").resolve()  # relative to the YAML
    assert paper.size == paper.path.stat().st_size and not paper.synthetic
    assert paper.seeders == ("leechers-0",)
    kinds = [type(ev) for ev in t.scenario]
    assert kinds == [FetchEvent, LinkEvent, KillEvent, StartEvent, PartitionEvent, HealEvent]
    link = t.scenario[1]
    assert isinstance(link, LinkEvent)
    assert link.change.fields == {"latency_ms", "loss"}
    assert (link.change.latency_ms, link.change.loss) == (80.0, 0.02)
    assert link.nodes == tuple(f"leechers-{i}" for i in range(4, 8))
    assert Link(up_bps=1).merged(link.change) == Link(up_bps=1, latency_ms=80.0, loss=0.02)
    part = t.scenario[4]
    assert isinstance(part, PartitionEvent) and len(part.sides) == 2
    assert part.sides[0][0] == "seeders-0" and len(part.sides[1]) == 8
    assert t.fetchers("movie") == tuple(f"leechers-{i}" for i in range(16))
    assert t.expect.all_complete_within == 300.0 and t.timeout == 600.0


def test_defaults_and_units() -> None:
    t = load_topology(DATA / "valid" / "units.yaml")
    a, b = t.groups
    assert a.link == Link(
        up_bps=12_000_000, down_bps=None, latency_ms=500.0, jitter_ms=1.5, loss=0.015
    )
    assert b.link.up_bps == 10_000_000 and b.link.latency_ms == 120_000.0
    assert t.content("two").size == 1536 * MiB and t.content("two").chunk_size == 4 * MiB
    assert t.content("three").size == 500_000 and t.content("three").chunk_size == 16 * 1024
    assert t.content("one").chunk_size == 16 * 1024  # chosen from size: 1 MiB -> 16 KiB
    assert t.content("four").chunk_size == 512 * 1024  # 2 GB -> 512 KiB
    assert (t.monitoring, t.timeout, t.seed) == (True, 900.0, 42)
    assert t.expect.min_efficiency == 0.5 and t.expect.all_complete_within == 3600.0
    assert [ev.at for ev in t.scenario] == [0.0, 0.5, 1.5]  # `at` defaults to 0s; sorted
    fetch = t.scenario[2]
    assert isinstance(fetch, FetchEvent) and fetch.nodes == ("b-0", "b-2")


def test_minimal_defaults() -> None:
    t = load_topology_text("name: m\ngroups:\n  a: {}\n")
    assert (t.backend, t.seed, t.strategy, t.chunk_size, t.monitoring) == (
        "local",
        0,
        "swarm",
        None,
        False,
    )
    assert t.groups[0].count == 1 and t.nodes[0].name == "a-0"
    assert t.defaults_link == Link() and t.nodes[0].link == Link()
    assert t.source is None and t.contents == () and t.scenario == ()


def test_scenario_sort_is_stable() -> None:
    t = load_topology(DATA / "valid" / "churn-and-links.yaml")
    at2 = [ev for ev in t.scenario if ev.at == 2.0]
    assert [type(ev) for ev in at2] == [StopEvent, KillEvent]  # file order kept
    at4 = [ev for ev in t.scenario if ev.at == 4.0]
    assert [ev.nodes for ev in at4 if isinstance(ev, LinkEvent)] == [
        ("servers-0", "servers-1"),
        ("clients-2", "clients-3", "clients-4", "clients-5"),
    ]
    first = at4[0]
    assert isinstance(first, LinkEvent)
    assert first.change.fields == {"up_bps", "down_bps"} and first.change.down_bps is None
    start = t.scenario[5]
    assert isinstance(start, StartEvent)
    assert start.nodes == ("clients-10", "clients-11", "clients-0", "clients-1")


def test_relative_content_path_resolves_against_yaml_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.bin").write_bytes(b"x" * 1000)
    topo = tmp_path / "sub" / "t.yaml"
    topo.write_text("name: t\ngroups: {s: {}}\ncontent:\n  d: {path: data.bin, seeders: s}\n")
    t = load_topology(topo)
    assert t.content("d").path == (tmp_path / "sub" / "data.bin").resolve()
    assert t.content("d").size == 1000 and t.content("d").chunk_size == 16 * 1024


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_topology(tmp_path / "missing.yaml")
    assert str(info.value) == f"{tmp_path / 'missing.yaml'}: topology file not found"
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        load_topology(tmp_path / "bin.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_topology(tmp_path)


def test_no_source_means_no_file_in_message() -> None:
    with pytest.raises(InputError) as info:
        load_topology_text("name: x\ngroups:\n  a: {cuont: 1}\n")
    assert (info.value.file, info.value.line) == (None, 3)
    assert str(info.value) == "unknown key 'cuont' in group 'a' (did you mean 'count'?)"


def test_topology_is_frozen() -> None:
    t = load_topology_text("name: m\ngroups:\n  a: {count: 2}\n")
    with pytest.raises(AttributeError):
        t.name = "other"  # type: ignore[misc]
    hash(t.nodes)  # plain tuples of frozen dataclasses


# --- `meshbed validate` through the CLI -------------------------------------------------
def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(ROOT / "examples" / "quickstart.yaml")]) == 0
    out = capsys.readouterr().out
    assert "topology quickstart" in out
    assert re.search(r"seeders\s+1 node\s+local\s+up 16mbit, down 40mbit", out)
    assert re.search(r"leechers\s+8 nodes\s+local", out)
    assert "movie: 16MiB synthetic, chunk 64KiB x 256; seeders: seeders; fetchers: leechers" in out
    assert "lower bound 22.37s, client-server bound 67.11s" in out
    assert out.rstrip().endswith("ok")


def test_validate_says_when_nothing_is_fetched(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(DATA / "valid" / "swarm.yaml")]) == 0
    assert "no fetch event" in capsys.readouterr().out


def test_validate_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "invalid" / "unknown-group-key.yaml"
    assert cli_main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"{path}:6: unknown key 'cuont' in group 'leechers' (did you mean 'count'?)\n"
    )


def test_validate_quiet_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["validate", "-q", str(ROOT / "examples" / "churn.yaml")]) == 0
    assert capsys.readouterr().out == ""
    assert cli_main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'nope.yaml'}: topology file not found\n"


def test_validate_warns_about_unavailable_backends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator import backends

    real_get = backends.get

    def fake_get(name: str) -> type:
        # the real classes (their group options), each with a canned availability
        reason = "cannot reach dockerd\n(is it running?)" if name == "docker" else None
        return type("Canned", (real_get(name),), {"unavailable_reason": classmethod(lambda c: reason)})

    monkeypatch.setattr(backends, "get", fake_get)
    assert cli_main(["validate", str(ROOT / "examples" / "mixed.yaml")]) == 0  # `up` refuses
    captured = capsys.readouterr()
    assert captured.err == (
        "warning: backend docker: cannot reach dockerd (is it running?) (`up` will refuse)\n"
    )
    assert "local, docker" in captured.out


def test_validate_warns_about_ignored_resources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text("name: t\ngroups:\n  a: {count: 2, resources: {cpus: 0.5}}\n")
    assert cli_main(["validate", str(topo)]) == 0
    assert "warning: group a: backend local ignores resources (cpus, memory)\n" in (
        capsys.readouterr().err
    )
