"""Device profiles (package data) and the ssh backend's pure shell/parse helpers."""

from __future__ import annotations

import pytest

import devices
from orchestrator.backends.ssh import remote
from orchestrator.backends.ssh.connection import SshTarget, target_for
from orchestrator.model import Device, Inventory

pytestmark = pytest.mark.timeout(30)

FIXED = {"raspberry-pi-4", "raspberry-pi-5", "laptop-linux", "openwrt-router", "generic-linux"}


def test_the_five_profiles_ship_and_load() -> None:
    assert set(devices.profile_names()) >= FIXED
    for name in FIXED:
        p = devices.load_profile(name)
        assert p.name == name
        assert p.min_python >= (3, 9)
        assert p.data_cap_bytes >= 16 << 20
        assert p.detach and set(p.detach) <= set(devices.DETACH_METHODS)
        assert p.python


def test_profile_specifics() -> None:
    assert devices.load_profile("openwrt-router").install_dir == "/tmp"
    assert devices.load_profile("openwrt-router").tc is False
    assert "systemd-run" not in devices.load_profile("openwrt-router").detach
    assert devices.load_profile("raspberry-pi-5").min_python == (3, 11)
    assert devices.load_profile("raspberry-pi-4").data_cap_bytes == 1 << 30


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(devices.ProfileError, match="generic-linux"):
        devices.load_profile("toaster")
    with pytest.raises(devices.ProfileError):
        devices.load_profile("../etc/passwd")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("python: python3\n", "missing keys"),
        ("python: python3\nmin_python: 3\ninstall_dir: /x\ndata_dir: /x\ndata_cap: 1GiB\n", "min_python"),
        ("python: p\nmin_python: '3.9'\ninstall_dir: /x\ndata_dir: /x\ndata_cap: lots\n", "bad size"),
        ("python: p\nmin_python: '3.9'\ninstall_dir: /x\ndata_dir: /x\ndata_cap: 1GiB\ncolour: red\n", "unknown keys"),
        ("python: p\nmin_python: '3.9'\ninstall_dir: /x\ndata_dir: /x\ndata_cap: 1GiB\ndetach: [fork]\n", "detach"),
    ],
)
def test_bad_profiles_are_refused(text: str, problem: str) -> None:
    with pytest.raises(devices.ProfileError, match=problem):
        devices.parse_profile("x", text)


def test_sizes() -> None:
    assert devices.parse_size("64MiB") == 64 << 20
    assert devices.parse_size("1GB") == 10**9
    assert devices.parse_size(512) == 512


PROBE_OUT = """install=/home/pi/.local/share
data=/home/pi/.local/share
arch=aarch64
uid=1000
python=3.11.2
disk=2097152
tool=setsid
tool=nohup
tool=systemd-run
systemd=1
"""


def test_parse_probe_and_detach_choice() -> None:
    p = remote.parse_probe(PROBE_OUT)
    assert p.arch == "aarch64" and p.uid == 1000
    assert p.python_version == (3, 11, 2) and p.python_text == "3.11.2"
    assert p.free_bytes == 2 << 30
    pi4 = devices.load_profile("raspberry-pi-4")
    # not root: systemd-run would need a lingering user manager, so setsid wins
    assert p.detach_method(pi4) == "setsid"
    root = remote.parse_probe(PROBE_OUT.replace("uid=1000", "uid=0"))
    assert root.detach_method(pi4) == "systemd-run"
    assert not root.tc_usable(pi4)  # no tc binary reported
    bare = remote.parse_probe("install=/tmp\ndata=/tmp\npython=\n")
    assert bare.python_version is None and bare.free_bytes is None
    assert bare.detach_method(pi4) is None


def test_clock_parsing_and_skew() -> None:
    assert remote.parse_clock("1700000000.250000000\n") == pytest.approx(1700000000.25)
    assert remote.parse_clock("1700000000.N\n") == 1700000000.0  # busybox date
    assert remote.parse_clock("garbage") is None
    # remote read at 100.5 while we sent at 100.0 and got the answer at 100.2: +0.4 s
    assert remote.clock_skew(100.5, 100.0, 100.2) == pytest.approx(0.4)


def test_removal_only_of_mesh_dirs() -> None:
    assert remote.check_mesh_dir("/home/pi/.local/share/meshbed/demo", "demo")
    for bad in ("/home/pi", "/", "meshbed/demo", "/x/../meshbed/demo", "/meshbed/demo", "/x/meshbed/other"):
        with pytest.raises(ValueError):
            remote.check_mesh_dir(bad, "demo")
    cmd = remote.remove_command(["/a/meshbed/demo", "/a/meshbed/demo/"], "demo")
    assert cmd.count("/a/meshbed/demo") == 1


def test_start_command_detaches_and_records_pid() -> None:
    cmd = remote.start_command(
        method="setsid", python="python3", pyz="/d/meshbed/peer-x.pyz", run_dir="/d/meshbed/m/n 1",
        args=["run", "--node", "n 1"], unit="u",
    )
    assert "setsid python3 /d/meshbed/peer-x.pyz run --node 'n 1'" in cmd  # no nohup: busybox may lack it
    assert "</dev/null &" in cmd and "echo $! >'/d/meshbed/m/n 1/agent.pid'" in cmd
    assert "&&" not in cmd.split("setsid")[0]  # an and-list before `&` would hold the channel
    sd = remote.start_command(method="systemd-run", python="python3", pyz="/p", run_dir="/r", args=["run"], unit="meshbed-m-n")
    assert sd.startswith("cd /r") and "systemd-run" in sd and "--unit=meshbed-m-n" in sd


def test_kill_only_our_pid() -> None:
    cmd = remote.kill_command("/d/meshbed/m/n")
    assert "/proc/$p/cmdline" in cmd and "kill -KILL" in cmd


def test_jump_targets() -> None:
    inv = Inventory(
        path=__import__("pathlib").Path("inv.yaml"),
        devices=(
            Device(name="bastion", host="10.0.0.1", user="ops", key="/k1"),
            Device(name="pi", host="192.168.1.2", user="pi", key="/k2", jump="bastion"),
            Device(name="pi2", host="192.168.1.3", user="pi", jump="admin@gw.lab:2200"),
        ),
    )
    t = target_for(inv.get("pi"), inv)
    assert isinstance(t.jump, SshTarget) and t.jump.name == "bastion" and t.jump.user == "ops"
    t2 = target_for(inv.get("pi2"), inv)
    assert t2.jump is not None
    assert (t2.jump.user, t2.jump.host, t2.jump.port) == ("admin", "gw.lab", 2200)
    assert SshTarget(name="x", host="h", port=2222).host_pattern == "[h]:2222"


def test_tc_commands_over_ssh() -> None:
    from orchestrator.backends.ssh import shaping

    ifb = shaping.ifb_name("mesh", "node-1")
    assert ifb.startswith("mbi") and len(ifb) <= 15  # IFNAMSIZ
    assert ifb != shaping.ifb_name("mesh", "node-2")
    both = shaping.apply_command("eth0", ifb, 8_000_000, 20_000_000)
    assert both.startswith("set -e; ")
    assert "tc qdisc replace dev eth0 root handle 1: tbf rate 8000000bit" in both
    assert f"mirred egress redirect dev {ifb}" in both
    assert f"tc qdisc replace dev {ifb} root handle 1: tbf rate 20000000bit" in both
    up_only = shaping.apply_command("eth0", ifb, 8_000_000, None)
    assert "ingress 2>/dev/null || true" in up_only and f"ip link del {ifb}" in up_only
    none = shaping.apply_command("eth0", ifb, None, None)
    assert "tbf" not in none and "del dev eth0 root 2>/dev/null || true" in none


def test_fresh_dirs_take_the_token_from_stdin() -> None:
    from orchestrator.backends.ssh.deploy import fresh_dirs_command, node_paths

    paths = node_paths("/home/pi/.local/share", "/data", "demo", "pis-0")
    assert paths.run_dir == "/home/pi/.local/share/meshbed/demo/pis-0"
    assert paths.data_dir == "/data/meshbed/demo/pis-0/data"
    cmd = fresh_dirs_command(paths)
    assert "umask 077 && cat >/home/pi/.local/share/meshbed/demo/pis-0/token" in cmd
    assert "chmod 700" in cmd
    with pytest.raises(ValueError):
        node_paths("/x", "/x", "demo", "../etc")
