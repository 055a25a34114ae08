"""Shared helpers of the reliability suite: which backends to run, topologies built as YAML
(so the real loader checks them), meshes driven through the engine's Python API, and an
offline checker of an agent's piece store (journal + payload, read-only)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import struct
import uuid
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, Optional, TypeVar

import pytest
import yaml

from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from orchestrator.model import Topology
from peer import metainfo
from peer.storage import JOURNAL_FILE, METAINFO_FILE, payload_path
from tests.facilities import missing

ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")
MiB = 1024 * 1024

# Backends the mesh-level tests (churn, partition, seeder loss, crash, security) run on:
# every backend with a contract harness that runs them here; pick fewer with
#   MESHBED_RELIABILITY_BACKENDS=local,netns pytest tests/reliability
# (one that is unavailable skips, or fails under CI=true).
DEFAULT_BACKENDS = "local,netns,docker,swarm,ssh"


def selected_backends() -> list[str]:
    raw = os.environ.get("MESHBED_RELIABILITY_BACKENDS", DEFAULT_BACKENDS)
    return [b.strip() for b in raw.split(",") if b.strip()]


_harness_ready: dict[str, Any] = {}


def harness(backend: str) -> Any:
    """The contract harness of ``backend`` (or the one it gives for meshes: ``for_meshes()``,
    e.g. ssh's lab of host devices); skip (fail under CI=true) when unavailable."""
    if backend in _harness_ready:
        return _harness_ready[backend]
    try:
        mod: Any = importlib.import_module(f"tests.contract.harness.{backend}")
    except ModuleNotFoundError:
        pytest.fail(f"no contract harness for backend {backend!r}")
    if hasattr(mod, "for_meshes"):
        mod = mod.for_meshes()
    reason = mod.skip_reason()
    if reason:
        missing(f"backend {backend}: {reason}")
    if hasattr(mod, "setup"):
        mod.setup()
    _harness_ready[backend] = mod
    return mod


def ready_harnesses() -> list[Any]:
    return list(_harness_ready.values())


def write_topology(
    tmp: Path, backend: str, prefix: str, doc: dict[str, Any], name: Optional[str] = None
) -> tuple[Topology, Path]:
    """Write ``doc`` (plus the backend's harness fields and ``name``, by default a unique
    one) and load it. Groups go through the harness's ``adapt_groups`` when it has one
    (ssh: devices instead of counts)."""
    name = name or f"{prefix}-{backend[:5]}-{uuid.uuid4().hex[:6]}"
    mod = harness(backend)
    full: dict[str, Any] = {"name": name}
    full.update(mod.topology_fields(_count(doc)))
    full.update(doc)
    if hasattr(mod, "adapt_groups"):
        full["groups"] = mod.adapt_groups(doc["groups"])
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(full, sort_keys=False))
    return load_topology(path), path


def _count(doc: dict[str, Any]) -> int:
    return sum(int(g.get("count", 1)) for g in doc.get("groups", {}).values())


def run(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` to completion on a fresh loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def with_mesh(mesh: Mesh, body: Awaitable[T]) -> T:
    """Await ``body`` (which uses an up mesh); always tear the mesh down afterwards."""
    try:
        return await body
    finally:
        await asyncio.shield(mesh.down())


def leftovers(backend: str, mesh_name: str, home: Path) -> list[str]:
    """What of the mesh is still on the host (the harness looks under $MESHBED_HOME)."""
    mod = harness(backend)
    old = os.environ.get("MESHBED_HOME")
    os.environ["MESHBED_HOME"] = str(home)
    try:
        return list(mod.leftovers(mesh_name))
    finally:
        if old is None:
            del os.environ["MESHBED_HOME"]
        else:
            os.environ["MESHBED_HOME"] = old


# --- offline store check --------------------------------------------------------------------
_REC = struct.Struct(">I")


def journal_indexes(root: Path) -> list[int]:
    """Piece indexes recorded in the store's journal (whole records only)."""
    try:
        raw = (root / JOURNAL_FILE).read_bytes()
    except FileNotFoundError:
        return []
    whole = len(raw) - len(raw) % 4
    return [i for (i,) in _REC.iter_unpack(raw[:whole])]


def check_store(root: Path) -> tuple[set[int], list[int]]:
    """(pieces whose bytes match their SHA-1, journaled pieces that do not) of a store."""
    meta = metainfo.parse((root / METAINFO_FILE).read_bytes())
    good: set[int] = set()
    bad: list[int] = []
    path = payload_path(root, meta)
    with open(path, "rb") as f:
        for i in journal_indexes(root):
            if i >= meta.num_pieces:
                bad.append(i)
                continue
            f.seek(meta.piece_offset(i))
            data = f.read(meta.piece_size(i))
            if hashlib.sha1(data).digest() == meta.piece_hashes[i]:
                good.add(i)
            else:
                bad.append(i)
    return good, bad


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def metric_values(text: str, name: str) -> dict[str, float]:
    """{label-string: value} of one metric family in Prometheus text format."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        rest = key[len(name):]
        if rest and not rest.startswith("{"):
            continue  # a longer metric name with the same prefix
        out[rest] = float(value)
    return out


def metric_sum(text: str, name: str, label: Optional[str] = None) -> float:
    vals = metric_values(text, name)
    if label is None:
        return sum(vals.values())
    return sum(v for k, v in vals.items() if label in k)
