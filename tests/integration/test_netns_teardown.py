"""`down` after the orchestrator was SIGKILLed mid-deploy leaves nothing; no-root message."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.netns import NO_ROOT, NetnsBackend
from tests.contract.harness.netns import leftovers
from tests.facilities import missing
from tests.integration.netns_support import load_ctx, require_root, state_file

REPO = Path(__file__).resolve().parents[2]

# The orchestrator side of a deploy, in its own process so it can be SIGKILLed.
CHILD = r"""
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from orchestrator.backends.netns import NetnsBackend
from orchestrator.model import Link
from tests.integration.netns_support import make_ctx, nodes
home, mesh, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
async def main():
    b = NetnsBackend(make_ctx(home, mesh))
    group = nodes(n, Link(up_bps=10_000_000, down_bps=50_000_000))
    await b.prepare(group)
    for node in group:
        await b.deploy(node)
    await asyncio.sleep(600)
asyncio.run(main())
"""


class _Named:
    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home


def _recorded(path: Path) -> dict:
    try:
        return json.loads(path.read_text())["backends"]["netns"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.mark.root
@pytest.mark.timeout(240)
@pytest.mark.parametrize("moment", ["creating", "spawning"])
def test_down_after_sigkill_mid_deploy_leaves_nothing(tmp_path: Path, moment: str) -> None:
    require_root()
    mesh = f"nstest-crash-{moment}"
    path = state_file(tmp_path, mesh)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), mesh, "24", str(REPO)],
                             cwd=str(REPO))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = _recorded(path)
            spawned = sum(1 for r in st.get("nodes", {}).values() if r.get("pid"))
            # "creating": the bridge is there, namespaces and veths are on their way.
            if moment == "creating" and st.get("bridge") and os.path.exists(
                    f"/sys/class/net/{st['bridge']}"):
                break
            if moment == "spawning" and spawned >= 6:
                break
            assert child.poll() is None, "deploy process died by itself"
            time.sleep(0.005)
        else:
            pytest.fail("deploy never reached the moment to kill it")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    if moment == "spawning":
        time.sleep(1.0)  # let the orphaned agents get going
        assert any(line.startswith("process") for line in leftovers(_Named(mesh, tmp_path)))
    assert leftovers(_Named(mesh, tmp_path)) != []
    backend = NetnsBackend(load_ctx(tmp_path, mesh))
    asyncio.run(backend.teardown())
    assert leftovers(_Named(mesh, tmp_path)) == []
    asyncio.run(NetnsBackend(load_ctx(tmp_path, mesh)).teardown())  # idempotent


@pytest.mark.timeout(60)
def test_unavailable_without_root_as_nobody() -> None:
    """The real check, run by an unprivileged user (setpriv drops to nobody)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"):
        missing("needs root (to drop privileges), setpriv and /usr/bin/python3")
    # pyenv's interpreter lives under /root; the system one reads the stdlib-only modules.
    res = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "env", f"PYTHONPATH={REPO}", "/usr/bin/python3", "-c",
         "from orchestrator.backends.netns import NetnsBackend as B; "
         "print(B.unavailable_reason())"],
        capture_output=True, text=True, timeout=30, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == NO_ROOT


def test_unavailable_reason_names_root_then_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.backends.netns as mod

    monkeypatch.setattr(mod.os, "geteuid", lambda: 1000)
    assert NetnsBackend.unavailable_reason() == NO_ROOT
    monkeypatch.setattr(mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(mod.shutil, "which", lambda tool: None if tool == "tc" else "/x")
    reason = NetnsBackend.unavailable_reason()
    assert reason is not None and "`tc`" in reason and "iproute2" in reason
