"""Per-backend harnesses for the contract suite.

A module ``harness/<backend>.py`` makes the suite run against that backend. It exposes:

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
import pkgutil
from pathlib import Path
from types import ModuleType


def names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def load(name: str) -> ModuleType:
    return importlib.import_module(f"harness.{name}")
