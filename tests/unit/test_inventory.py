"""orchestrator.inventory: device inventories and `devices:` in groups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory import KNOWN_PROFILES, load_inventory, profile_names
from orchestrator.loader import load_topology

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]

INVENTORY = """defaults: {user: pi, key: ~/.ssh/id_ed25519, known_hosts: keys/known_hosts}
devices:
  pi-kitchen: {host: 192.168.1.20, profile: raspberry-pi-4, tags: [pi, arm64]}
  pi-office: {host: 192.168.1.21, profile: raspberry-pi-5, tags: [pi]}
  router-1:   {host: 192.168.1.1, port: 2222, user: root, profile: openwrt-router, tags: [router]}
  laptop:     {host: lab-laptop.local, profile: laptop-linux, jump: bastion.lab, trust_on_first_use: true}
"""


def write(tmp_path: Path, text: str, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_inventory_merges_defaults(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, INVENTORY))
    assert [d.name for d in inv.devices] == ["pi-kitchen", "pi-office", "router-1", "laptop"]
    pi = inv.get("pi-kitchen")
    assert (pi.host, pi.port, pi.user, pi.profile, pi.tags) == (
        "192.168.1.20",
        22,
        "pi",
        "raspberry-pi-4",
        ("pi", "arm64"),
    )
    assert pi.key == os.path.expanduser("~/.ssh/id_ed25519")
    assert pi.known_hosts == str(tmp_path.resolve() / "keys" / "known_hosts")
    router = inv.get("router-1")
    assert (router.port, router.user) == (2222, "root")  # own values win over defaults
    laptop = inv.get("laptop")
    assert laptop.jump == "bastion.lab" and laptop.trust_on_first_use is True
    assert pi.trust_on_first_use is False
    assert inv.path == (tmp_path / "inv.yaml").resolve()


def test_profiles_known() -> None:
    assert set(KNOWN_PROFILES) <= set(profile_names()) or profile_names() == KNOWN_PROFILES
    assert "generic-linux" in profile_names()


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "defaults: {password: hunter2}\ndevices:\n  a: {host: h}\n",
            1,
            "'password': passwords never live in the file: use a key or ssh-agent",
        ),
        ("devices:\n  a:\n    host: h\n    passphrase: x\n", 4, "passwords never live in the file"),
        (
            "devices:\n  a: {hots: h}\n",
            2,
            "unknown key 'hots' in device 'a' (did you mean 'host'?)",
        ),
        ("devices:\n  a: {port: 22}\n", 2, "device 'a' needs 'host'"),
        (
            "devices:\n  a: {host: h, profile: laptop-linx}\n",
            2,
            "device 'a': unknown profile 'laptop-linx' (did you mean 'laptop-linux'?)",
        ),
        (
            "devices:\n  a: {host: h, profile: windows}\n",
            2,
            "device 'a': unknown profile 'windows' (profiles: ",
        ),
        ("devices:\n  a: {host: h, port: 70000}\n", 2, "device 'a': port must be at most 65535"),
        ("devices:\n  a: {host: h, port: ssh}\n", 2, "port must be a whole number"),
        ("devices:\n  a: {host: h, tags: [a]}\n", 2, "tag 'a' is also a device name"),
        ("devices:\n  a: {host: h, trust_on_first_use: maybe}\n", 2, "must be true or false"),
        ("devices:\n  a: {host: 'two words'}\n", 2, "host must be a host name or address"),
        ("devices:\n  'bad name': {host: h}\n", 2, "device name 'bad name' is not valid"),
        ("devices: {}\n", 1, "'devices' is empty"),
        ("devices: [a, b]\n", 1, "'devices' must be a mapping"),
        ("defaults: {user: pi}\n", 1, "the inventory needs 'devices'"),
        ("devices:\n  a: {host: h\n", 2, "YAML syntax error"),  # end of file: last line
        ("", 1, "empty inventory"),
    ],
)
def test_inventory_errors(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_inventory(path)
    err = info.value
    assert fragment in err.message
    assert (err.file, err.line) == (str(path), line)
    assert "\n" not in str(err)


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yaml")


def test_group_devices_by_name_and_tag(tmp_path: Path) -> None:
    write(tmp_path, INVENTORY, "lab.yaml")
    topo = write(
        tmp_path,
        """name: lab
inventory: lab.yaml
groups:
  pis: {devices: [pi]}
  mixed: {devices: [router-1, laptop, router], count: 2}
content:
  fw: {size: 1MiB, seeders: [mixed-0]}
scenario:
  - {at: 0s, fetch: {content: fw, by: pis}}
""",
        "t.yaml",
    )
    t = load_topology(topo)
    pis = t.group("pis")
    assert (pis.backend, pis.count, pis.options["devices"]) == ("ssh", 2, ("pi-kitchen", "pi-office"))
    assert t.group("mixed").options["devices"] == ("router-1", "laptop")  # de-duplicated, in order
    assert t.node("pis-1").options["device"] == "pi-office"
    assert t.node("mixed-0").options["device"] == "router-1"
    assert t.inventory is not None and len(t.inventory.devices) == 4


def test_password_in_referenced_inventory_points_at_inventory(tmp_path: Path) -> None:
    inv = write(tmp_path, "devices:\n  a: {host: h, password: x}\n", "lab.yaml")
    topo = write(tmp_path, "name: t\ninventory: lab.yaml\ngroups:\n  g: {devices: [a]}\n", "t.yaml")
    with pytest.raises(InputError) as info:
        load_topology(topo)
    assert (info.value.file, info.value.line) == (str(inv.resolve()), 2)
    assert "passwords never live in the file" in info.value.message


def test_example_inventory_loads() -> None:
    inv = load_inventory(ROOT / "examples" / "devices" / "lab.yaml")
    assert {d.profile for d in inv.devices} <= set(profile_names())
    assert inv.get("router-1").port == 2222
