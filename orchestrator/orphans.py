"""Orphans: what backends left on this host for meshes no state names any more.

Each backend finds and removes its own (``Backend.find_orphans`` / ``remove_orphan``);
this module only asks every registered backend, and names none.
A mesh has state when its resources record a state folder that still holds
``state.json``, or, when they record none (a docker label says only the mesh's name), when
$MESHBED_HOME has a folder of that name: meshes of another MESHBED_HOME look orphaned then,
so cleaning is best done by naming the mesh.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Optional

from orchestrator import backends as registry
from orchestrator import state
from orchestrator.backends.base import HasState, Orphan


def has_state_in(home: Path) -> HasState:
    known = {p.name for p in state.mesh_dirs(home)}

    def has_state(mesh: str, state_dir: Optional[Path]) -> bool:
        if state_dir is not None:
            return (state_dir / state.STATE_FILE).exists()
        return mesh in known

    return has_state


def find(home: Path) -> tuple[list[Orphan], dict[str, str]]:
    """Orphans of every available backend, and why a backend could not look (by name)."""
    has_state = has_state_in(home)
    found: list[Orphan] = []
    failed: dict[str, str] = {}
    classes, broken = registry.loadable()
    failed.update(broken)
    for name, cls in classes.items():
        try:
            if cls.unavailable_reason() is not None:
                continue  # nothing of it can be here (or it cannot look): nothing to say
            found += cls.find_orphans(has_state)
        except Exception as exc:  # one backend failing must not hide the others' orphans
            failed[name] = " ".join(f"{type(exc).__name__}: {exc}".split())
    return found, failed


def remove(orphans: Collection[Orphan]) -> dict[Orphan, list[str]]:
    """Remove each orphan through its backend; what could not be removed, per orphan."""
    left: dict[Orphan, list[str]] = {}
    for o in orphans:
        try:
            rest = registry.get(o.backend).remove_orphan(o)
        except Exception as exc:  # noqa: BLE001 - reported, the others still go
            rest = [f"{type(exc).__name__}: {exc}"]
        if rest:
            left[o] = rest
    return left
