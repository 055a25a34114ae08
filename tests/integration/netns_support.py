"""Helpers for the netns integration tests: a MeshContext persisted to a real state file,
nodes, iperf3 between namespaces. Root only; under CI=true a missing facility fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from orchestrator.backends.base import MeshContext
from orchestrator.backends.netns import NetnsBackend
from orchestrator.model import Link, Node
from tests.facilities import require


def require_root(*tools: str) -> None:
    reason = NetnsBackend.unavailable_reason()
    for tool in tools:
        if reason is None and shutil.which(tool) is None:
            reason = f"needs {tool}"
    require(reason)


def state_file(home: Path, mesh: str) -> Path:
    return home / mesh / "state.json"


def make_ctx(home: Path, mesh: str, state: dict[str, Any] | None = None) -> MeshContext:
    """A context whose ``save`` writes ``{"backends": {"netns": state}}`` like the engine."""
    sd = home / mesh
    sd.mkdir(parents=True, exist_ok=True)
    section: dict[str, Any] = {} if state is None else state
    path = state_file(home, mesh)

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mesh": mesh, "backends": {"netns": section}}))
        os.replace(tmp, path)

    return MeshContext(mesh=mesh, token="test-token", state_dir=sd, state=section, save=save,
                       say=lambda _msg: None)


def load_ctx(home: Path, mesh: str) -> MeshContext:
    """The context `meshbed down` would build from the state file alone."""
    data = json.loads(state_file(home, mesh).read_text())
    return make_ctx(home, mesh, data["backends"]["netns"])


def nodes(n: int, link: Link = Link(), group: str = "g") -> list[Node]:
    return [Node(name=f"{group}-{i}", group=group, index=i, backend="netns", link=link)
            for i in range(n)]


def iperf_bps(server_ns: str, server_ip: str, client_ns: str, seconds: int = 4) -> float:
    """Received TCP payload rate client -> server, bits/s."""
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        out = None
        while time.monotonic() < deadline:
            res = subprocess.run(
                ["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-t", str(seconds),
                 "-J"], capture_output=True, text=True, timeout=seconds + 20)
            if res.returncode == 0:
                data = json.loads(res.stdout)
                if "sum_received" in data.get("end", {}):
                    out = data
                    break
            time.sleep(0.2)  # server not listening yet
        assert out is not None, "iperf3 client never connected"
        return float(out["end"]["sum_received"]["bits_per_second"])
    finally:
        srv.kill()
        srv.wait(timeout=10)
