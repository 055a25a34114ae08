"""The simulate benches as a user runs them, on sizes that take seconds: the scale table
(bench/simulate_scale.py) and the scalability picture joined with its rows
(bench/simulate_scalability.py --scale-rows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=True)


def test_scale_prints_a_row_per_size_and_writes_them(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    run = bench("bench/simulate_scale.py", "--sizes", "12", "--json", str(out))
    (row,) = json.loads(out.read_text())
    assert row["n"] == 12 and row["ok"] and row["verified"] == row["fetchers"] == 11
    assert row["seconds"] >= row["lower"] > 0 and row["events"] > 0
    table = run.stdout.splitlines()
    assert table[0].split()[:2] == ["peers", "virtual"] and table[1].split()[0] == "12"
    # the child's progress is passed on while it runs: one line per virtual second
    assert "12 peers: virtual 1 s" in run.stderr


def test_scale_says_how_far_a_stopped_size_got(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    run = bench("bench/simulate_scale.py", "--sizes", "12", "--limit", "0.01", "--json", str(out))
    (row,) = json.loads(out.read_text())
    assert row == {"n": 12, "skipped": "not finished within 0 s wall"}
    assert "12 skipped: not finished within 0 s wall" in run.stdout


def test_scale_without_a_limit_runs_to_the_end(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    bench("bench/simulate_scale.py", "--sizes", "12", "--limit", "0", "--json", str(out))
    (row,) = json.loads(out.read_text())
    assert "skipped" not in row and row["verified"] == row["fetchers"] == 11


def test_scalability_picture_joins_scale_rows(tmp_path: Path) -> None:
    rows = tmp_path / "scale.json"
    rows.write_text(json.dumps([
        {"n": 100_000, "seconds": 17.5, "lower": 13.4, "verified": 99_999, "cpu": 7000.0, "events": 1},
        {"n": 20_000, "skipped": "not finished within 10 s wall"},
    ]))
    pic = tmp_path / "pic"
    run = bench("bench/simulate_scalability.py", "--swarm", "", "--client-server", "", "--scale-rows", str(rows),
                "--out", str(pic))
    data = json.loads(pic.with_suffix(".json").read_text())
    (point,) = data["runs"]
    assert point["peers"] == 99_999 and point["strategy"] == "swarm" and point["seconds"] == 17.5
    assert point["client_server_bound"] > 260_000  # N·F/u_s with 99,999 fetchers
    assert data["bounds"]["swarm (simulated)"] == [[99_999.0, 17.5]]
    assert "99999      17.5" in run.stdout
    assert "<svg" in pic.with_suffix(".svg").read_text()


def test_scalability_picture_reuses_earlier_runs(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier.json"
    kept = {"peers": 10, "strategy": "swarm", "seconds": 9.5, "verified": 10, "lower_bound": 8.9,
            "client_server_bound": 26.8, "cpu_seconds": 0.4, "events": 7}  # 7 events: not a fresh run
    joined = dict(kept, peers=99_999, **{"from": "bench/simulate_scale.py"})
    earlier.write_text(json.dumps({"runs": [kept, joined], "bounds": {}}))
    pic = tmp_path / "pic"
    bench("bench/simulate_scalability.py", "--swarm", "10", "--client-server", "", "--reuse", str(earlier),
          "--out", str(pic))
    # the 10-peer run is kept as it was; the joined point comes only with its --scale-rows
    assert json.loads(pic.with_suffix(".json").read_text())["runs"] == [kept]


def test_scale_goes_on_from_a_saved_size(tmp_path: Path) -> None:
    """--checkpoint-dir: a size stopped and saved (as Ctrl-C or the end of a session leaves
    it) goes on from DIR/N.ckpt and ends with the figures of a run that never stopped."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from _simswarm import write_topology
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from orchestrator.simulate import checkpoint, setup
    from orchestrator.simulate.world import Paused, World

    whole = tmp_path / "whole.json"
    bench("bench/simulate_scale.py", "--sizes", "12", "--json", str(whole))
    saved = tmp_path / "saved"
    saved.mkdir()
    topo = write_topology(tmp_path, 11, timeout="2h")  # the bytes the bench writes for 12 peers
    world = World(setup.load(topo))
    saver = checkpoint.Checkpoint(saved / "12.ckpt", checkpoint.topology_digest(topo))

    def ctrl_c() -> None:  # what the signal handler does
        saver.stop_requested = True
        world.clock.stop()

    world.clock.at(2.5, ctrl_c)
    try:
        world.play(checkpoint=saver)
    except Paused:
        pass
    out = tmp_path / "resumed.json"
    run = bench("bench/simulate_scale.py", "--sizes", "12", "--json", str(out), "--checkpoint-dir", str(saved))
    assert "12 peers: resumed from" in run.stderr and "virtual 2.5 s" in run.stderr
    (row,), (ref,) = json.loads(out.read_text()), json.loads(whole.read_text())
    assert row["resumed"] == 1 and ref["resumed"] == 0
    assert (row["virtual"], row["seconds"], row["events"] - 1) == (ref["virtual"], ref["seconds"], ref["events"])
    assert not (saved / "12.ckpt").exists()  # done: nothing left to go on from


def test_fidelity_cases_are_valid_topologies_and_the_slow_one_is_a_quarter(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import simulate_fidelity
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from orchestrator.simulate import setup

    files = simulate_fidelity.case_files(tmp_path)
    topos = {case: setup.load(path) for case, path in files.items()}
    fast, slow = topos["netns64"], topos["netns64q"]
    assert slow.name == "netns-swarm64q" and len(slow.nodes) == len(fast.nodes) == 65
    for a, b in zip(fast.nodes, slow.nodes):
        assert (b.link.up_bps * 4, b.link.down_bps and b.link.down_bps * 4) == \
            (a.link.up_bps, a.link.down_bps)
