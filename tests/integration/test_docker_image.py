"""The offline image build: a base made from the host's Python runs the agent, no registry.

Built under throwaway tags (removed afterwards) so the shared meshbed/base:offline and
meshbed/peer images other tests use are not touched.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import pyz
from orchestrator.backends.docker import client
from orchestrator.dockerlib import images
from tests.integration.docker_support import require_docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


@pytest.fixture
def docker_client() -> Iterator[Any]:
    require_docker()
    c = client()
    tags: list[str] = []
    c.test_tags = tags
    yield c
    for t in reversed(tags):
        try:
            c.images.remove(t, force=True)
        except Exception:  # already gone
            pass
    c.close()


def _run(c: Any, image: str, *args: str) -> str:
    out = c.containers.run(image, list(args), remove=True, network_disabled=True,
                           stdout=True, stderr=True)
    return out.decode() if isinstance(out, bytes) else str(out)


def _run_python(c: Any, image: str, code: str) -> str:
    out = c.containers.run(image, ["-c", code], entrypoint="python3", remove=True,
                           network_disabled=True, stdout=True, stderr=True)
    return out.decode() if isinstance(out, bytes) else str(out)


def test_offline_base_runs_the_agent(docker_client: Any, tmp_path: Path) -> None:
    c = docker_client
    suffix = uuid.uuid4().hex[:8]
    base = images.build_offline_base(c, tag=f"meshbed/base-test:{suffix}", say=lambda _: None)
    c.test_tags.append(base)
    # the stdlib parts the agent needs are there, the trimmed ones are not
    out = _run(c, base, "python3", "-c",
               "import asyncio, hashlib, http.server, json, zipfile, ssl, sys; "
               "import importlib.util as u; print(sys.version_info[:2], u.find_spec('idlelib'))")
    assert "None" in out and "(3," in out, out
    agent = pyz.ensure_pyz()
    tag = images.build_peer_image(c, agent, base, tag=f"meshbed/peer-test:{suffix}",
                                  say=lambda _: None)
    c.test_tags.insert(0, tag)
    attrs = c.images.get(tag).attrs
    assert attrs["Config"]["Entrypoint"] == ["python3", "/opt/meshbed/peer.pyz"]
    out = _run(c, tag, "run", "--help")
    assert "--data-dir" in out, out
    # the agent was precompiled by the base's own interpreter, and those .pyc are used
    out = _run_python(
        c, tag, "import sys; sys.path[:0] = ['/opt/meshbed/peer.pyz', "
        "'/opt/meshbed/peer.pyz/_vendor']; import peer.cli; print(peer.cli.__cached__)")
    assert out.strip().endswith("peer/cli.pyc"), out
    # the tag follows the agent and the base: same inputs, same tag
    assert images.peer_tag(c, agent, base) == images.peer_tag(c, agent, base)


def test_cli_image_build_offline(docker_client: Any) -> None:
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "image", "build", "--offline"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    tag = proc.stdout.strip().splitlines()[-1].split()[1]
    assert tag.startswith("meshbed/peer:")
    assert images.image_exists(docker_client, tag)


def test_registry_check_does_not_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    # a resolver that never answers: False within the timeout, never raises. (No real lookup:
    # tests send no traffic beyond this machine.)
    import socket
    import threading

    release = threading.Event()

    def stuck(*_a: Any, **_k: Any) -> Any:
        release.wait(10)
        raise OSError("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        assert images.registry_reachable("registry.example", timeout=0.5) is False
    finally:
        release.set()


def test_changed_agent_gets_a_new_image_and_missing_base_goes_offline(
    docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = docker_client
    # as on an air-gapped host: no registry (and no lookup of one from a test)
    monkeypatch.setattr(images, "registry_reachable", lambda *a, **k: False)
    import shutil
    import zipfile

    agent = tmp_path / "peer.pyz"
    shutil.copy(pyz.ensure_pyz(), agent)
    with zipfile.ZipFile(agent, "a") as zf:  # a different agent, still a valid zipapp
        zf.writestr("meshbed_test_marker.txt", uuid.uuid4().hex)
    notes: list[str] = []
    # a base that is not here and cannot be pulled (no registry): the offline base is used
    tag = images.ensure_peer_image(c, agent, base=f"meshbed/absent-{uuid.uuid4().hex[:6]}:1",
                                   offline=None, say=notes.append)
    c.test_tags.append(tag)
    assert tag != images.ensure_peer_image(c, pyz.ensure_pyz(), say=notes.append)
    assert tag == images.peer_tag(c, agent, images.OFFLINE_BASE)
    assert any("not available" in n or "cannot pull" in n for n in notes), notes
    out = _run(c, tag, "run", "--help")
    assert "--data-dir" in out
