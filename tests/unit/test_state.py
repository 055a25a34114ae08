"""$MESHBED_HOME/<mesh>/state.json: atomic, private, one section per backend, name lookup."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from orchestrator import state
from orchestrator.errors import InputError
from orchestrator.model import Topology

pytestmark = pytest.mark.timeout(30)


def topo(name: str = "demo") -> Topology:
    return Topology(name=name, source=Path("/x/demo.yaml"))


def test_home_prefers_override_then_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "env"))
    assert state.home() == tmp_path / "env"
    assert state.home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MESHBED_HOME")
    assert state.home() == Path.home() / ".local" / "state" / "meshbed"


def test_create_writes_private_state_with_fixed_layout(tmp_path: Path) -> None:
    st = state.MeshState.create(topo(), tmp_path)
    path = tmp_path / "demo" / "state.json"
    data = json.loads(path.read_text())
    assert {"mesh", "topology", "token", "created", "nodes", "backends"} <= set(data)
    assert data["mesh"] == "demo" and data["topology"] == "/x/demo.yaml"
    assert len(data["token"]) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "demo").stat().st_mode) == 0o700
    assert st.token == data["token"]


def test_second_create_of_same_mesh_is_refused(tmp_path: Path) -> None:
    state.MeshState.create(topo(), tmp_path)
    with pytest.raises(InputError, match="already up"):
        state.MeshState.create(topo(), tmp_path)


def test_context_saves_the_whole_file(tmp_path: Path) -> None:
    st = state.MeshState.create(topo(), tmp_path)
    ctx = st.context("local", None)
    ctx.state["nodes"] = {"a-0": {"pid": 42}}
    st.nodes["a-0"] = {"backend": "local", "api": "127.0.0.1:1", "wire": "127.0.0.1:2", "group": "a"}
    ctx.save()
    again = state.MeshState.load(tmp_path / "demo")
    assert again.data["backends"]["local"]["nodes"]["a-0"]["pid"] == 42
    assert again.nodes["a-0"]["api"] == "127.0.0.1:1"
    assert ctx.token == st.token and ctx.mesh == "demo" and ctx.state_dir == tmp_path / "demo"


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    for i in range(3):
        state.write_atomic(target, json.dumps({"i": i}).encode())
    assert json.loads(target.read_text()) == {"i": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_load_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no mesh state"):
        state.MeshState.load(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "state.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        state.MeshState.load(tmp_path / "bad")


def test_resolve_by_name_or_only_mesh(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no running mesh"):
        state.resolve(None, tmp_path)
    state.MeshState.create(topo("one"), tmp_path)
    (tmp_path / "cache").mkdir()  # the content cache is not a mesh
    assert state.resolve(None, tmp_path) == tmp_path / "one"
    state.MeshState.create(topo("two"), tmp_path)
    with pytest.raises(InputError, match="several meshes"):
        state.resolve(None, tmp_path)
    assert state.resolve("two", tmp_path) == tmp_path / "two"
    with pytest.raises(InputError, match="no mesh named"):
        state.resolve("three", tmp_path)
    assert [p.name for p in state.mesh_dirs(tmp_path)] == ["one", "two"]


def test_remove_deletes_the_folder(tmp_path: Path) -> None:
    st = state.MeshState.create(topo(), tmp_path)
    (st.dir / "local").mkdir()
    st.remove()
    assert not (tmp_path / "demo").exists()
