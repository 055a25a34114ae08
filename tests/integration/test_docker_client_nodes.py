"""Real BitTorrent clients as mesh nodes on the docker backend: the client image is built
offline from this host's Debian packages (orchestrator/clients/image.py), the translator runs
beside the client in the container. Root, dockerd and the client needed (under CI a missing
one fails)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orchestrator.clients import ADAPTERS, installed
from orchestrator.clients.image import image_tag
from orchestrator.mesh import Mesh
from orchestrator.monitor import target_groups
from tests.facilities import require
from tests.integration.client_support import check_kill_start
from tests.integration.docker_support import (
    leftovers,
    mesh_name,
    require_docker,
    require_root,
    topology,
)
from tests.meshplay import play_report

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]


def _need(client: str) -> None:
    require_root()
    require_docker()
    require(None if installed(client) else
            f"{client} not installed (apt-get install {ADAPTERS[client].package})")


def _scrape(api: str) -> str:
    with urllib.request.urlopen(f"http://{api}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


@pytest.mark.parametrize("client", ["aria2", "libtorrent"])
def test_client_node_fetches_from_a_meshbed_seeder_survives_kill_and_start(
        client: str, tmp_path: Path) -> None:
    """A meshbed seeder and one client leecher in containers: the leecher's 16 mbit link
    holds 8 MiB for ~4 s, so the kill at 1 s lands mid-transfer; `start` runs the container
    again on its volume and the client resumes to a SHA-256-verified file."""
    _need(client)
    name = mesh_name(f"dcl{client[:2]}")
    topo = topology(
        tmp_path, name,
        {"seed": {"count": 1}, "leech": {"count": 1, "client": client,
                                         "link": {"down": "16mbit"}}},
        {"blob": {"size": "8MiB", "seeders": ["seed"]}},
        [{"at": "0s", "fetch": {"content": "blob", "by": "leech"}},
         {"at": "1s", "kill": "leech"}, {"at": "2s", "start": "leech"}],
        chunk_size="256KiB", expect={"all_complete_within": "90s"})
    seen: dict[str, Any] = {}

    async def go() -> dict[str, Any]:
        mesh = Mesh(topo, home=tmp_path / "home")
        try:
            await mesh.up()
            await mesh.play()
            assert mesh.state is not None
            seen["targets"] = target_groups(name, mesh.state.nodes)
            api = str(mesh.state.nodes["leech-0"]["api"])
            seen["metrics"] = await asyncio.to_thread(_scrape, api)
            return mesh.report()
        finally:
            await mesh.down()

    report = asyncio.run(go())
    fetch = check_kill_start(report, client)
    if client == "libtorrent":  # per-peer bytes, named by the node behind the address
        assert fetch["bytes_from"] and set(fetch["bytes_from"]) <= {"seed-0"}, fetch
    # the Prometheus target carries the client; the translator's exporter says it is done
    labels = {t["labels"]["node"]: t["labels"] for t in seen["targets"]}
    assert labels["leech-0"]["client"] == client and labels["leech-0"]["backend"] == "docker"
    assert labels["seed-0"]["client"] == "meshbed"
    done = [line for line in seen["metrics"].splitlines()
            if line.startswith("meshbed_completion_ratio{") and 'content="blob"' in line]
    assert done and float(done[0].rsplit(" ", 1)[1]) == 1.0, seen["metrics"][:2000]
    assert leftovers(name) == []


KINDS = {"lt": "libtorrent", "qbt": "qbittorrent", "trans": "transmission", "aria": "aria2",
         "del": "deluge"}


def test_a_mixed_swarm_of_every_client_kind_in_containers_is_verified(tmp_path: Path) -> None:
    """One meshbed seeder and a leecher of each kind, each in its own client image (also:
    Transmission's encrypted handshakes with the other clients need OpenSSL's legacy
    provider in its image)."""
    for client in KINDS.values():
        _need(client)
    name = mesh_name("dclmix")
    groups: dict[str, Any] = {"seed": {"count": 1}}
    groups.update({g: {"count": 1, "client": kind} for g, kind in KINDS.items()})
    topo = topology(tmp_path, name, groups, {"album": {"size": "4MiB", "seeders": ["seed"]}},
                    [{"at": "0s", "fetch": {"content": "album", "by": sorted(KINDS)}}],
                    chunk_size="256KiB", expect={"all_complete_within": "90s"})

    async def go() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        mesh = Mesh(topo, home=tmp_path / "home")
        try:
            await mesh.up()
            await mesh.play()
            assert mesh.state is not None
            return mesh.report(), target_groups(name, mesh.state.nodes)
        finally:
            await mesh.down()

    report, targets = asyncio.run(go())
    assert report["ok"], report
    clients = {n: e["client"] for n, e in report["nodes"].items()}
    assert clients == {"seed-0": "meshbed", **{f"{g}-0": k for g, k in KINDS.items()}}
    for group in KINDS:
        fetch = report["nodes"][f"{group}-0"]["fetches"]["album"]
        assert fetch["complete"] and fetch["verified"], (group, fetch)
    for group, kind in KINDS.items():  # by node, from the clients whose API gives them
        got = report["nodes"][f"{group}-0"]["fetches"]["album"]["bytes_from"]
        if kind in ("libtorrent", "qbittorrent"):
            assert got is not None and set(got) <= set(report["nodes"]), (group, got)
        else:
            assert got is None, (group, got)
    assert {t["labels"]["client"] for t in targets} == {"meshbed", *KINDS.values()}
    assert leftovers(name) == []


def test_partition_and_link_are_applied_in_the_kernel_to_client_containers(
        tmp_path: Path) -> None:
    """Cut off from the only seeder, no client container can finish before the heal (client
    nodes have no blocklists: the cut is iptables on the mesh's bridge)."""
    for client in ("libtorrent", "aria2"):
        _need(client)
    name = mesh_name("dclpart")
    topo = topology(
        tmp_path, name,
        {"seed": {"count": 1}, "lt": {"count": 1, "client": "libtorrent"},
         "aria": {"count": 1, "client": "aria2"}},
        {"f": {"size": "4MiB", "seeders": ["seed"]}},
        [{"at": "0s", "partition": [["seed"], ["lt", "aria"]]},
         {"at": "0s", "fetch": {"content": "f", "by": ["lt", "aria"]}},
         {"at": "3s", "heal": True},
         {"at": "3s", "link": {"nodes": "lt", "down": "8mbit"}}],
        chunk_size="256KiB", expect={"all_complete_within": "60s"})

    report = play_report(topo, tmp_path / "home")
    assert report["ok"], report
    heal_at = next(e["t"] for e in report["events"] if e["kind"] == "heal")
    for node in ("lt-0", "aria-0"):
        fetch = report["nodes"][node]["fetches"]["f"]
        assert fetch["verified"] and fetch["seconds"] >= heal_at, (node, fetch, heal_at)
    assert leftovers(name) == []


def test_cli_builds_a_client_image_ahead_and_refuses_an_unknown_kind(tmp_path: Path) -> None:
    """`meshbed image build --offline --client aria2` leaves the image `up` would use."""
    _need("aria2")
    cmd = [sys.executable, "-m", "orchestrator", "image", "build", "--offline"]
    env = {"MESHBED_HOME": str(tmp_path / "home"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    proc = subprocess.run([*cmd, "--client", "aria2"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    tag = image_tag("aria2")
    assert f"image {tag} ready (aria2)" in proc.stdout, proc.stdout
    inspect = subprocess.run(["docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}}",
                              tag], capture_output=True, text=True, timeout=30)
    assert '"orchestrator.clients.node","aria2"' in inspect.stdout, inspect
    bad = subprocess.run([*cmd, "--client", "utorrent"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "utorrent: not a client" in bad.stderr, bad.stderr
