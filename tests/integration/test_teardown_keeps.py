"""Teardown keeps in state whatever it could not remove, so the next `down` finds it; once
removal works again, that `down` leaves nothing. (The failure is injected at the one call
that removes the resource; everything else is real.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.netns import NetnsBackend, namespaces
from orchestrator.errors import DeployError
from orchestrator.hostnet import processes
from orchestrator.loader import load_topology_text
from orchestrator.mesh import Mesh
from tests.contract.harness import local as local_harness
from tests.contract.harness.netns import leftovers
from tests.integration import docker_support
from tests.integration.netns_support import load_ctx, make_ctx, nodes, require_root

pytestmark = pytest.mark.timeout(120)


class _Named:
    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home


@pytest.mark.root
def test_netns_keeps_a_namespace_it_could_not_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_root()
    mesh = "nstest-keep"
    backend = NetnsBackend(make_ctx(tmp_path, mesh))
    group = nodes(3)
    asyncio.run(backend.prepare(group))
    stuck = backend.st["nodes"]["g-1"]["ns"]
    real_delete = namespaces.delete

    async def delete_but_one(names: list[str]) -> None:
        await real_delete([n for n in names if n != stuck])

    monkeypatch.setattr(namespaces, "delete", delete_but_one)
    with pytest.raises(DeployError, match=f"namespaces {stuck}"):
        asyncio.run(NetnsBackend(load_ctx(tmp_path, mesh)).teardown())
    kept = load_ctx(tmp_path, mesh).state
    assert list(kept["nodes"]) == ["g-1"] and kept["tag"]  # only what is left, and the mesh
    assert f"namespace {stuck}" in leftovers(_Named(mesh, tmp_path))
    monkeypatch.setattr(namespaces, "delete", real_delete)
    asyncio.run(NetnsBackend(load_ctx(tmp_path, mesh)).teardown())
    assert leftovers(_Named(mesh, tmp_path)) == []
    assert load_ctx(tmp_path, mesh).state == {}


def test_local_keeps_an_agent_it_could_not_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = load_topology_text("name: keep\nbackend: local\ngroups:\n  a: {count: 2}\n")
    mesh = Mesh(t, home=tmp_path)
    asyncio.run(mesh.up())
    pids = {n: e["pid"] for n, e in
            json.loads((tmp_path / "keep" / "state.json").read_text())["backends"]["local"]["nodes"].items()}
    real_terminate = processes.terminate

    async def spare_a1(targets: Any, grace: float = 10.0) -> list[int]:
        targets = list(targets)
        await real_terminate([t for t in targets if t[0] != pids["a-1"]], grace=grace)
        return [pids["a-1"]]  # as if it had survived SIGKILL

    monkeypatch.setattr(processes, "terminate", spare_a1)
    with pytest.raises(DeployError, match=str(pids["a-1"])):
        asyncio.run(Mesh.attach("keep", home=tmp_path).down())
    state = json.loads((tmp_path / "keep" / "state.json").read_text())
    assert list(state["backends"]["local"]["nodes"]) == ["a-1"]
    assert local_harness.agent_pids("keep", tmp_path) == [pids["a-1"]]
    monkeypatch.setattr(processes, "terminate", real_terminate)
    asyncio.run(Mesh.attach("keep", home=tmp_path).down())
    assert local_harness.agent_pids("keep", tmp_path) == [] and not (tmp_path / "keep").exists()


@pytest.mark.docker
def test_docker_keeps_a_container_it_could_not_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_support.require_docker()
    docker_support.docker_harness.setup()  # the peer image, built offline once
    import docker.errors

    from orchestrator.backends.docker import containers

    name = docker_support.mesh_name("dkeep")
    t = docker_support.topology(tmp_path, name, {"p": {"count": 2}}, {}, [])
    asyncio.run(Mesh(t, home=tmp_path).up())
    stuck = f"meshbed-{name}-p-1"
    real_remove = containers.remove

    def remove_but_one(client: Any, name_or_id: str) -> bool:
        info = client.api.inspect_container(name_or_id)
        if info["Name"].lstrip("/") == stuck:
            raise docker.errors.APIError("injected: device or resource busy")
        return real_remove(client, name_or_id)

    monkeypatch.setattr(containers, "remove", remove_but_one)
    try:
        with pytest.raises(DeployError, match=f"container {stuck}"):
            asyncio.run(Mesh.attach(name, home=tmp_path).down())
        state = json.loads((tmp_path / name / "state.json").read_text())
        assert list(state["backends"]["docker"]["nodes"]) == ["p-1"]
        assert f"container {stuck}" in " ".join(docker_support.leftovers(name))
    finally:
        monkeypatch.setattr(containers, "remove", real_remove)
        asyncio.run(Mesh.attach(name, home=tmp_path).down())
    assert docker_support.leftovers(name) == [] and not (tmp_path / name).exists()
