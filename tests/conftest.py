"""Suite-wide settings."""

from __future__ import annotations

import os
from typing import Any

import pytest

# Tests send no traffic beyond this machine: never look up or pull from a registry.
os.environ["MESHBED_OFFLINE"] = "1"


# --- running in parallel (pytest-xdist, `-n 2 --dist loadgroup`) ----------------------------
# Tests that share one expensive lab per process run on one worker, so each lab is built
# once: the 3-engine swarm lab (tests/swarmlab.py), the ssh device labs (tests/sshlab.py),
# and modules with module-scoped meshes. Everything else has unique names and takes its
# subnets under meshbed's host-wide lock, so the workers never collide.
_GROUP_FILES = {"test_swarm_lab.py": "swarm"}


def _group_of(item: pytest.Item) -> str | None:
    if "ssh_lab" in getattr(item, "fixturenames", ()):  # tests/sshlab.lab_fixture
        return "ssh"
    if item.path.name in _GROUP_FILES:
        return _GROUP_FILES[item.path.name]
    params = item.callspec.params if hasattr(item, "callspec") else {}
    backend = params.get("backend", params.get("kept_mesh"))  # kept_mesh: test_security.py
    if backend in ("swarm", "ssh"):
        return str(backend)
    if any(d.scope == "module" for d in _fixture_defs(item)):
        return item.path.name  # a module-scoped fixture: the module's tests stay together
    return None


def _fixture_defs(item: pytest.Item) -> list[Any]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [d for defs in info.name2fixturedefs.values() for d in defs]


def pytest_itemcollected(item: pytest.Item) -> None:
    # marked as each test is collected: xdist's pytest_collection_modifyitems, which turns
    # the marks into scheduling groups, may run before any conftest's
    group = _group_of(item)
    if group:
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker with --dist loadgroup: fail at once if the groups do not reach the
    scheduler (they travel as an ``@group`` suffix of the node id; pytest 9.2 with
    pytest-xdist 3.8 drops it silently: pytest-xdist#1386), rather than run two labs at once."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers only
        return
    lost = [i.nodeid for i in session.items
            if i.get_closest_marker("xdist_group") and "@" not in i.nodeid.rpartition("]")[2]]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup is not grouping ({lost[0]} has no @group); "
                                "see pytest-xdist#1386 and the pytest pin in pyproject.toml")
