"""Backend registry: the ``meshbed.backends`` entry point group, and nothing else.

A backend is a package that registers its class under that group (pyproject
``[project.entry-points."meshbed.backends"]``); no other file lists backends.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.backends.base import Backend

GROUP = "meshbed.backends"
_loaded: dict[str, type[Backend]] = {}


def _entry_points() -> list[EntryPoint]:
    eps = entry_points()
    if hasattr(eps, "select"):  # Python 3.10+
        return list(eps.select(group=GROUP))
    return list(eps.get(GROUP, []))  # type: ignore[attr-defined]  # Python 3.9: a dict


@functools.lru_cache(maxsize=1)
def _targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in _entry_points()}


def refresh() -> None:
    """Read the entry points again (after installing a backend in this process)."""
    _targets.cache_clear()
    _loaded.clear()


def names() -> list[str]:
    """Registered backend names (no import of the backends themselves)."""
    return sorted(_targets())


def get(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (InputError when unknown)."""
    if name in _loaded:
        return _loaded[name]
    targets = _targets()
    if name not in targets:
        known = ", ".join(sorted(targets)) or "none: install meshbed with `pip install .`"
        raise InputError(f"unknown backend {name!r} (known: {known})")
    module_name, _, attr = targets[name].partition(":")
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, attr)
    _loaded[name] = cls
    return cls


def loadable() -> tuple[dict[str, type[Backend]], dict[str, str]]:
    """Every registered backend class that imports, and why the others do not."""
    classes: dict[str, type[Backend]] = {}
    broken: dict[str, str] = {}
    for name in names():
        try:
            classes[name] = get(name)
        except Exception as exc:  # one broken plugin must not hide the others
            broken[name] = f"{type(exc).__name__}: {exc}"
    return classes, broken
