"""`meshbed doctor`: the host table and what each backend will use, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.backends import tc
from tests.integration.docker_support import require_docker

pytestmark = pytest.mark.timeout(120)


def _doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "doctor", *args],
                          capture_output=True, text=True, timeout=90, env=env)


def test_doctor_reports_the_host_and_the_backends(tmp_path: Path) -> None:
    require_docker()
    env = {**os.environ, "MESHBED_HOME": str(tmp_path)}
    proc = _doctor("--json", env=env)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    host = found["host"]
    assert host["docker engine"]["ok"] is True
    assert host["root"]["ok"] is (os.geteuid() == 0)
    probe = tc.probe()
    for key in ("tbf", "netem", "ifb", "iptables"):
        assert host[key]["ok"] is probe[key], key
    docker_row = found["backends"]["docker"]
    assert docker_row["available"] == "yes"
    assert docker_row["rate"] == ("kernel (tbf)" if probe["root"] and probe["tbf"] else "agent")
    assert docker_row["delay"] == ("kernel (netem)" if probe["netem"] else "agent")
    assert found["backends"]["local"]["rate"] == "agent"
    text = _doctor(env=env)
    assert text.returncode == 0 and "docker engine" in text.stdout and "latency/loss" in text.stdout


def test_doctor_without_docker_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "MESHBED_HOME": str(tmp_path),
           "DOCKER_HOST": f"unix://{tmp_path}/absent.sock"}
    proc = _doctor("--json", env=env)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["host"]["docker engine"]["ok"] is False
    assert found["backends"]["docker"]["available"].startswith("no: cannot reach the Docker engine")
