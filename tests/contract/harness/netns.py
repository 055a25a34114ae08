"""Contract-suite harness for `backend: netns` (network namespaces on a bridge; needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

from orchestrator.backends.netns import NetnsBackend, namespaces


def skip_reason() -> Optional[str]:
    """Why the netns suite cannot run here (the conftest fails instead under CI=true)."""
    return NetnsBackend.unavailable_reason()


def topology_fields(n_nodes: int) -> dict[str, Any]:
    return {"backend": "netns"}


def _mesh_name(mesh: Any) -> str:
    if isinstance(mesh, str):
        return mesh
    name = getattr(mesh, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"cannot tell the mesh name of {mesh!r}")


def _home(mesh: Any) -> Path:
    home = getattr(mesh, "home", None)
    if home is not None:
        return Path(home)
    return Path(os.environ.get("MESHBED_HOME") or Path.home() / ".local/state/meshbed")


def leftovers(mesh: Any) -> list[str]:
    """Everything of this mesh still present on the host: namespaces, links (bridge,
    veths), iptables rules and chains, qdiscs come and go with their links, processes,
    data dirs."""
    name = _mesh_name(mesh)
    tag = namespaces.mesh_tag(name)
    found: list[str] = []
    found += [f"namespace {n}" for n in sorted(namespaces.existing()) if n.startswith(f"mb-{tag}-")]
    try:
        links = os.listdir("/sys/class/net")
    except OSError:
        links = []
    found += [f"link {n}" for n in sorted(links) if n == f"mb-{tag}" or n.startswith(f"mb{tag}v")]
    if shutil.which("iptables"):
        out = subprocess.run(["iptables", "-w", "10", "-S"], capture_output=True, text=True,
                             timeout=30).stdout
        for line in out.splitlines():
            words = line.replace('"', " ").split()
            if f"meshbed:{name}" in words or f"mb-{tag}" in words or f"MBP-{tag}" in line:
                found.append(f"iptables {line}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2 :].startswith(b"Z"):
            continue  # a zombie holds no port or file; its parent reaps it
        if b"--backend" in argv and b"netns" in argv and b"--mesh" in argv:
            i = argv.index(b"--mesh")
            if i + 1 < len(argv) and argv[i + 1] == name.encode():
                found.append(f"process {pid} {b' '.join(argv[:4]).decode(errors='replace')}")
    data = _home(mesh) / name / "netns"
    if data.exists():
        found.append(f"dir {data}")
    return found
