"""Client nodes on the ssh backend: the checks and commands that need no device
(orchestrator/backends/ssh/clients.py, orchestrator/clients/shipping.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.backends.ssh import clients, remote
from orchestrator.clients import client_of
from orchestrator.clients.shipping import build_client_pyz
from orchestrator.errors import InputError
from orchestrator.loader import load_topology

pytestmark = pytest.mark.timeout(60)
INVENTORY = """defaults: {user: root, key: ~/.ssh/id_ed25519}
devices:
  a: {host: 10.9.0.1, profile: generic-linux}
  b: {host: 10.9.0.2, profile: generic-linux}
  c: {host: 10.9.0.3, profile: laptop-linux}
"""


def _topology(tmp_path: Path, groups: str) -> Path:
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nbackend: ssh\ninventory: inv.yaml\ngroups:\n{groups}")
    return path


def test_client_nodes_carry_their_client_and_the_line_of_it(tmp_path: Path) -> None:
    # no client needs to be installed on this host: it runs on the devices
    topo = load_topology(_topology(tmp_path, "  s: {devices: [a]}\n  q:\n    devices: [b]\n"
                                              "    client: aria2\n"))
    q = topo.node("q-0")
    assert (client_of(q.options), q.options["client_line"]) == ("aria2", 8)
    assert client_of(topo.node("s-0").options) == "meshbed"


def test_a_client_node_sharing_its_device_is_refused_at_its_client_line(tmp_path: Path) -> None:
    path = _topology(tmp_path, "  s: {devices: [a]}\n  q:\n    devices: [a]\n    client: qbittorrent\n")
    with pytest.raises(InputError) as err:
        load_topology(path)
    assert err.value.line == 8
    assert "q-0 shares device a with s-0" in err.value.message


def test_a_client_node_on_a_device_whose_profile_forbids_tc_is_refused(tmp_path: Path) -> None:
    path = _topology(tmp_path, "  s: {devices: [a]}\n  q:\n    devices: [c]\n    client: qbittorrent\n")
    with pytest.raises(InputError) as err:
        load_topology(path)
    assert err.value.line == 8
    assert "device c's profile laptop-linux does not allow tc" in err.value.message


def test_latency_for_a_client_node_is_refused(tmp_path: Path) -> None:
    path = _topology(tmp_path, "  s: {devices: [a]}\n  q:\n    devices: [b]\n    client: aria2\n"
                               "scenario:\n  - {at: 1s, link: {nodes: q, latency: 20ms}}\n")
    with pytest.raises(InputError) as err:
        load_topology(path)
    assert err.value.line == 8
    assert "the link event at 1s sets latency, jitter or loss for client node q-0" in err.value.message
    ok = _topology(tmp_path, "  s: {devices: [a], link: {latency: 20ms}}\n  q:\n    devices: [b]\n"
                             "    client: aria2\n    link: {down: 8mbit}\n")
    assert load_topology(ok).node("q-0").link.down_bps == 8_000_000


@pytest.mark.parametrize(("output", "kind", "problem"), [
    ("uid=0\ntool=tc\ntool=iptables\nclient=aria2\n", "aria2", None),
    ("uid=0\ntool=tc\ntool=iptables\n", "aria2", "client aria2 is not installed (apt-get install aria2 there)"),
    ("uid=1000\ntool=tc\ntool=iptables\nclient=aria2\n", "aria2", "need root"),
    ("uid=0\ntool=iptables\nclient=deluge\n", "deluge", "tc unusable there"),
    ("uid=0\ntool=iptables\n", None, None),  # an agent's device: partitions only
    ("uid=0\ntool=tc\n", None, "iptables unusable there"),
])
def test_device_problems(output: str, kind: str, problem: str) -> None:
    found = clients.device_problem(output, kind)
    assert found == problem if problem is None else problem in (found or "")


def test_a_partition_is_cut_by_device_and_a_split_device_is_refused() -> None:
    nodes = {"s-0": {"device": "a"}, "q-0": {"device": "b"}, "r-0": {"device": "b"}}
    assert clients.device_sides([["s-0"], ["q-0", "r-0"]], nodes) == {"a": 0, "b": 1}
    with pytest.raises(ValueError, match="device b holds nodes of two sides"):
        clients.device_sides([["s-0", "q-0"], ["r-0"]], nodes)
    cmd = clients.partition_command("meshbed-x", ["10.9.0.2"])
    assert "-A meshbed-x -s 10.9.0.2 -j DROP" in cmd and "-A meshbed-x -d 10.9.0.2 -j DROP" in cmd
    assert "-I INPUT -j meshbed-x" in cmd and "-I OUTPUT -j meshbed-x" in cmd


def test_a_client_node_is_killed_with_its_process_group() -> None:
    assert 'kill -KILL -"$p"' in remote.kill_command("/r/n", group=True)
    assert 'kill -KILL -"$p"' in remote.stop_command("/r/n", group=True)
    assert 'kill -KILL -"$p"' not in remote.kill_command("/r/n")


def test_the_client_zipapp_runs_and_hands_out_its_runners(tmp_path: Path) -> None:
    pyz = build_client_pyz(tmp_path / "client.pyz")
    usage = subprocess.run([sys.executable, str(pyz)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "orchestrator.clients.node CLIENT run" in usage.stderr
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "from orchestrator.clients.libtorrent_session import runner_script; "
            "print(runner_script('lt_runner.py', Path(sys.argv[2])))")
    out = subprocess.run([sys.executable, "-c", code, str(pyz), str(tmp_path)], capture_output=True,
                         text=True, timeout=30, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = Path(out.stdout.strip())
    assert written.parent == tmp_path  # copied out of the zip: a script the system python3 runs
    source = Path(clients.__file__).resolve().parents[2] / "clients" / "lt_runner.py"
    assert written.read_bytes() == source.read_bytes()
