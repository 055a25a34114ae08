"""Checkpoints of a simulated world (`meshbed simulate --checkpoint`): a run stopped and gone
on from its file plays exactly as one that never stopped."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from orchestrator import cli
from orchestrator.simulate import checkpoint, setup
from orchestrator.simulate.report import build_report
from orchestrator.simulate.world import Paused, World
from tests.simulate.test_simulate import SWARM, stable, write

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = (  # every kind of event a world keeps pending across a save
    "  - {at: 1.5s, kill: leechers-0}\n"
    "  - {at: 2s, link: {nodes: leechers-1, down: 10mbit}}\n"
    '  - {at: 2.5s, partition: [[seeders, "leechers[0:4]"], ["leechers[4:]"]]}\n'
    "  - {at: 5s, heal: true}\n"
    "  - {at: 6s, start: leechers-0}\n"
)


def topology(tmp_path: Path, n: int = 8, extra: str = SCENARIO, name: str = "topo.yaml") -> Path:
    return write(tmp_path, SWARM.format(n=n, strategy="swarm", seed=7, extra=extra, backend="local"), name)


def whole_run(path: Path) -> dict[str, Any]:
    world = World(setup.load(path))
    return build_report(world, world.play())


def stopped_at(path: Path, ckpt: Path, stops: list[float]) -> dict[str, Any]:
    """Play ``path``, stopping (as Ctrl-C does) at each virtual time in ``stops``, saving,
    loading the file and going on; the report of the last part."""
    topo = setup.load(path)
    digest = checkpoint.topology_digest(path)
    world: Optional[World] = None
    for at in stops + [None]:
        world = World(topo) if world is None else checkpoint.load(ckpt, digest)
        saver = checkpoint.Checkpoint(ckpt, digest, every=1e9)
        if at is not None:
            def stop(s: checkpoint.Checkpoint = saver, w: World = world) -> None:
                s.stop_requested = True
                w.clock.stop()
            world.clock.at(at, stop)
        try:
            wall = world.play(checkpoint=saver)
        except Paused as exc:
            assert at is not None and exc.virtual == pytest.approx(at)
            continue
        assert at is None, "the run ended before its stop"
    assert world is not None
    return build_report(world, wall)


def without_resumes(report: dict[str, Any], stops: int = 0) -> dict[str, Any]:
    """The report as an uninterrupted run gives it (``stops``: events the test added)."""
    out = {k: v for k, v in stable(report).items() if k != "checkpoint_resumes"}
    out["events_processed"] -= stops
    return out


def test_a_run_stopped_twice_and_resumed_repeats_the_whole_run(tmp_path: Path) -> None:
    path = topology(tmp_path)
    whole = whole_run(path)
    # mid-second (2.37 s: the stop event leaves a partition pending), then on a second
    resumed = stopped_at(path, tmp_path / "w.ckpt", [2.37, 4.0])
    assert whole["ok"] and resumed["checkpoint_resumes"] == 2
    assert "checkpoint_resumes" not in whole
    assert without_resumes(resumed, stops=2) == stable(whole)
    assert resumed["wall_seconds"] > 0


def test_a_capped_swarm_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The big-swarm settings (HAVE batches, partial re-shares) keep timers of their own."""
    monkeypatch.setattr(setup, "LARGE_SWARM", 4)
    path = topology(tmp_path, n=12, extra="")
    assert without_resumes(stopped_at(path, tmp_path / "w.ckpt", [1.61]), stops=1) == stable(whole_run(path))


@dataclass(frozen=True)
class Frozen:
    a: int


class Slotted:
    __slots__ = ("__private", "shared", "unset", "link")

    def __init__(self, link: Optional[Slotted], shared: list[int]) -> None:
        self.__private = 1
        self.shared = shared
        self.link = link

    def private(self) -> int:
        return self.__private


def test_flat_pickles_deep_chains_slots_frozen_and_shared_objects() -> None:
    """A chain deeper than any recursion limit (a mesh's endpoint -> peer -> endpoint walk),
    private and unset slots, frozen dataclasses, one list named by many objects."""
    shared = [1, 2]
    head: Optional[Slotted] = None
    for _ in range(50_000):
        head = Slotted(head, shared)
    root = {"head": head, "frozen": Frozen(3), "again": shared}
    with pytest.raises(RecursionError):
        pickle.dumps(root)  # the usual pickle walks the chain depth-first
    buf = io.BytesIO()
    own = (__name__,)
    checkpoint.FlatPickler(buf, own).write_flat(root)
    buf.seek(0)
    back = checkpoint.FlatUnpickler(buf, own).read_flat()
    node, length = back["head"], 0
    while node is not None:
        assert node.private() == 1 and not hasattr(node, "unset")
        assert node.shared is back["again"]  # still one list
        node, length = node.link, length + 1
    assert length == 50_000
    assert back["frozen"] == Frozen(3) and back["again"] == [1, 2]


def test_cli_ctrl_c_saves_and_the_same_command_goes_on(tmp_path: Path) -> None:
    """A real `meshbed simulate` process: Ctrl-C (SIGINT) once the first save is written,
    exit 130 with the file kept; the same command again finishes the run, removes the file
    and reports what an uninterrupted run reports."""
    path = topology(tmp_path, n=40, extra="")
    ckpt = tmp_path / "run.ckpt"
    cmd = [sys.executable, "-m", "orchestrator", "simulate", str(path), "--checkpoint", str(ckpt),
           "--checkpoint-every", "1ms", "--report", str(tmp_path / "r.json")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # saves once per virtual second: seconds of run are left
            if "checkpoint at virtual 1.0 s" in line:
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        code = proc.wait()
    assert code == 130, rest
    assert "run the same command to go on" in rest and ckpt.exists()
    assert not (tmp_path / "r.json").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert "going on from" in again.stderr and f"{ckpt} removed" in again.stderr
    assert not ckpt.exists()
    resumed = json.loads((tmp_path / "r.json").read_text())
    assert resumed["checkpoint_resumes"] == 1
    assert without_resumes(resumed) == stable(whole_run(path))


def test_cli_refuses_a_checkpoint_of_another_topology_and_bad_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = topology(tmp_path, n=4, extra="")
    other = topology(tmp_path, n=5, extra="", name="other.yaml")
    ckpt = tmp_path / "w.ckpt"
    stopped = World(setup.load(other))
    saver = checkpoint.Checkpoint(ckpt, checkpoint.topology_digest(other))
    saver.stop_requested = True  # as if Ctrl-C came before the first second
    with pytest.raises(Paused):
        stopped.play(checkpoint=saver)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    cases = [
        (["--checkpoint", str(ckpt)], f"{ckpt}: checkpoint of another topology"),
        (["--checkpoint", str(junk)], f"{junk}: not a meshbed simulate checkpoint"),
        (["--checkpoint", str(tmp_path / "no" / "w.ckpt")], "--checkpoint"),
        (["--checkpoint", str(tmp_path / "x.ckpt"), "--checkpoint-every", "soon"], "--checkpoint-every soon"),
        (["--checkpoint", str(tmp_path / "x.ckpt"), "--checkpoint-every", "0s"], "--checkpoint-every 0s"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert cli.main(["simulate", str(path), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(message), err
    assert ckpt.exists() and not (tmp_path / "x.ckpt").exists()


def test_a_save_that_fails_leaves_no_file_the_run_goes_on_a_stop_fails_clearly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.errors import MeshbedError

    def disk_full(self: checkpoint.FlatPickler, root: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.FlatPickler, "write_flat", disk_full)
    path = topology(tmp_path, n=4, extra="")
    ckpt = tmp_path / "w.ckpt"
    said: list[str] = []
    world = World(setup.load(path), say=said.append)
    report = build_report(world, world.play(checkpoint=checkpoint.Checkpoint(ckpt, "d", every=0.0)))
    assert report["ok"] and stable(report) == stable(whole_run(path))
    warnings = [m for m in said if m.startswith("warning: cannot save the checkpoint")]
    assert warnings and "No space left on device" in warnings[0]
    assert not ckpt.exists() and not list(tmp_path.glob("*.part"))
    saver = checkpoint.Checkpoint(ckpt, "d")
    saver.stop_requested = True
    with pytest.raises(MeshbedError, match="cannot save the checkpoint .*No space left on device"):
        World(setup.load(path)).play(checkpoint=saver)


def test_catching_signals_gives_them_back_to_their_handlers(tmp_path: Path) -> None:
    world = World(setup.load(topology(tmp_path, n=2, extra="")))
    saver = checkpoint.Checkpoint(tmp_path / "w.ckpt", "d")
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    saver.catch_signals(world)
    assert all(signal.getsignal(sig) != h for sig, h in before.items())
    saver.release_signals()
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_the_digest_follows_the_code_not_only_the_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited meshbed under the same version string (a clock with other fields, say) must
    not go on from a world written by the old code."""
    import importlib
    import types

    for package in ("orchestrator", "peer"):
        (tmp_path / package / "sub").mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "sub" / "clock.py").write_text("HEAP = 1\n")
    fake = {p: types.SimpleNamespace(__file__=str(tmp_path / p / "__init__.py")) for p in ("orchestrator", "peer")}
    monkeypatch.setattr(importlib, "import_module", fake.__getitem__)
    compute = checkpoint.code_digest.__wrapped__  # type: ignore[attr-defined]
    before = compute()
    assert compute() == before
    (tmp_path / "peer" / "sub" / "clock.py").write_text("HEAP = 2\n")
    assert compute() != before
