"""The reliability suite's session hooks (helpers: ``tests.reliability.support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _harness_teardown() -> Iterator[None]:
    """Run the teardown of every contract harness the session set up (e.g. leave the swarm)."""
    yield
    from tests.reliability import support

    for mod in support.ready_harnesses():
        if hasattr(mod, "teardown"):
            mod.teardown()
