"""Contract harness of `backend: ssh`: six namespace "devices", each running its own real
sshd (tests/sshlab.py), listed in an inventory; each group is given devices instead of a
count (``adapt_groups``), one node per device. The first three are stand-ins (an arm64 Pi
on Python 3.9 under qemu, a busybox router, a laptop), the rest share this host's system."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from orchestrator import state
from tests import sshlab

N_DEVICES = 6
KINDS = ("pi", "router", "laptop")  # then "host" devices
_lab: Optional[sshlab.SshLab] = None


def _kinds() -> tuple[str, ...]:
    """The stand-ins, or (outside CI, where a missing facility fails) host devices only when
    they cannot be built here."""
    if os.environ.get("CI", "").lower() != "true" and sshlab.stand_in_skip_reason(KINDS):
        return ()
    return KINDS


def skip_reason() -> Optional[str]:
    from orchestrator.backends.ssh import SshBackend

    return SshBackend.unavailable_reason() or sshlab.stand_in_skip_reason(_kinds())


def setup() -> None:
    global _lab
    _lab = sshlab.SshLab(N_DEVICES, kinds=_kinds()).start()


def teardown() -> None:
    global _lab
    if _lab is not None:
        _lab.close()
        _lab = None


def _the_lab() -> sshlab.SshLab:
    if _lab is None:
        setup()
    assert _lab is not None
    return _lab


def topology_fields(n_nodes: int) -> dict[str, Any]:
    lab = _the_lab()
    if n_nodes > N_DEVICES:
        raise ValueError(f"the ssh contract lab has {N_DEVICES} devices, {n_nodes} nodes asked")
    return {"backend": "ssh", "inventory": str(lab.inventory_path)}


def adapt_groups(groups: dict[str, Any]) -> dict[str, Any]:
    """``{"leechers": {"count": 2, ...}}`` -> ``{"leechers": {"devices": [dev-1, dev-2], ...}}``."""
    lab = _the_lab()
    names = [d.name for d in lab.devices]
    out: dict[str, Any] = {}
    i = 0
    for gname, spec in groups.items():
        spec = dict(spec)
        count = int(spec.pop("count", 1))
        spec["devices"] = names[i : i + count]
        i += count
        out[gname] = spec
    return out


def leftovers(mesh: Any) -> list[str]:
    name = mesh if isinstance(mesh, str) else str(getattr(mesh, "name", mesh))
    found: list[str] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--mesh" in argv and b"--backend" in argv:
            i, j = argv.index(b"--mesh"), argv.index(b"--backend")
            if argv[i + 1 : i + 2] == [name.encode()] and argv[j + 1 : j + 2] == [b"ssh"]:
                found.append(f"process {pid}: {b' '.join(argv[:6]).decode(errors='replace')}")
    if _lab is not None:
        found += _lab.shaping_left()
        for base in {_lab.shared_dir, *(_lab.data_home(d) for d in _lab.devices)}:
            d = base / "meshbed" / name
            if d.exists():
                found.append(f"device directory {d}")
    mesh_dir = state.home() / name
    if mesh_dir.exists():
        found.append(f"state directory {mesh_dir}")
    return found
