"""The host-networking layer's pure parts: disjoint subnet pools, one host-wide lock,
private files."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.docker import networks
from orchestrator.backends.netns import addressing
from orchestrator.hostnet import files, subnets


def test_the_pools_of_different_backends_do_not_overlap() -> None:
    for (a, pa), (b, pb) in itertools.combinations(subnets.POOLS.items(), 2):
        assert not any(x.overlaps(y) for x in pa for y in pb), (a, b)
    # every candidate a backend can pick lies in its own pool
    assert all(any(n.subnet_of(p) for p in subnets.NETNS_POOL) for n in addressing.candidates("0a0b0c"))
    assert networks.POOL in subnets.DOCKER_POOL


def test_choose_skips_used_networks_and_says_when_none_is_left() -> None:
    pool = (subnets.Net("10.208.0.0/21"),)
    first = subnets.choose(pool, 22, 0, [])
    assert subnets.choose(pool, 22, 0, [first]) != first
    with pytest.raises(RuntimeError, match="no free /22 left in 10.208.0.0/21"):
        subnets.choose(pool, 22, 0, [subnets.Net("10.208.0.0/20")])


def test_host_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with subnets.host_lock(path):
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(10)
    with pytest.raises(RuntimeError, match="held"), subnets.host_lock(path, timeout=0.1):
        pass
    release.set()
    with subnets.host_lock(path, timeout=10):
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]


def test_token_files_are_private_from_the_start(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = files.write_token_file(tmp_path / "d" / "token", "s3cret")
    finally:
        os.umask(old)
    assert path.read_text() == "s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temp file left


def test_reservations_keep_meshes_apart_until_released(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.json")
    host = [subnets.Net("10.224.0.0/22")]  # a route of the host, inside the swarm pool
    a = subnets.reserve("swarm", "m", "swarm:m:1", 22, host, path=ledger)
    # the same mesh name, another deploy (another MESHBED_HOME): same start, other subnet
    b = subnets.reserve("swarm", "m", "swarm:m:2", 22, host, path=ledger)
    assert a != b and not a.overlaps(b) and not any(x.overlaps(host[0]) for x in (a, b))
    assert all(any(x.subnet_of(p) for p in subnets.SWARM_POOL) for x in (a, b))
    assert subnets.reserve("swarm", "m", "swarm:m:1", 22, host, path=ledger) == a  # idempotent
    assert [(r.owner, r.subnet) for r in subnets.reservations(ledger)] == [
        ("swarm:m:1", a), ("swarm:m:2", b)]
    assert subnets.release("swarm:m:1", path=ledger) is True
    assert subnets.release("swarm:m:1", path=ledger) is False
    assert [r.owner for r in subnets.reservations(ledger)] == ["swarm:m:2"]
    # released: the next deploy of that name may take it again
    assert subnets.reserve("swarm", "m", "swarm:m:3", 22, host, path=ledger) == a


def test_a_full_pool_or_a_broken_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    with pytest.raises(RuntimeError, match="no free /13 left in 10.224.0.0/12"):
        subnets.reserve("swarm", "m", "o", 13, [subnets.Net("10.224.0.0/13"),
                                                 subnets.Net("10.232.0.0/13")], path=str(ledger))
    assert not ledger.exists()  # nothing entered for a pick that failed
    ledger.write_text("{not json")
    assert subnets.reservations(str(ledger)) == []  # the routes and engines still guard the pick
    net = subnets.reserve("swarm", "m", "o", 22, [], path=str(ledger))
    assert subnets.reservations(str(ledger))[0].subnet == net


class _FakeSwarmApi:
    """The two calls the overlay pick makes; the first create overlaps a network only the
    engine knows of (another host's), as dockerd says "Pool overlaps"."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.refuse = 1

    def networks(self, names: Any = None) -> list[dict[str, Any]]:
        return [{"Name": "other", "IPAM": {"Config": [{"Subnet": "10.224.4.0/22"}]}}]

    def create_network(self, name: str, **kw: Any) -> dict[str, str]:
        import docker.errors

        subnet = kw["ipam"]["Config"][0]["Subnet"]
        if self.refuse:
            self.refuse -= 1
            raise docker.errors.APIError(f"Pool overlaps with other one on this address space ({subnet})")
        self.created.append(subnet)
        return {"Id": "net1"}


def test_overlay_pick_skips_engine_networks_and_moves_on_when_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.backends.swarm import cluster

    monkeypatch.setattr(subnets, "LEDGER_FILE", str(tmp_path / "ledger.json"))
    monkeypatch.setattr(subnets, "LOCK_FILE", str(tmp_path / "lock"))
    monkeypatch.setattr(subnets, "host_networks", lambda: [subnets.Net("10.224.0.0/22")])
    monkeypatch.setattr(subnets, "start_for", lambda key: 0)  # the pool's first /22s
    fake = _FakeSwarmApi()
    cl = type("Client", (), {"api": fake})()
    net_id, subnet = cluster.ensure_network(cl, "m", "swarm:m:1")
    # 10.224.0.0/22: a host route; .4.0: the engine's network; .8.0 refused; .12.0 taken
    assert (net_id, subnet) == ("net1", "10.224.12.0/22") and fake.created == [subnet]
    assert [(r.owner, str(r.subnet)) for r in subnets.reservations()] == [("swarm:m:1", subnet)]
    cluster.release_subnet("swarm:m:1")
    assert subnets.reservations() == []


def test_a_new_deploy_taking_over_a_leftover_overlay_owns_its_subnet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.backends.swarm import cluster

    monkeypatch.setattr(subnets, "LEDGER_FILE", str(tmp_path / "ledger.json"))
    monkeypatch.setattr(subnets, "LOCK_FILE", str(tmp_path / "lock"))
    stale = subnets.reserve("swarm", "m", "swarm:m:crashed", 22, [])
    leftover = {"Name": cluster.network_name("m"), "Id": "old",
                "IPAM": {"Config": [{"Subnet": str(stale)}]}}
    api = type("Api", (), {"networks": lambda self, names=None: [leftover]})()
    cl = type("Client", (), {"api": api})()
    assert cluster.ensure_network(cl, "m", "swarm:m:new") == ("old", str(stale))
    assert [(r.owner, r.subnet) for r in subnets.reservations()] == [("swarm:m:new", stale)]
    cluster.release_subnet("swarm:m:new")  # so `down` of the new deploy frees it
    assert subnets.reservations() == []
