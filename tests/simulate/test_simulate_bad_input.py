"""What `meshbed run` refuses, `meshbed simulate` refuses with the same one line (the bad-input
corpora of tests/reliability and tests/data/invalid), except the node limit of real meshes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import loader
from orchestrator.cli import main as cli_main
from orchestrator.simulate import setup

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "reliability" / "data" / "topologies").glob("*.yaml")) + sorted(
    (ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
NODE_LIMIT = f"at most {loader.MAX_NODES}"  # run's limit for real hosts; simulate has its own


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 120


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_simulate_refuses_what_run_refuses_with_the_same_line(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    assert cli_main(["run", str(path)]) == 2
    run_err = capsys.readouterr().err
    if NODE_LIMIT in run_err:  # over run's node limit: simulate loads it (memory permitting)
        assert len(setup.load(path).nodes) > loader.MAX_NODES
        return
    assert cli_main(["simulate", str(path)]) == 2
    sim = capsys.readouterr()
    assert sim.err == run_err and sim.out == ""
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").iterdir())
