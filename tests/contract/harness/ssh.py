"""Contract harness of `backend: ssh`: namespace "devices", each running its own real sshd
(tests/sshlab.py), listed in an inventory; each group is given devices instead of a count
(``adapt_groups``), one node per device.

Two labs, each built on first use and kept for the session:

* the contract lab (this module's functions): six devices, the first three stand-ins (an
  arm64 Pi on Python 3.9 under qemu, a busybox router, a laptop), the rest share this host's
  system; the contract suite checks every kind of device;
* ``for_meshes()``: the reliability suite's lab of eight ``host`` devices. Its tests (churn,
  partitions, seeder loss, orchestrator kills, security) check the backend's control paths
  (deploy over ssh, kill/start, iptables cuts on devices, teardown), which are the same for
  every kind of device, and are timed for agents running at host speed: a qemu Pi as the
  seeder or a churn victim would test qemu's speed, not the backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from orchestrator import state
from tests import sshlab

N_DEVICES = 6
MESH_DEVICES = 8  # the largest reliability mesh: churn, 1 seeder + 6 leechers (+ 1 spare)
KINDS = ("pi", "router", "laptop")  # then "host" devices


def _kinds() -> tuple[str, ...]:
    """The stand-ins, or (outside CI, where a missing facility fails) host devices only when
    they cannot be built here."""
    if os.environ.get("CI", "").lower() != "true" and sshlab.stand_in_skip_reason(KINDS):
        return ()
    return KINDS


class LabHarness:
    """The harness interface (skip_reason/setup/teardown/topology_fields/adapt_groups/
    leftovers) over one lab of ``n`` devices."""

    def __init__(self, what: str, n: int, kinds: Optional[tuple[str, ...]]) -> None:
        self.what = what
        self.n = n
        self.fixed_kinds = kinds  # None: the stand-ins (see _kinds)
        self.lab: Optional[sshlab.SshLab] = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return _kinds() if self.fixed_kinds is None else self.fixed_kinds

    def skip_reason(self) -> Optional[str]:
        from orchestrator.backends.ssh import SshBackend

        return SshBackend.unavailable_reason() or sshlab.stand_in_skip_reason(self.kinds)

    def setup(self) -> None:
        if self.lab is None:
            self.lab = sshlab.SshLab(self.n, kinds=self.kinds).start()

    def teardown(self) -> None:
        if self.lab is not None:
            self.lab.close()
            self.lab = None

    def the_lab(self) -> sshlab.SshLab:
        self.setup()
        assert self.lab is not None
        return self.lab

    def topology_fields(self, n_nodes: int) -> dict[str, Any]:
        lab = self.the_lab()
        if n_nodes > self.n:
            raise ValueError(f"the ssh {self.what} lab has {self.n} devices, {n_nodes} nodes asked")
        return {"backend": "ssh", "inventory": str(lab.inventory_path)}

    def adapt_groups(self, groups: dict[str, Any]) -> dict[str, Any]:
        """``{"leechers": {"count": 2, ...}}`` -> ``{"leechers": {"devices": [dev-1, dev-2], ...}}``."""
        names = [d.name for d in self.the_lab().devices]
        out: dict[str, Any] = {}
        i = 0
        for gname, spec in groups.items():
            spec = dict(spec)
            count = int(spec.pop("count", 1))
            spec["devices"] = names[i : i + count]
            i += count
            out[gname] = spec
        return out

    def leftovers(self, mesh: Any) -> list[str]:
        name = mesh if isinstance(mesh, str) else str(getattr(mesh, "name", mesh))
        found = _agent_processes(name)
        if self.lab is not None:
            found += self.lab.shaping_left()
            for base in {self.lab.shared_dir, *(self.lab.data_home(d) for d in self.lab.devices)}:
                d = base / "meshbed" / name
                if d.exists():
                    found.append(f"device directory {d}")
        mesh_dir = state.home() / name
        if mesh_dir.exists():
            found.append(f"state directory {mesh_dir}")
        return found


def _agent_processes(name: str) -> list[str]:
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
    return found


_contract = LabHarness("contract", N_DEVICES, None)
_meshes = LabHarness("reliability", MESH_DEVICES, ())


def for_meshes() -> LabHarness:
    """The harness the reliability suite uses (its own lab of host devices, see above)."""
    return _meshes


skip_reason = _contract.skip_reason
setup = _contract.setup
topology_fields = _contract.topology_fields
adapt_groups = _contract.adapt_groups
leftovers = _contract.leftovers
teardown = _contract.teardown  # the reliability lab ends with the reliability session
