"""`client:` on the docker backend: the group's image must be buildable from this host's
files, else validate refuses it at the group's line (FILE:LINE, exit 2, nothing deployed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import clients
from orchestrator.cli import main as cli_main
from orchestrator.clients import image
from orchestrator.errors import InputError
from orchestrator.loader import load_topology_text

TOPO = "name: t\nbackend: docker\ngroups:\n  s: {count: 1}\n  a:\n    count: 2\n    client: libtorrent\n"


@pytest.fixture
def unbuildable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """libtorrent counts as installed, but its image needs a module the host lacks."""
    monkeypatch.setattr(clients, "installed", lambda name: True)
    monkeypatch.setitem(image.RECIPES, "libtorrent",
                        image.Recipe(modules=("meshbed_no_such_module_x",)))
    image.client_files.cache_clear()
    yield
    image.client_files.cache_clear()


def test_client_nodes_on_docker_carry_their_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "installed", lambda name: True)
    monkeypatch.setattr(image, "image_problem", lambda kind: None)  # hosts without libtorrent
    topo = load_topology_text(TOPO, Path("t.yaml"))
    assert [clients.client_of(n.options) for n in topo.nodes] == ["meshbed", "libtorrent",
                                                                   "libtorrent"]


def test_a_client_whose_image_cannot_be_built_is_refused_at_its_line(unbuildable: None) -> None:
    with pytest.raises(InputError) as err:
        load_topology_text(TOPO, Path("t.yaml"))
    assert err.value.line == 7  # the `client:` line
    assert "libtorrent image cannot be built" in err.value.message
    assert "meshbed_no_such_module_x" in err.value.message


def test_a_missing_command_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(image.RECIPES, "aria2", image.Recipe(commands=("meshbed-no-aria2c",)))
    image.client_files.cache_clear()
    try:
        problem = image.image_problem("aria2")
    finally:
        image.client_files.cache_clear()
    assert problem is not None and "apt-get install aria2" in problem


def test_image_and_client_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "installed", lambda name: True)
    monkeypatch.setattr(image, "image_problem", lambda kind: None)
    with pytest.raises(InputError) as err:
        load_topology_text(TOPO + "    image: my/peer:1\n", Path("t.yaml"))
    assert err.value.line == 6 and "image and client" in err.value.message  # the group


def test_validate_exits_2_and_deploys_nothing(unbuildable: None, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    topo = tmp_path / "bad.yaml"
    topo.write_text(TOPO)
    assert cli_main(["validate", str(topo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{topo}:7: "), err
    assert "cannot be built" in err[0]
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())


def test_client_nodes_on_docker_need_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root nothing shapes a container's link in the kernel, and a real client
    cannot emulate links as the agent does."""
    import orchestrator.backends.docker as docker_backend

    monkeypatch.setattr(clients, "installed", lambda name: True)
    monkeypatch.setattr(docker_backend.os, "geteuid", lambda: 1000)
    with pytest.raises(InputError) as err:
        load_topology_text(TOPO, Path("t.yaml"))
    assert err.value.line == 7 and "needs root" in err.value.message
