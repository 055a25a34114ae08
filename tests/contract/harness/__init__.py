"""Per-backend harnesses for the contract suite.

The suite runs once per backend in the registry (the ``meshbed.backends`` entry points);
a registered backend without ``harness/<backend>.py`` fails the suite. The module exposes:

- ``skip_reason() -> str | None``: why the backend cannot run here (the conftest skips,
  or fails when ``CI=true``);
- ``topology_fields(n_nodes: int) -> dict``: extra top-level topology fields, e.g.
  ``{"backend": "netns"}`` or an inventory;
- ``leftovers(mesh_name: str) -> list[str]``: whatever of the mesh is still on the host
  (processes, containers, namespaces, veths, qdiscs, rules, files); empty after `down`;
- optionally ``setup()`` / ``teardown()``: run once per session around its tests;
- optionally ``adapt_groups(groups: dict) -> dict``: rewrite the tests' groups for the
  backend (ssh: ``count: N`` becomes ``devices: [N lab devices]``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from orchestrator import backends as registry


def names() -> list[str]:
    """Every registered backend: each must have a harness."""
    return registry.names()


def missing() -> list[str]:
    """Registered backends without a harness module."""
    here = Path(__file__).parent
    return [n for n in names() if not (here / f"{n}.py").is_file()]


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")
