"""`backend: swarm` across three real engines (tests/swarmlab.py): spread and placement shown
by the report's addresses, every engine cleaned by `down` (worker volumes included), a
teardown that tolerates containers vanishing under it, and no stale volume ever resumed.

About 1.5 min in all on a loaded 2-core machine (the lab itself: ~10 s up, ~10 s down).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import state
from orchestrator.backends.swarm import cluster
from orchestrator.backends.swarm import lab as swarm_lab
from orchestrator.hostnet import subnets
from orchestrator.loader import load_topology
from orchestrator.mesh import Mesh
from orchestrator.model import Topology
from tests import swarmlab
from tests.meshplay import play_report

pytestmark = pytest.mark.timeout(240)
MiB = 1 << 20


@pytest.fixture(scope="module")
def lab() -> Iterator[swarm_lab.Lab]:
    reason = swarmlab.skip_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"swarm lab unavailable under CI=true: {reason}")
        pytest.skip(reason)
    made = swarmlab.acquire()
    yield made
    swarmlab.release()


@pytest.fixture
def topo_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))

    def make(groups: dict[str, Any], scenario: list[Any], size: str = "6MiB", name: str = "") -> Topology:
        doc = {
            "name": name or f"sl-{uuid.uuid4().hex[:8]}", "backend": "swarm", "seed": 5,
            "groups": groups,
            "content": {"blob": {"size": size, "seeders": ["seeders"]}},
            "scenario": scenario, "expect": {"all_complete_within": "90s"},
        }
        path = tmp_path / f"{doc['name']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_topology(path)

    return make


def host_of(report: dict[str, Any], node: str) -> str:
    return str(report["nodes"][node]["address"]).rsplit(":", 1)[0]


def test_lab_engines_are_distinct_nodes_with_the_image(lab: swarm_lab.Lab) -> None:
    mgr = lab.client()
    nodes = mgr.api.nodes()
    assert sorted(n["Description"]["Hostname"] for n in nodes) == sorted(e.hostname for e in lab.engines)
    assert len({e.hostname for e in lab.engines}) == 3
    assert all(n["Status"]["State"] == "ready" for n in nodes)
    for e in lab.engines:
        tags = [t for img in lab.client(e.role).api.images() for t in (img.get("RepoTags") or [])]
        assert lab.image in tags, (e.role, tags)


def test_mesh_spreads_over_engines_pins_groups_and_down_clears_every_engine(
        lab: swarm_lab.Lab, topo_file: Any) -> None:
    topo = topo_file(
        groups={"seeders": {"count": 1}, "leechers": {"count": 6},
                "pinned": {"count": 2, "placement": [f"node.labels.{swarm_lab.ROLE_LABEL} == worker2"]}},
        scenario=[{"at": "0s", "fetch": {"content": "blob", "by": ["leechers", "pinned"]}}],
    )

    async def go() -> tuple[dict[str, Any], list[str]]:
        mesh = Mesh(topo)
        try:
            await mesh.up()
            during = swarmlab.mesh_leftovers(lab, topo.name)
            await mesh.play()
            return mesh.report(), during
        finally:
            await mesh.down()

    report, during = asyncio.run(go())
    assert report["ok"] is True, report
    for n in [f"leechers-{i}" for i in range(6)] + ["pinned-0", "pinned-1"]:
        f = report["nodes"][n]["fetches"]["blob"]
        assert f["complete"] and f["verified"] and f["resumed_pieces"] == 0, (n, f)
    ips = {e.role: e.ip for e in lab.engines}
    spread = Counter(host_of(report, f"leechers-{i}") for i in range(6))
    assert spread == {ips["manager"]: 2, ips["worker1"]: 2, ips["worker2"]: 2}, spread
    assert {host_of(report, "pinned-0"), host_of(report, "pinned-1")} == {ips["worker2"]}
    # the workers held volumes while the mesh ran, and `down` removed them there too
    assert any("volume" in x and "on worker1" in x for x in during), during
    assert any("volume" in x and "on worker2" in x for x in during), during
    assert swarmlab.mesh_leftovers(lab, topo.name) == []
    assert not (state.home() / topo.name).exists()


def test_down_tolerates_containers_vanishing_under_it(lab: swarm_lab.Lab, topo_file: Any) -> None:
    topo = topo_file(groups={"seeders": {"count": 1}, "leechers": {"count": 5}}, scenario=[])
    stop = threading.Event()

    def yank() -> None:  # removes the mesh's containers on every engine while `down` lists them
        clients = [lab.client(e.role) for e in lab.engines]
        while not stop.is_set():
            for cl in clients:
                for c in cl.api.containers(all=True, filters=cluster.mesh_filter(topo.name)):
                    try:
                        cl.api.remove_container(c["Id"], force=True)
                    except Exception:  # noqa: BLE001 - the race is the point
                        pass

    async def go() -> None:
        mesh = Mesh(topo)
        await mesh.up()
        assert mesh.state is not None
        seen.update(mesh.state.backend_section("swarm"))
        nets = lab.client().api.networks(names=[cluster.network_name(topo.name)])
        seen["overlay"] = [c["Subnet"] for n in nets for c in n["IPAM"]["Config"]]
        seen["reserved"] = {r.owner: str(r.subnet) for r in subnets.reservations()}
        t = threading.Thread(target=yank, daemon=True)
        t.start()
        try:
            await mesh.down()
        finally:
            stop.set()
            t.join(10)

    seen: dict[str, Any] = {}
    asyncio.run(go())
    assert swarmlab.mesh_leftovers(lab, topo.name) == []
    # the overlay's subnet came from the host-wide swarm pool, was recorded in state and
    # reserved in the ledger while the mesh was up, and `down` released it
    net = subnets.Net(seen["subnet"])
    assert any(net.subnet_of(p) for p in subnets.SWARM_POOL), net
    assert seen["overlay"] == [str(net)] and seen["reserved"][seen["subnet_owner"]] == str(net)
    assert seen["subnet_owner"] not in {r.owner for r in subnets.reservations()}


def test_lost_state_folder_is_cleaned_by_doctor_on_every_engine(lab: swarm_lab.Lab, topo_file: Any) -> None:
    """One service on a worker (its volume lives there), its state folder lost: the swarm
    backend's orphan search finds the service, overlay, secret and ledger entry by label and
    mesh, and removing the orphan clears every engine (~4 s once the lab is up)."""
    import shutil

    from orchestrator import orphans
    from orchestrator.backends.swarm import SwarmBackend

    groups = {"seeders": {"count": 1, "placement": [f"node.labels.{swarm_lab.ROLE_LABEL} == worker1"]}}
    topo = topo_file(groups, [])
    asyncio.run(Mesh(topo).up())
    assert any(x.startswith("volume") and "worker1" in x for x in swarmlab.mesh_leftovers(lab, topo.name))
    shutil.rmtree(state.home() / topo.name)  # the state is lost; the mesh runs on
    found = {o.mesh: o for o in SwarmBackend.find_orphans(orphans.has_state_in(state.home()))}
    things = found[topo.name].things
    assert f"service {cluster.service_name(topo.name, 'seeders-0')}" in things, things
    assert f"network {cluster.network_name(topo.name)}" in things
    assert f"secret {cluster.secret_name(topo.name)}" in things
    assert any(t.startswith("reserved subnet 10.2") for t in things), things
    assert orphans.remove([found[topo.name]]) == {}
    assert swarmlab.mesh_leftovers(lab, topo.name) == []  # the worker's volume included
    assert topo.name not in {r.mesh for r in subnets.reservations()}


def test_stale_volume_of_a_crashed_run_is_never_resumed(lab: swarm_lab.Lab, topo_file: Any) -> None:
    groups = {"seeders": {"count": 1, "placement": ["node.role == manager"]},
              "leechers": {"count": 1, "placement": [f"node.labels.{swarm_lab.ROLE_LABEL} == worker1"]}}
    scenario = [{"at": "0s", "fetch": {"content": "blob", "by": "leechers"}}]
    name = f"sl-{uuid.uuid4().hex[:8]}"

    async def crashed_run() -> None:  # complete, then "crash": services gone, volumes and state kept
        mesh = Mesh(topo_file(groups, scenario, name=name))
        await mesh.up()
        await mesh.play()
        assert mesh.report()["ok"] is True
        mgr = lab.client()
        for s in mgr.api.services(filters=cluster.mesh_filter(name)):
            mgr.api.remove_service(s["ID"])
        assert mesh.state is not None
        mesh.state.remove()

    asyncio.run(crashed_run())
    stale = [x for x in swarmlab.mesh_leftovers(lab, name) if x.startswith("volume") and "worker1" in x]
    assert stale, "the crashed run should have left its worker volume"
    report = play_report(topo_file(groups, scenario, name=name))
    f = report["nodes"]["leechers-0"]["fetches"]["blob"]
    assert report["ok"] is True and f["resumed_pieces"] == 0, f
    assert sum(f["bytes_from"].values()) >= 6 * MiB, f
    assert swarmlab.mesh_leftovers(lab, name) == []  # the stale volume went with `down` too
    # the second deploy took the crashed one's overlay over, with its ledger entry
    assert name not in {r.mesh for r in subnets.reservations()}


def test_validate_refuses_a_constraint_no_engine_meets(lab: swarm_lab.Lab, tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: slbad\nbackend: swarm\ngroups:\n  seeders: {count: 1}\n  far:\n    count: 2\n"
        "    placement:\n      - node.labels.lab.engine == worker9\n"
        "content:\n  c: {size: 1MiB, seeders: [seeders]}\n"
    )
    env = {**os.environ, cluster.SWARM_HOST_ENV: lab.docker_host, "MESHBED_HOME": str(tmp_path / "home")}
    meshbed = str(Path(sys.executable).with_name("meshbed"))
    for cmd in (["validate"], ["up"]):
        proc = subprocess.run([meshbed, *cmd, str(path)], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2, (cmd, proc.stdout, proc.stderr)
        assert proc.stderr.strip().splitlines()[-1].startswith(f"{path}:8: "), proc.stderr
        assert "node.labels.lab.engine == worker9" in proc.stderr
    assert swarmlab.mesh_leftovers(lab, "slbad") == []
    assert not (tmp_path / "home" / "slbad").exists()


def test_prometheus_scrapes_every_engine_with_an_engine_label(lab: swarm_lab.Lab, tmp_path: Path) -> None:
    import json
    import shutil
    import socket
    import subprocess
    import time
    import urllib.parse
    import urllib.request

    if shutil.which("prometheus") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("prometheus missing under CI=true")
        pytest.skip("prometheus not installed")
    name = f"slmon-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "mon.yaml"
    path.write_text(f"name: {name}\nbackend: swarm\ngroups:\n  seeders: {{count: 1}}\n  leechers: {{count: 5}}\n"
                    "content:\n  c: {size: 1MiB, seeders: [seeders]}\n")
    env = {**os.environ, cluster.SWARM_HOST_ENV: lab.docker_host, "MESHBED_HOME": str(tmp_path / "home")}
    meshbed = str(Path(sys.executable).with_name("meshbed"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([meshbed, *args], capture_output=True, text=True, env=env, timeout=180)

    with socket.socket() as s1, socket.socket() as s2:
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        prom, exp = s1.getsockname()[1], s2.getsockname()[1]
    assert run("monitor", "up", "--port", str(prom), "--exporter-port", str(exp), "--no-grafana").returncode == 0
    try:
        up = run("up", str(path))
        assert up.returncode == 0, up.stderr[-2000:]
        expr = urllib.parse.urlencode({"query": f'count by (engine) (up{{mesh="{name}"}} == 1)'})
        by_engine: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # Prometheus re-reads targets and scrapes every 2 s
            with urllib.request.urlopen(f"http://127.0.0.1:{prom}/api/v1/query?{expr}", timeout=10) as resp:
                result = json.loads(resp.read())["data"]["result"]
            by_engine = {r["metric"].get("engine", ""): int(r["value"][1]) for r in result}
            if sum(by_engine.values()) == 6:
                break
            time.sleep(1)
        assert by_engine == {e.hostname: 2 for e in lab.engines}, by_engine
    finally:
        down = run("down", name)
        run("monitor", "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert swarmlab.mesh_leftovers(lab, name) == []


def test_losing_a_worker_engine_mid_run(lab: swarm_lab.Lab, topo_file: Any) -> None:
    """worker2's engine dies mid-fetch (SIGKILL of dockerd, containerd, shims, agents): the run
    names the nodes it lost and why, the other fetches complete and verify, `down` removes all
    it can and keeps the rest in state; once the engine is back, `down` finishes."""
    from orchestrator.errors import DeployError

    topo = topo_file(
        groups={"seeders": {"count": 1, "placement": ["node.role == manager"], "link": {"up": "48mbit"}},
                # 12 MiB at 12 mbit take >= 8.4 s: worker2's leechers are still fetching when
                # its engine dies (seconds after the first pieces moved, however loaded the host)
                "leechers": {"count": 6, "link": {"down": "12mbit"}}},
        scenario=[{"at": "0s", "fetch": {"content": "blob", "by": "leechers"}}], size="12MiB",
    )
    ips = {e.role: e.ip for e in lab.engines}

    async def go() -> tuple[dict[str, Any], Mesh]:
        mesh = Mesh(topo)
        await mesh.up()
        play = asyncio.create_task(mesh.play())
        ih = mesh.contents["blob"].infohash
        while not play.done():  # the loss must land mid-fetch: some pieces moved, none complete
            sts = await mesh.statuses()
            have = [int(((st or {}).get("torrents") or {}).get(ih, {}).get("have") or 0) for st in sts.values()]
            if sorted(have)[-2] > 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(swarm_lab.stop_engine, lab, "worker2")
        await asyncio.wait_for(play, timeout=150)
        return mesh.report(), mesh

    report, mesh = asyncio.run(go())
    on_w2 = {n for n in report["nodes"] if host_of(report, n) == ips["worker2"]}
    assert len(on_w2) == 2, report["nodes"]
    assert {n for n, e in report["nodes"].items() if "lost" in e} == on_w2
    assert all("worker2" in report["nodes"][n]["lost"] or "w2" in report["nodes"][n]["lost"] for n in on_w2), report
    assert any(p.startswith("lost ") for p in report["problems"]), report["problems"]
    for n, e in report["nodes"].items():
        if n.startswith("leechers") and n not in on_w2:
            f = e["fetches"]["blob"]
            assert f["complete"] and f["verified"], (n, f)
    with pytest.raises(DeployError, match="on mbsl.*-w2"):
        asyncio.run(mesh.down())
    assert mesh.state is not None and mesh.state.dir.exists()  # it keeps what it could not remove
    swarm_lab.restart_engine(lab, "worker2")
    again = Mesh.attach(topo.name)
    asyncio.run(again.down())
    assert swarmlab.mesh_leftovers(lab, topo.name) == []
