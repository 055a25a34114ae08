"""Helpers for the docker integration tests: availability, topologies, leftovers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import yaml

from orchestrator.loader import load_topology
from orchestrator.model import Topology
from tests.contract.harness import docker as docker_harness
from tests.facilities import missing, require


def require_docker() -> None:
    """Skip when dockerd cannot be reached, or fail under CI=true."""
    require(docker_harness.skip_reason())


def require_root() -> None:
    if os.geteuid() != 0:
        missing("kernel shaping needs root")


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
