"""Backend registry: backends are found through the ``meshbed.backends`` entry point group."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.backends.base import Backend

_FALLBACK = {
    "local": "orchestrator.backends.local:LocalBackend",
    "netns": "orchestrator.backends.netns:NetnsBackend",
    "docker": "orchestrator.backends.docker:DockerBackend",
    "ssh": "orchestrator.backends.ssh:SshBackend",
    "swarm": "orchestrator.backends.swarm:SwarmBackend",
}


def _targets() -> dict[str, str]:
    if sys.version_info >= (3, 10):
        eps = entry_points(group="meshbed.backends")
    else:  # 3.9: entry_points() takes no arguments and returns {group: [EntryPoint]}
        eps = entry_points().get("meshbed.backends", [])
    found = {ep.name: ep.value for ep in eps}
    return found or dict(_FALLBACK)


def names() -> list[str]:
    return sorted(_targets())


def get(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (InputError when unknown)."""
    targets = _targets()
    if name not in targets:
        raise InputError(f"unknown backend {name!r} (known: {', '.join(sorted(targets))})")
    module_name, _, attr = targets[name].partition(":")
    import importlib

    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, attr)
    return cls
