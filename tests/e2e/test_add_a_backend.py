"""docs/adding-a-backend.md, followed to the letter: its code blocks become a package of
their own, registered by entry point in a fresh virtualenv; meshbed then validates, describes,
runs and tears down a mesh on it, and refuses bad option values with FILE:LINE. Nothing
is written into the meshbed checkout (no new file appears in it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adding-a-backend.md"
BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.M | re.S)


def _untracked() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines()
            if line[:2] in ("??", "!!") and "__pycache__" not in line}


def _agents(mesh: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if b"--mesh" in argv and mesh.encode() in argv and b"toy" in argv and \
                    not stat[stat.rindex(")") + 2:].startswith("Z"):
                found.append(int(entry.name))
    return found


def test_the_toy_backend_of_the_guide_runs_a_mesh(tmp_path: Path) -> None:
    before = _untracked()
    files = BLOCK.findall(DOC.read_text())
    assert {name for name, _ in files} >= {"meshbed-toy/pyproject.toml",
                                           "meshbed-toy/meshbed_toy/__init__.py", "toy-mesh.yaml"}
    for name, text in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # meshbed (and pip/setuptools) as this test runs them: the checkout and its venv
    (site / "meshbed.pth").write_text(f"{REPO}\n{sysconfig.get_paths()['purelib']}\n")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", str(tmp_path / "meshbed-toy")],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-2000:]

    env = {**os.environ, "MESHBED_HOME": str(tmp_path / "home"), "PYTHONPATH": "",
           "PYTHONDONTWRITEBYTECODE": "1"}

    def meshbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([py, "-m", "orchestrator", *args], capture_output=True, text=True,
                              timeout=150, cwd=tmp_path, env=env)

    topo = tmp_path / "toy-mesh.yaml"
    assert meshbed("validate", str(topo)).returncode == 0
    doctor = json.loads(meshbed("doctor", "--json").stdout)
    assert doctor["backends"]["toy"]["available"] == "yes"
    assert "toy.nice" in doctor["group_options"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(topo.read_text().replace("nice: 5", "nice: 25"))
    res = meshbed("validate", str(bad))
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "nice: 25" in t)
    assert res.returncode == 2
    assert res.stderr == f"{bad}:{line}: group 'leechers': nice must be at most 19, got 25\n"
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(topo.read_text().replace("{count: 2, nice: 5}",
                                                  "{count: 2, nice: 5, backend: local}"))
    res = meshbed("validate", str(elsewhere))
    assert res.returncode == 2 and "nice only applies to the toy backend, not 'local'" in res.stderr

    run = meshbed("run", str(topo), "--report", str(tmp_path / "report.json"))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True and report["backend"] == "toy"
    fetches = [f for n in report["nodes"].values() for f in n["fetches"].values()]
    assert len(fetches) == 2 and all(f["complete"] and f["verified"] for f in fetches)
    assert _agents("toy-demo") == []
    assert not (tmp_path / "home" / "toy-demo").exists()
    assert _untracked() - before == set()  # no build output, no egg-info in the checkout
