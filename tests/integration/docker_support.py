"""Helpers for the docker integration tests: availability, topologies, leftovers."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from harness import docker as docker_harness  # noqa: E402

from orchestrator.loader import load_topology  # noqa: E402
from orchestrator.model import Topology  # noqa: E402


def require_docker() -> None:
    """Skip when dockerd cannot be reached, or fail under CI=true."""
    reason = docker_harness.skip_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"docker unavailable under CI=true: {reason}")
        pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("kernel shaping needs root under CI=true")
        pytest.skip("kernel shaping needs root")


def mesh_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def write_topology(tmp: Path, name: str, groups: dict[str, Any], content: dict[str, Any],
                   scenario: list[Any], **fields: Any) -> Path:
    doc: dict[str, Any] = {"name": name, "backend": "docker", "seed": 5}
    doc.update(fields)
    doc.update(groups=groups, content=content, scenario=scenario)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def topology(tmp: Path, name: str, groups: dict[str, Any], content: dict[str, Any],
             scenario: list[Any], **fields: Any) -> Topology:
    return load_topology(write_topology(tmp, name, groups, content, scenario, **fields))


leftovers = docker_harness.leftovers
