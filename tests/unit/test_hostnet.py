"""The host-networking layer's pure parts: disjoint subnet pools, one host-wide lock,
private files."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from pathlib import Path

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
