"""Every environment switch of the orchestrator, read here and nowhere else.

- ``MESHBED_HOME``: where meshes keep their state (default ``~/.local/state/meshbed``);
- ``MESHBED_OFFLINE=1``: never contact an image registry (air-gapped labs, the test suite);
- ``MESHBED_DOCKER_ATTACH=docker``: let Docker attach containers to the mesh network
  instead of meshbed's own veth (slower; for remote daemons it is automatic).

Read at each call (tests and the CLI set them per process), never cached.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("MESHBED_HOME")
    return Path(env) if env else Path.home() / ".local" / "state" / "meshbed"


def offline() -> bool:
    return os.environ.get("MESHBED_OFFLINE") == "1"


def docker_attach() -> str:
    """"veth" (default) or "docker"."""
    return os.environ.get("MESHBED_DOCKER_ATTACH", "veth")
