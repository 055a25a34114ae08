"""The reliability suite imports its helpers as ``support`` and the agent-process helper as
``peerproc`` (tests/reliability and tests/ on sys.path)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent, HERE.parent / "contract"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session", autouse=True)
def _harness_teardown() -> Iterator[None]:
    """Run the teardown of every contract harness the session set up (e.g. leave the swarm)."""
    yield
    import support

    for mod in support.ready_harnesses():
        if hasattr(mod, "teardown"):
            mod.teardown()
