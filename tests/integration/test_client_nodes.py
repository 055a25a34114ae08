"""Real BitTorrent clients as mesh nodes on netns (orchestrator/clients): fetch and
kill/start for every client kind, and a mixed swarm of all kinds scraped by a real
Prometheus. Root, the clients and opentracker needed (under CI a missing one fails)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.clients import ADAPTERS, installed
from orchestrator.loader import load_topology_text
from orchestrator.mesh import Mesh
from tests.facilities import require, require_binary
from tests.integration.client_support import check_kill_start
from tests.integration.netns_support import require_root

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "clients.yaml"


def _need(client: str) -> None:
    require_root("ip", "tc")
    require_binary("opentracker", "apt-get install opentracker")
    require(None if installed(client) else
            f"{client} not installed (apt-get install {ADAPTERS[client].package})")


def _run(topology: str, home: Path) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        mesh = Mesh(load_topology_text(topology), home=home)
        await mesh.up()
        try:
            await mesh.play()
            return mesh.report()
        finally:
            await mesh.down()

    return asyncio.run(go())


# The leecher's link holds 8 MiB for ~4 s, so the kill at 1 s lands mid-transfer; after the
# start the client resumes from its own state (its resume files, or a check of the file).
KILL_START = """\
name: cl-{short}-{pid}
backend: netns
seed: 5
chunk_size: 256KiB
tracker: opentracker
groups:
  seed: {{count: 1, link: {{up: 100mbit}}}}
  leech: {{count: 1, client: {client}, link: {{down: 16mbit}}}}
content:
  blob: {{size: 8MiB, seeders: [seed]}}
scenario:
  - {{at: 0s, fetch: {{content: blob, by: leech}}}}
  - {{at: 1s, kill: leech}}
  - {{at: 2s, start: leech}}
expect:
  all_complete_within: 90s
"""


@pytest.mark.parametrize("client", sorted(ADAPTERS))
def test_fetch_then_kill_and_start_resumes_to_a_verified_file(client: str, tmp_path: Path) -> None:
    _need(client)
    report = _run(KILL_START.format(client=client, short=client[:4], pid=os.getpid() % 10000),
                  tmp_path)
    fetch = check_kill_start(report, client)
    if client in ("libtorrent", "qbittorrent"):
        assert fetch["bytes_from"] is not None
    else:
        assert fetch["bytes_from"] is None  # the client does not say; null, not a guess
    # `down` removed the clients and the opentracker it ran (their command lines name the
    # mesh folder under tmp_path)
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout


PARTITION = """\
name: clp-{pid}
backend: netns
seed: 3
chunk_size: 256KiB
tracker: opentracker
groups:
  seed: {{count: 1}}
  lt: {{count: 1, client: libtorrent}}
  qb: {{count: 1, client: qbittorrent}}
content:
  f: {{size: 4MiB, seeders: [seed]}}
scenario:
  - {{at: 0s, partition: [[seed], [lt, qb]]}}
  - {{at: 0s, fetch: {{content: f, by: [lt, qb]}}}}
  - {{at: 3s, heal: true}}
  - {{at: 3s, link: {{nodes: lt, down: 8mbit}}}}
expect:
  all_complete_within: 60s
"""


def test_partition_and_link_are_applied_in_the_kernel_to_client_nodes(tmp_path: Path) -> None:
    """Cut off from the only seeder, no client node can finish before the heal (the
    partition is in the kernel: client nodes have no blocklists)."""
    for client in ("libtorrent", "qbittorrent"):
        _need(client)
    report = _run(PARTITION.format(pid=os.getpid() % 10000), tmp_path)
    assert report["ok"], report
    # Events' "t" count from the scenario's start, a fetch's "seconds" from its fetch event,
    # which starts only once the cut is in place (slower on a loaded host): compare on one clock.
    heal_at = next(e["t"] for e in report["events"] if e["kind"] == "heal")
    fetch_at = next(e["t"] for e in report["events"] if e["kind"] == "fetch")
    for name in ("lt-0", "qb-0"):
        fetch = report["nodes"][name]["fetches"]["f"]
        assert fetch["verified"] and fetch_at + fetch["seconds"] >= heal_at, (name, fetch, fetch_at, heal_at)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _meshbed(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture(scope="module")
def mixed_swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """examples/clients.yaml run by the CLI with `--keep`, scraped by `meshbed monitor up`."""
    for client in ADAPTERS:
        _need(client)
    require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("clients")
    env = dict(os.environ, MESHBED_HOME=str(tmp / "home"))
    name = f"clients-{os.getpid() % 100000}"
    topo = tmp / "clients.yaml"
    topo.write_text(EXAMPLE.read_text().replace("name: clients", f"name: {name}"))
    port = _free_port()
    up = _meshbed("monitor", "up", "--port", str(port), "--exporter-port", str(_free_port()),
                  "--no-grafana", env=env)
    assert up.returncode == 0, up.stderr
    try:
        run = _meshbed("run", str(topo), "--keep", "--report", str(tmp / "r.json"), env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        yield {"name": name, "base": f"http://127.0.0.1:{port}",
               "report": json.loads((tmp / "r.json").read_text())}
    finally:
        _meshbed("down", name, env=env)
        _meshbed("monitor", "down", "--purge", env=env)


def test_mixed_swarm_of_every_kind_is_verified(mixed_swarm: dict[str, Any]) -> None:
    report = mixed_swarm["report"]
    assert report["ok"]
    clients = {n: e["client"] for n, e in report["nodes"].items()}
    assert clients == {"seeder-0": "meshbed", "lt-0": "libtorrent", "qbt-0": "qbittorrent",
                       "trans-0": "transmission", "aria-0": "aria2", "del-0": "deluge"}
    for name in ("lt-0", "qbt-0", "trans-0", "aria-0", "del-0"):
        fetch = report["nodes"][name]["fetches"]["album"]
        assert fetch["complete"] and fetch["verified"], (name, fetch)
    # libtorrent and qBittorrent report bytes per peer, named by the node behind the address
    for name in ("lt-0", "qbt-0"):
        got = report["nodes"][name]["fetches"]["album"]["bytes_from"]
        assert set(got) <= set(report["nodes"]) and sum(got.values()) > 0, got


def test_client_nodes_are_scraped_with_a_client_label(mixed_swarm: dict[str, Any]) -> None:
    name, base = mixed_swarm["name"], mixed_swarm["base"]
    want = {"libtorrent", "qbittorrent", "transmission", "aria2", "deluge", "meshbed"}
    deadline = time.monotonic() + 60  # Prometheus scrapes every 2 s: wait for each target
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        series = _query(base, f'meshbed_completion_ratio{{mesh="{name}"}}')
        seen = {s["metric"].get("client", ""): float(s["value"][1]) for s in series}
        if set(seen) >= want and all(v >= 1.0 for v in seen.values()):
            break
        time.sleep(1)
    assert set(seen) >= want, seen
    assert all(v >= 1.0 for v in seen.values()), seen
    sent = _query(base, f'sum by (client) (meshbed_bytes_received_total{{mesh="{name}"}})')
    got = {s["metric"]["client"]: float(s["value"][1]) for s in sent}
    for client in ("libtorrent", "qbittorrent", "transmission", "aria2", "deluge"):
        assert got.get(client, 0) > 0, got
