"""Pure parts of the netns backend: names, subnet choice, partition rules."""

from __future__ import annotations

import ipaddress

import pytest

from orchestrator.backends.netns import addressing, bridge, firewall, namespaces


def test_names_fit_linux_limits() -> None:
    tag = namespaces.mesh_tag("a-very-long-mesh-name-of-32-char")
    assert len(tag) == 6 and tag != namespaces.mesh_tag("other")
    assert len(bridge.bridge_name(tag)) <= 15
    assert len(bridge.veth_name(tag, 99999)) <= 15
    with pytest.raises(ValueError):
        bridge.veth_name(tag, 10**6)
    assert namespaces.ns_name(tag, 3) == f"mb-{tag}-3"


def test_subnet_avoids_used_networks_and_other_meshes() -> None:
    tag = "000000"
    first = addressing.candidates(tag)[0]
    used = [first, ipaddress.IPv4Network("10.0.0.0/8")]
    with pytest.raises(RuntimeError):
        addressing.choose(tag, used)
    used = [first]
    second = addressing.candidates(tag)[1]
    assert addressing.choose(tag, used) == addressing.candidates(tag)[1]
    third = addressing.choose(tag, used, taken=[str(second)])
    assert not third.overlaps(first) and not third.overlaps(second)
    assert third.prefixlen == addressing.PREFIX and third.is_private


def test_node_addresses_start_after_the_host() -> None:
    net = ipaddress.IPv4Network("10.80.0.0/20")
    assert str(addressing.host_address(net)) == "10.80.0.1"
    assert str(addressing.node_address(net, 0)) == "10.80.0.2"
    assert str(addressing.node_address(net, 299)) == "10.80.1.45"
    with pytest.raises(ValueError):
        addressing.node_address(net, addressing.MAX_NODES)


def test_partition_rules_drop_only_between_sides() -> None:
    text = firewall.partition_rules("abcdef", [["v0", "v1"], ["v2"]])
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert "-A MBP-abcdef -m physdev --physdev-in v0 -j MBP-abcdef-0" in lines
    assert "-A MBP-abcdef -m physdev --physdev-in v2 -j MBP-abcdef-1" in lines
    assert "-A MBP-abcdef-0 -m physdev --physdev-out v2 -j DROP" in lines
    assert "-A MBP-abcdef-1 -m physdev --physdev-out v0 -j DROP" in lines
    # no rule drops traffic inside a side
    assert "-A MBP-abcdef-0 -m physdev --physdev-out v1 -j DROP" not in lines
    assert sum(1 for line in lines if line.endswith("DROP")) == 3
