"""Contract harness of the `swarm` backend: a 3-engine swarm (one manager, two workers, each a
real dockerd in its own network namespace: tests/swarmlab.py), so the overlay really crosses
engines and every teardown must reach the workers too."""

from __future__ import annotations

from typing import Any, Optional

from tests import swarmlab

_lab: Any = None


def skip_reason() -> Optional[str]:
    return swarmlab.skip_reason()


_setups = 0  # contract and reliability suites both set up (and tear down) this harness


def setup() -> None:
    global _lab, _setups
    _lab = swarmlab.acquire()  # counted there: the last release takes the lab down
    _setups += 1


def teardown() -> None:
    global _lab, _setups
    if _setups > 0:
        _setups -= 1
        swarmlab.release()
        if _setups == 0:
            _lab = None


def topology_fields(n_nodes: int) -> dict[str, Any]:
    return {"backend": "swarm"}


def leftovers(mesh_name: str) -> list[str]:
    from orchestrator import state

    assert _lab is not None, "setup() first"
    out = swarmlab.mesh_leftovers(_lab, mesh_name)
    mesh_dir = state.home() / mesh_name
    if mesh_dir.exists():
        out.append(f"directory {mesh_dir}")
    return out
