"""The contract suite runs once per registered backend, through ``harness/<backend>.py``
(a backend without one fails). Unavailable backends skip with their reason, except under
CI, where that fails (tests/facilities.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import yaml

from orchestrator.loader import load_topology
from orchestrator.model import Topology
from tests.contract import harness
from tests.facilities import missing

_ready: dict[str, ModuleType] = {}
_teardowns: list[Callable[[], Any]] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", harness.names(), scope="session")


@pytest.fixture(scope="session")
def backend_harness(backend: str) -> Iterator[ModuleType]:
    if backend in harness.missing():
        pytest.fail(f"backend {backend} is registered but has no contract harness "
                    f"(tests/contract/harness/{backend}.py)")
    mod = harness.load(backend)
    reason = mod.skip_reason()
    if reason:
        missing(f"backend {backend}: {reason}")
    if hasattr(mod, "setup"):
        mod.setup()
    yield mod
    if hasattr(mod, "teardown"):
        mod.teardown()


class TopologyFactory:
    """Builds a topology for the backend under test as YAML, writes it, loads it."""

    def __init__(self, backend: str, mod: ModuleType, tmp: Path) -> None:
        self.backend = backend
        self.mod = mod
        self.tmp = tmp

    def __call__(self, groups: dict[str, Any], content: dict[str, Any], scenario: list[Any],
                 **fields: Any) -> Topology:
        n = sum(int(g.get("count", 1)) for g in groups.values())
        name = f"ct-{self.backend[:6]}-{uuid.uuid4().hex[:8]}"
        doc: dict[str, Any] = {"name": name, "seed": 11}
        doc.update(self.mod.topology_fields(n))
        doc.update(fields)
        if hasattr(self.mod, "adapt_groups"):  # e.g. ssh: groups select devices, not counts
            groups = self.mod.adapt_groups(groups)
        doc.update(groups=groups, content=content, scenario=scenario)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_topology(path)


@pytest.fixture
def make_topology(backend: str, backend_harness: ModuleType, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> TopologyFactory:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    return TopologyFactory(backend, backend_harness, tmp_path)
