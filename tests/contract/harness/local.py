"""Contract harness of the `local` backend: always available (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from orchestrator import state
from orchestrator.backends.local import forks
from orchestrator.hostnet import processes


def skip_reason() -> Optional[str]:
    if not Path("/proc/self/stat").exists():
        return "the local backend needs /proc"
    return None


def topology_fields(n_nodes: int) -> dict[str, Any]:
    return {"backend": "local"}


def agent_pids(mesh_name: str, home: Optional[Path] = None) -> list[int]:
    """Live (non-zombie) agents of this mesh: `python -m peer run ... --mesh NAME ...`;
    with ``home``, only those whose data dir lies under it (another test run on the same
    host may run a mesh of the same name)."""
    mark = (str(home) + os.sep).encode() if home is not None else b""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2 :].startswith("Z"):
            continue  # a zombie holds no port or file; its parent reaps it
        if b"peer" in args and b"--mesh" in args:
            i = args.index(b"--mesh")
            if i + 1 < len(args) and args[i + 1] == mesh_name.encode() and (
                    not mark or any(a.startswith(mark) for a in args)):
                found.append(int(entry.name))
    return found


def _agent_processes(mesh_name: str) -> list[str]:
    out = []
    for pid in agent_pids(mesh_name, state.home()):  # this run's: others may use the name
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone meanwhile
        out.append(f"process {pid}: {args.decode(errors='replace')[:160]}")
    return out


def _fork_servers(mesh_name: str) -> list[str]:
    """The mesh's fork server, when it outlived the mesh (no --mesh in its command line: it
    is found by its data dir, ``<mesh>/local/.forkserver/data``)."""
    mark = str(state.home() / mesh_name / "local" / forks.FOLDER) + os.sep
    return [f"fork server process {pid}" for (pid, _), data in processes.agents_with_data_dirs()
            if data.startswith(mark)]


def leftovers(mesh_name: str) -> list[str]:
    out = _agent_processes(mesh_name) + _fork_servers(mesh_name)
    mesh_dir = state.home() / mesh_name
    if mesh_dir.exists():
        out.append(f"directory {mesh_dir}: {sorted(p.name for p in mesh_dir.iterdir())}")
    return out
