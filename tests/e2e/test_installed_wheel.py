"""`pip install .` into a fresh virtualenv, then `meshbed monitor up` from an empty folder:
the dashboards, provisioning and compose file come with the package, not the checkout.

The venv takes meshbed's dependencies (and pip/setuptools/wheel) from the test's own
interpreter through a path file, so nothing is downloaded; meshbed itself is built from a
copy of the repository's tracked files (no build output lands in the checkout).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

from tests.facilities import require_binary

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src, dst = REPO / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    return dest


def test_monitor_up_from_an_installed_wheel_in_an_empty_folder(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus", "apt-get install prometheus")
    source = _tracked_copy(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = env_dir / "bin"
    site = Path(subprocess.run([bindir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after its own
    pip = subprocess.run([bindir / "python", "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--no-index", str(source)],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-2000:]

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": f"{bindir}:{Path(prometheus).parent}:/usr/bin:/bin",
           "MESHBED_HOME": str(tmp_path / "home"), "MESHBED_OFFLINE": "1", "HOME": str(tmp_path)}

    def meshbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([bindir / "meshbed", *args], capture_output=True, text=True,
                              timeout=90, cwd=empty, env=env)

    files = meshbed("monitor", "files")
    assert files.returncode == 0, files.stderr
    data = Path(files.stdout.strip())
    assert data.is_relative_to(site) and not data.is_relative_to(REPO)  # from the wheel
    for rel in ("docker-compose.yml", "prometheus.yml", "provisioning/datasources/prometheus.yaml",
                "provisioning/dashboards/meshbed.yaml"):
        assert (data / rel).is_file(), rel
    assert sorted(p.name for p in (data / "dashboards").glob("*.json")) == sorted(
        p.name for p in (REPO / "grafana" / "dashboards").glob("*.json"))
    images = {s["image"] for s in yaml.safe_load((data / "docker-compose.yml").read_text())["services"].values()}
    from orchestrator import monitor

    assert images == {monitor.GRAFANA_IMAGE, monitor.PROMETHEUS_IMAGE}
    assert all(":" in i and not i.endswith(":latest") for i in images)  # pinned

    port, exporter = _free_port(), _free_port()
    up = meshbed("monitor", "up", "--port", str(port), "--exporter-port", str(exporter), "--no-grafana")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Prometheus: http://127.0.0.1:{port}" in up.stdout
        assert list(empty.iterdir()) == []  # nothing written to the working folder
    finally:
        down = meshbed("monitor", "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert sys.executable != str(bindir / "python")
