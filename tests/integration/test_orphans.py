"""`meshbed doctor --clean-orphans`: each backend finds and removes what it left for a mesh
whose state folder is gone, and leaves alone a mesh that still has state and things that
merely look like meshbed's. Real processes, namespaces, bridges, iptables rules.

About 15 s (local ~4 s, netns ~8 s) on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import orphans
from orchestrator.backends.local import LocalBackend
from orchestrator.backends.netns import NetnsBackend, namespaces
from orchestrator.hostnet import processes
from tests.integration.netns_support import require_root

pytestmark = pytest.mark.timeout(180)


def _meshbed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _up(tmp: Path, env: dict[str, str], backend: str, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    doc: dict[str, Any] = {"name": name, "backend": backend, "seed": 5,
                           "groups": {"peers": {"count": 2}},
                           "content": {"blob": {"size": "256KiB", "seeders": ["peers[0]"]}},
                           "scenario": []}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    up = _meshbed("up", str(path), env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    return name


def _agents_under(folder: Path) -> list[int]:
    """Agents and local fork servers (``local/.forkserver/data``) with data under ``folder``."""
    return [pid for (pid, _), d in processes.agents_with_data_dirs()
            if d.startswith(str(folder) + os.sep)]


def test_local_agents_of_a_lost_state_folder_are_ended_and_a_live_mesh_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MESHBED_HOME": str(home)}
    lost, live = _up(tmp_path, env, "local", "olost"), _up(tmp_path, env, "local", "olive")
    # not an agent of ours: `peer` and `--data-dir` in its command line, our layout
    # nowhere (the data dir lies in no `<mesh>/local/<node>/` folder)
    decoy_dir = tmp_path / "decoy" / "peer" / "data"
    decoy_dir.mkdir(parents=True)
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "peer",
                              "--data-dir", str(decoy_dir)])
    try:
        assert len(_agents_under(home / lost)) == 3  # two agents and the fork server
        (home / lost / "state.json").unlink()  # the state is lost; the agents run on
        found = {o.mesh: o for o in LocalBackend.find_orphans(orphans.has_state_in(home))}
        assert lost in found and live not in found, found
        assert sum(t.startswith("agent process") for t in found[lost].things) == 2
        assert sum(t.startswith("fork server process") for t in found[lost].things) == 1
        clean = _meshbed("doctor", "--clean-orphans", lost, env=env)
        assert clean.returncode == 0, clean.stderr + clean.stdout
        assert f"local: {lost}: removed" in clean.stdout, clean.stdout
        assert _agents_under(home / lost) == []
        assert not (home / lost).exists()
        assert len(_agents_under(home / live)) == 3  # the mesh with state runs on
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()
        _meshbed("down", live, env=env)
        _meshbed("doctor", "--clean-orphans", lost, env=env)  # when an assertion stopped us early
    assert _agents_under(home) == []


def _bridge_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _rules(word: str) -> list[str]:
    out = subprocess.run(["iptables", "-w", "5", "-S", "FORWARD"], capture_output=True,
                         text=True, timeout=20).stdout
    return [line for line in out.splitlines() if word in line]


def test_netns_objects_of_a_lost_state_folder_are_removed_and_look_alikes_kept(tmp_path: Path) -> None:
    require_root("iptables")
    home = tmp_path / "home"
    env = {**os.environ, "MESHBED_HOME": str(home)}
    # look-alikes: meshbed's prefixes, but no hex tag, and a comment that is not our mark
    fake = "mb-" + uuid.uuid4().hex[:5] + "z"  # 'z' is no hex digit: no mesh tag is spelt so
    fake_rule = ["FORWARD", "-i", fake, "-o", fake, "-m", "comment", "--comment",
                 "notmeshbed:x", "-j", "ACCEPT"]
    subprocess.run(["ip", "link", "add", fake, "type", "bridge"], check=True)
    subprocess.run(["ip", "netns", "add", f"{fake}-0"], check=True)
    subprocess.run(["iptables", "-w", "10", "-A", *fake_rule], check=True)
    lost = live = ""
    try:
        lost = _up(tmp_path, env, "netns", "nlost")
        live = _up(tmp_path, env, "netns", "nlive")
        tag, live_tag = namespaces.mesh_tag(lost), namespaces.mesh_tag(live)
        assert _rules(f"mb-{tag}") and _bridge_exists(f"mb-{tag}")
        shutil.rmtree(home / lost)  # the whole state folder is lost
        found = {o.mesh: o for o in NetnsBackend.find_orphans(orphans.has_state_in(home))}
        assert lost in found and live not in found, sorted(found)
        assert f"bridge mb-{tag}" in found[lost].things
        assert {f"namespace mb-{tag}-0", f"namespace mb-{tag}-1"} <= set(found[lost].things)
        assert not any(fake in t for o in found.values() for t in o.things)
        clean = _meshbed("doctor", "--clean-orphans", lost, env=env)
        assert clean.returncode == 0, clean.stderr + clean.stdout
        assert f"netns: {lost}: removed" in clean.stdout, clean.stdout
        assert not any(n.startswith(f"mb-{tag}-") for n in namespaces.existing())
        assert not _bridge_exists(f"mb-{tag}") and _rules(f"mb-{tag}") == []
        # the mesh with state and the look-alikes are untouched
        assert _bridge_exists(f"mb-{live_tag}") and _rules(f"mb-{live_tag}")
        assert f"mb-{live_tag}-0" in namespaces.existing()
        assert _bridge_exists(fake) and f"{fake}-0" in namespaces.existing() and _rules(fake)
    finally:
        if live:
            _meshbed("down", live, env=env)
        subprocess.run(["iptables", "-w", "10", "-D", *fake_rule], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"{fake}-0"], capture_output=True)
        subprocess.run(["ip", "link", "del", fake], capture_output=True)
    assert not _bridge_exists(f"mb-{namespaces.mesh_tag(live)}")  # `down` left nothing
