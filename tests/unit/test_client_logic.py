"""Pure logic of client nodes: bitfields, per-peer bytes, client configs that stay in the mesh."""

from __future__ import annotations

import json

from orchestrator.clients.base import count_bits
from orchestrator.clients.deluge import core_conf
from orchestrator.clients.node import by_host
from orchestrator.clients.qbittorrent import config as qbt_config
from orchestrator.clients.transmission import settings as tr_settings
from orchestrator.report import _bytes_from


def test_count_bits_counts_only_the_pieces_of_the_torrent() -> None:
    assert count_bits("", 10) == 0
    assert count_bits("ff", 8) == 8
    assert count_bits("ff", 5) == 5  # spare bits at the end are not pieces
    assert count_bits("a0", 8) == 2


def test_per_peer_bytes_are_summed_per_remote_address() -> None:
    assert by_host({"10.0.0.2:6881": 5, "10.0.0.2:40000": 7, "10.0.0.3:6881": 1}) == {
        "10.0.0.2": 12, "10.0.0.3": 1}
    assert by_host({"[fd00::2]:6881": 3}) == {"fd00::2": 3}


def test_report_names_peers_and_keeps_null_when_the_client_does_not_say() -> None:
    hosts = {"10.0.0.2": "seed-0"}
    assert _bytes_from({"bytes_from": {"10.0.0.2": 9, "10.0.0.9": 1}}, hosts) == {
        "seed-0": 9, "10.0.0.9": 1}
    assert _bytes_from({"bytes_from": None}, hosts) is None
    assert _bytes_from({}, hosts) == {}  # an agent never polled


def test_client_configs_turn_off_everything_that_leaves_the_mesh() -> None:
    tr = tr_settings("10.0.0.5", 6881, "/d")
    assert not tr["dht-enabled"] and not tr["lpd-enabled"] and not tr["port-forwarding-enabled"]
    assert tr["bind-address-ipv4"] == "10.0.0.5" and tr["rpc-bind-address"] == "127.0.0.1"
    qbt = qbt_config("10.0.0.5", 6881, "/d")
    for line in ("Session\\DHTEnabled=false", "Session\\LSDEnabled=false",
                 "Connection\\UPnP=false", "Connection\\ResolvePeerCountries=false",
                 "PortForwardingEnabled=false", "WebUI\\Address=127.0.0.1",
                 "Session\\InterfaceAddress=10.0.0.5"):
        assert line in qbt.splitlines(), line
    dl = core_conf("10.0.0.5", 6881, "/d")
    assert not (dl["dht"] or dl["lsd"] or dl["upnp"] or dl["natpmp"] or dl["new_release_check"])
    assert dl["listen_interface"] == "10.0.0.5" and json.dumps(dl)
