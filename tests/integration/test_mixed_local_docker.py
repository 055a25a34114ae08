"""A mixed mesh: seeders as local processes (listening on loopback), leechers in Docker
containers. Containers cannot dial loopback peers, so the engine has the local peers dial
them (POST /peers): the swarm must still complete and every leecher must get bytes from the
local seeder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import docker_support as ds

pytestmark = pytest.mark.timeout(300)


def test_local_seeder_docker_leechers_complete(tmp_path: Path) -> None:
    ds.require_docker()
    ds.docker_harness.setup()  # the peer image (offline base) exists after this
    name = ds.mesh_name("mixed")
    path = ds.write_topology(
        tmp_path, name,
        groups={"seeders": {"count": 1, "backend": "local", "link": {"up": "40mbit"}},
                "leechers": {"count": 3}},
        content={"movie": {"size": "4MiB", "seeders": ["seeders"]}},
        scenario=[{"at": "0s", "fetch": {"content": "movie", "by": "leechers"}}],
        expect={"all_complete_within": "120s"},
    )
    env = dict(os.environ, MESHBED_HOME=str(tmp_path / "home"))
    report_path = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(path), "--report", str(report_path)],
                         env=env, capture_output=True, text=True, timeout=280)
    try:
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(report_path.read_text())
        assert report["backend"] == "docker+local" or set(report["backend"].split("+")) == {"docker", "local"}
        for i in range(3):
            fetch = report["nodes"][f"leechers-{i}"]["fetches"]["movie"]
            assert fetch["complete"] and fetch["verified"]
            assert fetch["bytes_from"].get("seeders-0", 0) > 0, fetch["bytes_from"]
    finally:
        subprocess.run([sys.executable, "-m", "orchestrator", "down", name], env=env, capture_output=True, timeout=120)
    assert ds.leftovers(name) == []
