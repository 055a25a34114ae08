"""Backend registry: backends are found through the ``meshbed.backends`` entry point group."""

from __future__ import annotations

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
    found = {ep.name: ep.value for ep in entry_points(group="meshbed.backends")}
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
