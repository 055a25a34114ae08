"""A lab of SSH "devices" on this host: network namespaces on one bridge, each running its
own real OpenSSH server (Debian openssh-server) with its own host key.

Used by the ssh integration tests, the ssh contract harness and bench/ssh_fanout.py.
Everything it creates (namespaces, bridge, veths, one iptables rule, sshd processes, a temp
dir) is removed by ``close()``. The devices share this host's filesystem, so the ssh
backend's per-mesh, per-node paths are exercised for real; ``private_dirs=True`` gives each
device its own data dir instead (a "fresh device" for every one, for benchmarks).

Needs root, ``ip``, ``iptables``, ``/usr/sbin/sshd`` and ``ssh-keygen``.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

SSHD = "/usr/sbin/sshd"
_SUBNET_CANDIDATES = [f"10.{a}.{b}.0/24" for a in (213, 214, 215) for b in range(40, 60)]


def skip_reason() -> Optional[str]:
    """Why a lab cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "iptables", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} not found (apt-get install openssh-server)"
    return None


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _sh("ip", "-4", "route", "show", "table", "all", check=False).stdout
    out += _sh("ip", "-4", "addr", check=False).stdout
    nets = []
    for word in out.split():
        if "/" in word and word[0].isdigit():
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    return nets  # type: ignore[return-value]


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    for cand in _SUBNET_CANDIDATES:
        net = ipaddress.IPv4Network(cand)
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /24 among the lab's candidate subnets")


_LAB_COUNT = itertools.count()


def _new_tag() -> str:
    """A tag no live lab uses: several labs can be up at once in one test session (the ssh
    contract harness keeps one for the whole session), so pid + a counter, checked against the
    interfaces that exist."""
    while True:
        tag = f"{os.getpid() % 10000}{next(_LAB_COUNT) % 100:02d}"
        if not Path(f"/sys/class/net/msl{tag}").exists():
            return tag


@dataclass
class LabDevice:
    name: str
    namespace: str
    host: str  # its address on the bridge
    dir: Path
    host_key_pub: str
    sshd: Optional[subprocess.Popen[bytes]] = None


@dataclass
class SshLab:
    n: int
    private_dirs: bool = False
    profile: str = "generic-linux"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="meshbed-sshlab-")))
    devices: list[LabDevice] = field(default_factory=list)
    bridge: str = ""
    gateway: str = ""
    _iptables_rule: Optional[list[str]] = None
    _namespaces: list[str] = field(default_factory=list)

    # --- paths -------------------------------------------------------------------------
    @property
    def user_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def shared_dir(self) -> Path:
        """The devices' data home when they share it (XDG_DATA_HOME on every device)."""
        return self.root / "share"

    def data_home(self, dev: LabDevice) -> Path:
        return dev.dir / "share" if self.private_dirs else self.shared_dir

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> SshLab:
        reason = skip_reason()
        if reason:
            raise RuntimeError(reason)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        tag = _new_tag()
        net = _free_subnet()
        hosts = list(net.hosts())
        self.gateway = str(hosts[0])
        self.bridge = f"msl{tag}"[:15]
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.root.chmod(0o755)
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "meshbed-lab", "-f", str(self.user_key))
        (self.root / "authorized_keys").write_text(Path(f"{self.user_key}.pub").read_text())
        self.shared_dir.mkdir()
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{self.gateway}/{net.prefixlen}", "dev", self.bridge)
        _sh("ip", "link", "set", self.bridge, "up")
        # Docker sets FORWARD to DROP; bridged frames traverse it when br_netfilter is on.
        rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        _sh("iptables", "-I", *rule)
        self._iptables_rule = rule
        for i in range(self.n):
            self.devices.append(self._add_device(i, tag, str(hosts[10 + i]), net.prefixlen))
        for dev in self.devices:
            dev.sshd = subprocess.Popen(
                ["ip", "netns", "exec", dev.namespace, *self._plain_shell(),
                 SSHD, "-D", "-e", "-f", str(dev.dir / "sshd_config")],
                stdout=subprocess.DEVNULL,
                stderr=open(dev.dir / "sshd.log", "wb"),  # noqa: SIM115 - lives with the process
            )
        self.known_hosts.write_text(
            "".join(f"{d.host} {d.host_key_pub}\n" for d in self.devices)
        )
        self.write_inventory()
        deadline = time.monotonic() + 20
        for dev in self.devices:
            self._wait_port(dev, deadline)

    def _plain_shell(self) -> list[str]:
        """Run sshd in its own mount namespace where root's ~/.bashrc is empty, so a command
        costs what it costs on a device, not this host's shell set-up (pyenv init spawns
        dozens of processes per SSH command). The files of the host stay shared."""
        rc = Path.home() / ".bashrc"
        if not rc.exists() or shutil.which("unshare") is None:
            return []
        empty = self.root / "empty-bashrc"
        empty.write_text("")
        return [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "{empty}" "{rc}" && exec "$@"', "sshd-lab",
        ]

    def _add_device(self, i: int, tag: str, addr: str, prefixlen: int) -> LabDevice:
        name = f"dev-{i}"
        ns = f"msl{tag}-{i}"
        self._namespaces.append(ns)
        ddir = self.root / name
        ddir.mkdir()
        _sh("ip", "netns", "add", ns)
        host_if, peer_if = f"msl{tag}h{i}"[:15], f"msl{tag}p{i}"[:15]
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _sh("ip", "link", "set", host_if, "master", self.bridge, "up")
        _sh("ip", "link", "set", peer_if, "netns", ns)
        _sh("ip", "-n", ns, "link", "set", peer_if, "name", "eth0")
        _sh("ip", "-n", ns, "addr", "add", f"{addr}/{prefixlen}", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", self.gateway)
        key = ddir / "ssh_host_ed25519_key"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        dev = LabDevice(name=name, namespace=ns, host=addr, dir=ddir, host_key_pub=pub)
        data_home = self.data_home(dev)
        data_home.mkdir(exist_ok=True)
        (ddir / "sshd_config").write_text(
            "\n".join(
                [
                    "Port 22",
                    f"ListenAddress {addr}",
                    f"HostKey {key}",
                    f"PidFile {ddir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    "MaxSessions 64",
                    "MaxStartups 64:30:128",
                    "Subsystem sftp internal-sftp",
                    f"SetEnv XDG_DATA_HOME={data_home}",
                    "",
                ]
            )
        )
        return dev

    def _wait_port(self, dev: LabDevice, deadline: float) -> None:
        while time.monotonic() < deadline:
            if dev.sshd is not None and dev.sshd.poll() is not None:
                log = (dev.dir / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd of {dev.name} exited: {log[-500:]}")
            try:
                with socket.create_connection((dev.host, 22), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd of {dev.name} did not listen on {dev.host}:22")

    def write_inventory(self, extra: Optional[dict[str, dict[str, object]]] = None) -> Path:
        devices: dict[str, dict[str, object]] = {
            d.name: {"host": d.host, "profile": self.profile, "tags": ["lab", f"lab{i % 2}"], **self._python()}
            for i, d in enumerate(self.devices)
        }
        devices.update(extra or {})
        doc = {
            "defaults": {"user": "root", "key": str(self.user_key), "known_hosts": str(self.known_hosts)},
            "devices": devices,
        }
        self.inventory_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return self.inventory_path

    def inventory(self):  # -> orchestrator.model.Inventory
        """The inventory as model objects (the same thing the loader makes of the YAML)."""
        from orchestrator.model import Device, Inventory

        return Inventory(
            path=self.inventory_path,
            devices=tuple(
                Device(
                    name=d.name,
                    host=d.host,
                    user="root",
                    key=str(self.user_key),
                    known_hosts=str(self.known_hosts),
                    profile=self.profile,
                    tags=("lab", f"lab{i % 2}"),
                    python=self._python().get("python"),
                )
                for i, d in enumerate(self.devices)
            ),
        )

    @staticmethod
    def _python() -> dict[str, str]:
        """The system interpreter, as on a real device (not this host's pyenv shim)."""
        return {"python": "/usr/bin/python3"} if os.access("/usr/bin/python3", os.X_OK) else {}

    def unused_address(self) -> str:
        """An address on the lab bridge where nothing listens (an unreachable device)."""
        net = ipaddress.ip_network(f"{self.gateway}/24", strict=False)
        return str(list(net.hosts())[200])

    def describe(self, pids: list[int]) -> list[str]:
        out = []
        for pid in pids:
            try:
                out.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
            except OSError:
                out.append(f"{pid}: (gone)")
        return out

    def agent_pids(self) -> list[int]:
        """Processes other than sshd running inside the lab's namespaces."""
        sshd = {d.sshd.pid for d in self.devices if d.sshd}
        pids: list[int] = []
        for ns in self._namespaces:
            out = _sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for p in out:
                pid = int(p)
                try:
                    exe = os.readlink(f"/proc/{pid}/exe")
                except OSError:
                    continue
                if pid not in sshd and not exe.endswith("sshd"):
                    pids.append(pid)
        return pids

    def shaping_left(self) -> list[str]:
        """tbf/ingress qdiscs and ifb links meshbed may have put in the lab's namespaces."""
        found = []
        for dev in self.devices:
            qd = _sh("tc", "-n", dev.namespace, "qdisc", "show", "dev", "eth0", check=False).stdout
            found += [f"{dev.name}: {line}" for line in qd.splitlines() if " tbf " in line or "ingress" in line]
            links = _sh("ip", "-n", dev.namespace, "-o", "link", "show", check=False).stdout
            found += [f"{dev.name}: link {line.split(':')[1].strip()}" for line in links.splitlines() if ": mbi" in line]
        return found

    def close(self) -> None:
        for dev in self.devices:
            if dev.sshd is not None and dev.sshd.poll() is None:
                dev.sshd.terminate()
                try:
                    dev.sshd.wait(5)
                except subprocess.TimeoutExpired:
                    dev.sshd.kill()
        for ns in self._namespaces:  # anything still running in our namespaces is ours
            for p in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for ns in self._namespaces:
            _sh("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()
        if self._iptables_rule:
            _sh("iptables", "-D", *self._iptables_rule, check=False)
            self._iptables_rule = None
        if self.bridge:
            _sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SshLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_lab() -> None:
    """pytest: skip (or, under CI=true, fail) when a lab cannot be built here."""

    from tests.facilities import require

    require(skip_reason())


def lab_fixture(n: int, private_dirs: bool = False):  # noqa: ANN201 - a pytest fixture
    """A session-scoped pytest fixture yielding a started SshLab of ``n`` devices."""
    import pytest

    @pytest.fixture(scope="session")
    def _lab():  # noqa: ANN202
        require_lab()
        lab = SshLab(n, private_dirs=private_dirs).start()
        try:
            yield lab
        finally:
            lab.close()

    return _lab
