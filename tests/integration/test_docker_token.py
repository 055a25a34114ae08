"""The mesh token reaches docker agents through a read-only bind of a 0600 host file: not
in `docker inspect` (environment, command), not in the data volume (issue 14, row 12)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from orchestrator.backends.docker import client, containers
from orchestrator.dockerlib import labels
from orchestrator.mesh import Mesh
from orchestrator.peerclient import PeerClient, PeerError
from tests.integration.docker_support import (
    leftovers,
    mesh_name,
    require_docker,
    require_root,
    topology,
)

pytestmark = [pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(180)]


def test_token_is_a_mounted_file_not_environment(tmp_path: Path) -> None:
    require_root()
    require_docker()
    name = mesh_name("tok")
    topo = topology(tmp_path, name, {"seeders": {"count": 1}},
                    {"f": {"size": "64KiB", "seeders": ["seeders"]}}, [])
    home = tmp_path / "home"

    async def go() -> None:
        mesh = Mesh(topo, home=home)
        try:
            await mesh.up()
            token = mesh.state.data["token"]
            c = client()
            try:
                info = c.api.inspect_container(labels.container_name(name, "seeders-0"))
            finally:
                c.close()
            assert not any(token in e for e in info["Config"]["Env"] or [])
            assert token not in " ".join(info["Config"]["Cmd"] or [])
            mount = next(m for m in info["Mounts"] if m["Destination"] == containers.TOKEN_PATH)
            assert mount["RW"] is False
            host_file = Path(mount["Source"])
            assert host_file.read_text() == token
            assert stat.S_IMODE(host_file.stat().st_mode) == 0o600
            # the token authorises mutating calls; the data dir cannot hand it out
            ep = mesh.endpoints["seeders-0"]
            api = PeerClient(ep.api, token)
            assert (await api.request("POST", "/link", {"latency_ms": 1}))["latency_ms"] == 1
            for bad in (containers.TOKEN_PATH, "../../run/meshbed/token", "token"):
                with pytest.raises(PeerError) as refused:
                    await api.share({"file": bad})
                assert refused.value.status in (400, 404), bad  # outside, or not there
        finally:
            await mesh.down()

    asyncio.run(go())
    assert leftovers(name) == []
