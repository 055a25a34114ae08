"""What goes into a client image and when it is rebuilt (orchestrator/clients/image.py);
`meshbed image build --client` parsing. No docker needed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.clients import image
from orchestrator.commands.image import client_kinds
from orchestrator.errors import InputError
from tests.facilities import require


@pytest.fixture
def fake_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`aria2` made of one file of ours: the tag must follow that file."""
    binary = tmp_path / "aria2c"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setitem(image.RECIPES, "aria2", image.Recipe(commands=("aria2c",)))
    image.client_files.cache_clear()
    yield binary
    image.client_files.cache_clear()


def test_the_image_holds_the_client_and_the_translator(fake_client: Path) -> None:
    assert image.client_files("aria2") == (str(fake_client),)
    shipped = {arc for arc, _ in image.translator_files()}
    for module in ("orchestrator/__init__.py", "orchestrator/clients/node.py",
                   "orchestrator/clients/lt_runner.py", "peer/control.py", "peer/metrics.py",
                   "_vendor/prometheus_client/__init__.py"):
        assert f"{image.CODE_DIR}/{module}" in shipped, module


def test_a_changed_client_gives_a_new_tag(fake_client: Path) -> None:
    before = image.image_tag("aria2")
    assert before.startswith("meshbed/client-aria2:") and image.image_tag("aria2") == before
    fake_client.write_text("#!/bin/sh\necho upgraded\n")
    image.client_files.cache_clear()
    assert image.image_tag("aria2") != before


def test_python_clients_bring_their_dist_packages_not_what_site_loads() -> None:
    image.client_files.cache_clear()
    require(image.image_problem("libtorrent"))  # python3-libtorrent (fails under CI=true)
    files = image.client_files("libtorrent")
    assert any(os.path.basename(f).startswith("libtorrent") for f in files)
    assert not any("_distutils_hack" in f for f in files)  # a .pth import, not libtorrent's


@pytest.mark.parametrize(("asked", "kinds"), [
    ([], []), (["aria2"], ["aria2"]), (["aria2,libtorrent", "aria2"], ["aria2", "libtorrent"]),
])
def test_client_kinds_by_name(asked: list[str], kinds: list[str]) -> None:
    assert client_kinds(asked) == kinds


def test_an_unknown_client_kind_is_refused() -> None:
    with pytest.raises(InputError, match="utorrent: not a client"):
        client_kinds(["utorrent"])
