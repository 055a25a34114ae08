"""peer.pyz: reproducible, cached, and runs with nothing installed (-I -S, Debian's python3,
the oldest supported Python when one is around)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.pyz import SHEBANG, build_pyz, ensure_pyz, sources_digest
from tests.peerproc import AgentProc

pytestmark = pytest.mark.timeout(180)


def _interpreters() -> list[str]:
    """Interpreters to try: this one, Debian's, and the oldest supported (3.9) if present."""
    found = [sys.executable]
    if Path("/usr/bin/python3").exists():
        found.append("/usr/bin/python3")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += [str(p) for p in sorted(pyenv.glob("3.9*/bin/python3"))[:1]]
    return found


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pyz(tmp_path_factory.mktemp("pyz") / "peer.pyz")


def test_reproducible_and_executable(pyz: Path, tmp_path: Path) -> None:
    again = build_pyz(tmp_path / "again.pyz")
    assert pyz.read_bytes() == again.read_bytes()
    assert pyz.read_bytes().startswith(SHEBANG)
    assert os.stat(pyz).st_mode & 0o111
    with zipfile.ZipFile(pyz) as zf:
        names = zf.namelist()
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert "__main__.py" in names and "peer/cli.py" in names and "peer/agent.py" in names and "peer/core/swarm.py" in names
    assert "_vendor/prometheus_client/__init__.py" in names
    assert not any("__pycache__" in n or n.startswith(("tests/", "orchestrator/")) for n in names)


@pytest.mark.parametrize("python", _interpreters())
def test_help_with_nothing_installed(pyz: Path, tmp_path: Path, python: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    for args in (["--help"], ["run", "--help"], ["--version"]):
        r = subprocess.run([python, "-I", "-S", str(pyz), *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (python, args, r.stderr)
        assert "meshbed-peer" in r.stdout or "usage" in r.stdout
    r = subprocess.run([python, "-I", "-S", str(pyz), "run"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_direct_execution_via_shebang(pyz: Path, tmp_path: Path) -> None:
    r = subprocess.run([str(pyz), "--version"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("meshbed-peer ")


def test_ensure_pyz_caches_by_source_digest(tmp_path: Path) -> None:
    first = ensure_pyz(tmp_path)
    assert first == tmp_path / "cache" / f"peer-{sources_digest()}.pyz"
    stamp = first.stat().st_mtime_ns
    assert ensure_pyz(tmp_path) == first and first.stat().st_mtime_ns == stamp
    os.environ["MESHBED_HOME"], saved = str(tmp_path / "home"), os.environ.get("MESHBED_HOME")
    try:
        assert ensure_pyz().parent == tmp_path / "home" / "cache"
    finally:
        if saved is None:
            del os.environ["MESHBED_HOME"]
        else:
            os.environ["MESHBED_HOME"] = saved


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.kill()


def test_agents_from_pyz_share_and_fetch(pyz: Path, tmp_path: Path,
                                         agents: list[AgentProc]) -> None:
    """Two agents run from the zipapp on the oldest interpreter found, with no site-packages."""
    python = _interpreters()[-1]
    command = [python, "-I", "-S", str(pyz)]
    seeder = AgentProc(tmp_path, "seeders-0", command=command)
    leecher = AgentProc(tmp_path, "leechers-0", command=command)
    agents += [seeder, leecher]
    seeder.start()
    leecher.start()
    shared = seeder.share_synthetic("movie", 2 * 1024 * 1024 + 3, seed=4, piece_length=65536)
    leecher.ok("POST", "/fetch", {"metainfo": shared["metainfo"], "peers": [seeder.wire],
                                  "sha256": shared["sha256"]})
    t = leecher.wait_complete(shared["infohash"], 60)
    assert t["verified"] is True
    status, text = leecher.call("GET", "/metrics")
    assert status == 200 and 'meshbed_pieces_held{content="movie"}' in text
    assert "process_resident_memory_bytes" in text
    assert leecher.terminate(20) == 0 and seeder.terminate(20) == 0
