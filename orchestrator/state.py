"""Persistent state of running meshes: ``$MESHBED_HOME/<mesh>/state.json``.

Layout (docs/ARCHITECTURE.md "Backends"):
``{"mesh", "topology", "token", "created", "nodes": {NAME: {"backend","api","wire","group"}},
"backends": {NAME: {...backend's own section...}}}`` plus a few keys of the engine's own
(``contents``, ``phase``, ``links``). Written atomically (temp file + rename, mode 0600: it
holds the token) after every change, so ``status``/``down`` work from another shell and
after a crash.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

from orchestrator import backends as registry
from orchestrator import settings
from orchestrator.backends.base import MeshContext
from orchestrator.errors import InputError
from orchestrator.hostnet.files import write_atomic
from orchestrator.model import Topology

__all__ = ["MeshState", "home", "mesh_dirs", "resolve", "write_atomic"]
STATE_FILE = "state.json"
# Folders of $MESHBED_HOME that are not meshes (content cache, monitoring stack, results).
RESERVED = frozenset({"cache", "monitor", "results"})


def home(override: Optional[Path] = None) -> Path:
    """``$MESHBED_HOME`` or ``~/.local/state/meshbed``."""
    if override is not None:
        return Path(override)
    return settings.home()


class MeshState:
    """One mesh's state file, kept in memory and saved whole after every change."""

    def __init__(self, mesh_dir: Path, data: dict[str, Any]) -> None:
        self.dir = mesh_dir
        self.data = data

    # --- creation / loading -------------------------------------------------------------
    @classmethod
    def create(cls, topology: Topology, home_dir: Path) -> MeshState:
        mesh_dir = home_dir / topology.name
        if (mesh_dir / STATE_FILE).exists():
            raise InputError(
                f"mesh {topology.name!r} is already up (state in {mesh_dir}); "
                f"run `meshbed down {topology.name}` first",
                topology.source,
            )
        mesh_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(mesh_dir, 0o700)
        st = cls(
            mesh_dir,
            {
                "mesh": topology.name,
                "topology": str(topology.source) if topology.source else None,
                "token": secrets.token_urlsafe(24),
                "created": time.time(),
                "phase": "deploying",
                "nodes": {},
                "backends": {},
                "contents": {},
                "links": {},
            },
        )
        st.save()
        return st

    @classmethod
    def load(cls, mesh_dir: Path) -> MeshState:
        try:
            data = json.loads((mesh_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            raise InputError(f"no mesh state in {mesh_dir}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{mesh_dir / STATE_FILE}: corrupt state ({exc})") from None
        data.setdefault("nodes", {})
        data.setdefault("backends", {})
        data.setdefault("contents", {})
        data.setdefault("links", {})
        return cls(mesh_dir, data)

    # --- accessors ----------------------------------------------------------------------
    @property
    def mesh(self) -> str:
        return str(self.data["mesh"])

    @property
    def token(self) -> str:
        return str(self.data["token"])

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        nodes: dict[str, dict[str, Any]] = self.data["nodes"]
        return nodes

    def backend_section(self, name: str) -> dict[str, Any]:
        section: dict[str, Any] = self.data["backends"].setdefault(name, {})
        return section

    def save(self) -> None:
        write_atomic(self.dir / STATE_FILE, json.dumps(self.data, indent=1, sort_keys=True).encode())

    def context(
        self, backend: str, topology: Optional[Topology], say: Callable[[str], None] = print
    ) -> MeshContext:
        """The MeshContext for one backend: its own state section, a save of the whole file."""
        return MeshContext(
            mesh=self.mesh,
            token=self.token,
            state_dir=self.dir,
            state=self.backend_section(backend),
            save=self.save,
            topology=topology,
            say=say,
        )

    def remove(self) -> None:
        """Delete the mesh's folder (after every backend's teardown)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def mesh_dirs(home_dir: Path) -> Iterator[Path]:
    """Folders of meshes that have (or had, before a crash) state under ``home_dir``."""
    if not home_dir.is_dir():
        return
    for p in sorted(home_dir.iterdir()):
        if not p.is_dir() or p.name in RESERVED or p.name.startswith("."):
            continue
        if (p / STATE_FILE).exists() or any((p / b).is_dir() for b in registry.names()):
            yield p


def resolve(name: Optional[str], home_dir: Path) -> Path:
    """The folder of mesh ``name``, or of the only mesh when no name is given."""
    if name:
        d = home_dir / name
        if not d.is_dir():
            raise InputError(f"no mesh named {name!r} in {home_dir}")
        return d
    found = list(mesh_dirs(home_dir))
    if not found:
        raise InputError(f"no running mesh in {home_dir}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(f"several meshes are up ({names}): name one")
    return found[0]
