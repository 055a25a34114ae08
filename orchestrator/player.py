"""Play a scenario on a mesh that is up, in a detached process (`meshbed play`).

`meshbed play NAME [TOPO.yaml]` checks the topology against the running mesh, then starts
``python -m orchestrator.player NAME TOPO`` in its own session and returns once that process
plays. The player attaches to the mesh from ``$MESHBED_HOME/NAME/state.json``, plays the
timeline with the same ``scenario.Player`` as `meshbed run`, and keeps, in the mesh folder:

- ``play.json``: pid + start time (its identity), phase (playing|done|failed|stopped),
  elapsed seconds, the events played so far, per-content verified counts: what `watch`
  and `status` show;
- ``samples.jsonl``: the polled samples (started afresh by each play);
- ``report.json``: the report when the play ends (what `meshbed report NAME` prints);
- ``play.log``: the player's own messages.

`meshbed down` stops a running player first (``stop``), so no scenario event can start an
agent again on a mesh being torn down.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from orchestrator import state as statemod
from orchestrator.errors import InputError
from orchestrator.hostnet import processes
from orchestrator.model import Topology

PLAY_FILE = "play.json"
REPORT_FILE = "report.json"
LOG_FILE = "play.log"
SAMPLES_FILE = "samples.jsonl"
START_TIMEOUT = 30.0  # the detached player must be playing within this
STOP_GRACE = 10.0  # SIGTERM, then SIGKILL after this


class MeshGone(Exception):
    """The mesh's state vanished under a playing scenario (`down` from another shell)."""


# --- play.json ----------------------------------------------------------------------------
def read_play(mesh_dir: Path) -> Optional[dict[str, Any]]:
    try:
        data: dict[str, Any] = json.loads((mesh_dir / PLAY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def write_play(mesh_dir: Path, data: dict[str, Any]) -> None:
    statemod.write_atomic(mesh_dir / PLAY_FILE, json.dumps(data, indent=1).encode(), mode=0o644)


def is_playing(play: Optional[dict[str, Any]]) -> bool:
    """The player of ``play`` still runs (same pid *and* start time: pids get reused)."""
    if not play or play.get("phase") not in ("starting", "playing"):
        return False
    return processes.alive(int(play.get("pid") or 0), play.get("start_time"))


async def stop(mesh_dir: Path) -> bool:
    """End a running player of this mesh (SIGTERM, then SIGKILL). True if one was running."""
    play = read_play(mesh_dir)
    if not is_playing(play):
        return False
    assert play is not None
    await processes.terminate([(int(play["pid"]), play.get("start_time"))], grace=STOP_GRACE)
    return True


def describe_event(ev: dict[str, Any]) -> str:
    """``5s kill leechers-0, leechers-1`` from a recorded scenario event."""
    kind = ev.get("kind", "?")
    head = f"{ev.get('at', 0):g}s {kind}"
    if kind == "fetch":
        return f"{head} {ev.get('content')} by {_names(ev.get('nodes') or [])}"
    if kind == "partition":
        return f"{head} " + " | ".join(_names(s) for s in ev.get("sides") or [])
    if kind == "link":
        return f"{head} {','.join(ev.get('fields') or [])} on {_names(ev.get('nodes') or [])}"
    if ev.get("nodes"):
        return f"{head} {_names(ev['nodes'])}"
    return head


def _names(nodes: list[str], most: int = 4) -> str:
    if len(nodes) <= most:
        return ", ".join(nodes)
    return ", ".join(nodes[:most]) + f" (+{len(nodes) - most})"


# --- checks in the `meshbed play` process -------------------------------------------------
def check_fits(topo: Topology, mesh_name: str, mesh_state: dict[str, Any]) -> None:
    """The topology's nodes and contents must be the mesh's: a scenario names nodes by
    selector and contents by name, so it only makes sense on the mesh it was written for."""
    if topo.name != mesh_name:
        raise InputError(f"topology is for mesh {topo.name!r}, not {mesh_name!r}", topo.source)
    nodes = mesh_state.get("nodes") or {}
    for node in topo.nodes:
        entry = nodes.get(node.name)
        if entry is None:
            raise InputError(f"node {node.name} is not part of the running mesh {mesh_name}", topo.source)
        if entry.get("backend") != node.backend:
            raise InputError(f"node {node.name} runs on {entry.get('backend')}, the topology says "
                             f"{node.backend}", topo.source)
    contents = mesh_state.get("contents") or {}
    for c in topo.contents:
        if c.name not in contents:
            raise InputError(f"content {c.name} was not seeded on mesh {mesh_name}; "
                             f"`meshbed down {mesh_name}` and `meshbed up` this topology", topo.source)
    if not topo.scenario:
        raise InputError("the topology has no scenario to play", topo.source)


def start_detached(name: str, topo_path: Path, home: Path) -> dict[str, Any]:
    """Spawn the player in its own session; return its play.json once it plays. Raises
    InputError with the player's log when it ends before playing."""
    mesh_dir = home / name
    (mesh_dir / PLAY_FILE).unlink(missing_ok=True)
    with open(mesh_dir / LOG_FILE, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.player", name, str(topo_path.resolve())],
            env=dict(os.environ, MESHBED_HOME=str(home)),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        play = read_play(mesh_dir)
        if play and play.get("pid") == child.pid and play.get("phase") != "starting":
            return play
        if child.poll() is not None:
            break
        time.sleep(0.1)
    else:
        child.kill()
    child.wait()
    tail = (mesh_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-5:]
    raise InputError(f"the scenario player of {name} ended before playing: " + " / ".join(tail))


# --- the detached process -----------------------------------------------------------------
def attach_for_play(name: str, topo: Topology, home: Path) -> Any:
    """A Mesh with topology, backends and endpoints of the running mesh ``name``."""
    from orchestrator import backends as registry
    from orchestrator.mesh import Mesh

    mesh = Mesh.attach(name, home=home)
    assert mesh.state is not None
    mesh.topology = topo
    mesh.say = _say
    for bname in topo.backends_used():
        mesh.backends[bname] = registry.get(bname)(mesh.state.context(bname, topo, _say))
    mesh.links = {n.name: n.link for n in topo.nodes}
    secs = mesh.state.data.get("deploy_seconds")
    mesh.deploy_seconds = float(secs) if secs is not None else None
    return mesh


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


async def play_detached(name: str, topo: Topology, home: Path) -> int:
    from orchestrator.report import build_report
    from orchestrator.scenario import Player, Sample

    mesh = attach_for_play(name, topo, home)
    mesh_dir: Path = mesh.state.dir
    (mesh_dir / SAMPLES_FILE).unlink(missing_ok=True)
    (mesh_dir / REPORT_FILE).unlink(missing_ok=True)
    me = os.getpid()
    play: dict[str, Any] = {
        "pid": me, "start_time": processes.start_time(me), "phase": "playing",
        "topology": str(topo.source) if topo.source else None, "started": time.time(),
        "elapsed": 0.0, "events": [], "scenario": len(topo.scenario), "done": {},
    }
    write_play(mesh_dir, play)
    player = Player(mesh)

    def on_sample(sample: Sample) -> None:
        if not (mesh_dir / statemod.STATE_FILE).exists():
            raise MeshGone(name)
        play.update(elapsed=round(sample.elapsed, 1), events=list(player.events),
                    done={k: list(v) for k, v in sample.done.items()})
        write_play(mesh_dir, play)

    player.on_sample = on_sample
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    _say(f"playing {len(topo.scenario)} scenario events on {name}")
    mesh.state.data["phase"] = "running"
    mesh.state.save()
    try:
        mesh.result = await player.run()
    except (asyncio.CancelledError, MeshGone):
        play.update(phase="stopped", ended=time.time())
        _end(mesh, play)
        _say("stopped")
        return 1
    except Exception as exc:
        play.update(phase="failed", ended=time.time(), error=str(exc))
        _end(mesh, play)
        raise
    mesh.state.data["phase"] = "done"
    mesh.state.save()
    report = build_report(mesh)
    statemod.write_atomic(mesh_dir / REPORT_FILE, (json.dumps(report, indent=2) + "\n").encode(), mode=0o644)
    play.update(phase="done", ended=time.time(), reason=mesh.result.reason, ok=report["ok"],
                events=list(player.events))
    write_play(mesh_dir, play)
    _say(f"scenario over ({mesh.result.reason}); `meshbed report {name}`")
    return 0


def _end(mesh: Any, play: dict[str, Any]) -> None:
    """After a stop or a failure: the mesh is up again for the next `play` (unless gone)."""
    if not (mesh.state.dir / statemod.STATE_FILE).exists():
        return
    mesh.state.data["phase"] = "up"
    mesh.state.save()
    write_play(mesh.state.dir, play)


def main(argv: Optional[list[str]] = None) -> int:
    from orchestrator.loader import load_topology

    args = sys.argv[1:] if argv is None else argv
    name, topo_path = args[0], Path(args[1])
    home = statemod.home()
    topo = load_topology(topo_path)
    return asyncio.run(play_detached(name, topo, home))


if __name__ == "__main__":
    raise SystemExit(main())
