"""A lab of SSH "devices" on this host: network namespaces on one bridge, each running its
own real OpenSSH server (Debian openssh-server) with its own host key.

Used by the ssh integration tests, the ssh contract harness and bench/ssh_fanout.py.
Everything it creates (namespaces, bridge, veths, one iptables rule, sshd processes, a temp
dir) is removed by ``close()``. The devices share this host's filesystem, so the ssh
backend's per-mesh, per-node paths are exercised for real; ``private_dirs=True`` gives each
device its own data dir instead (a "fresh device" for every one, for benchmarks).

Stand-in devices (``kinds``): besides ``host`` devices (this host's own system, profile
generic-linux), a device can be a ``pi`` (Debian 11 arm64, Python 3.9 under qemu-user,
profile raspberry-pi-4), a ``router`` (busybox ash, no bash, no systemd, a 48 MiB tmpfs
/tmp, Python 3.9; profile openwrt-router) or a ``laptop`` (this host's Debian, profile
laptop-linux). A pi's or router's SSH logins land in a chroot (sshd ``ChrootDirectory``) of an
overlay over a cached root from tests/labroots.py: the overlay's upper dir is the device's
disk and survives ``reboot()``, its tmpfs /tmp does not.

    sudo python3 tests/sshlab.py up pi router laptop    # prints the inventory path; Ctrl-C ends it

Needs root, ``ip``, ``iptables``, ``/usr/sbin/sshd`` and ``ssh-keygen``; stand-ins need what
tests/labroots.py needs.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # run as a script: orchestrator
import labroots  # noqa: E402

from orchestrator.hostnet.subnets import host_lock  # noqa: E402

SSHD = "/usr/sbin/sshd"
CHROOT_BASE = Path("/run/meshbed-lab")  # sshd's ChrootDirectory: no group/world-writable parent
ROUTER_TMP_SIZE = "48m"
SSHD_START_TIMEOUT = 60.0  # generous: a loaded host starts two dozen sshds slowly
# kind -> (cached root from labroots, or None for this host's own system; profile)
KINDS: dict[str, tuple[Optional[str], str]] = {
    "host": (None, "generic-linux"),
    "laptop": (None, "laptop-linux"),
    "pi": ("bullseye-arm64", "raspberry-pi-4"),
    "router": ("busybox-router", "openwrt-router"),
}
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


def stand_in_skip_reason(kinds: tuple[str, ...] = ("pi", "router")) -> Optional[str]:
    """Why the stand-in devices of ``kinds`` cannot be built here, or None."""
    reason = skip_reason()
    if reason or not any(KINDS[k][0] for k in kinds if k in KINDS):
        return reason
    if shutil.which("debootstrap") is None:
        return "debootstrap not found (apt-get install debootstrap)"
    if "pi" in kinds and not os.access("/usr/bin/qemu-aarch64-static", os.X_OK):
        return "qemu-aarch64-static not found (apt-get install qemu-user-static binfmt-support)"
    if "router" in kinds and not os.access(labroots.BUSYBOX, os.X_OK):
        return f"{labroots.BUSYBOX} not found (apt-get install busybox-static)"
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
    kind: str = "host"
    index: int = 0
    mac: str = ""
    sshd: Optional[subprocess.Popen[bytes]] = None

    @property
    def profile(self) -> str:
        return KINDS[self.kind][1]

    @property
    def chroot(self) -> Optional[Path]:
        """Where its logins land (an overlay of its cached root), None for this host's system."""
        return CHROOT_BASE / self.namespace if KINDS[self.kind][0] else None

    def path(self, device_path: str) -> Path:
        """A path as the device sees it, as this host sees it."""
        root = self.chroot
        return Path(device_path) if root is None else root / device_path.lstrip("/")


@dataclass
class SshLab:
    n: int
    private_dirs: bool = False
    profile: str = "generic-linux"  # of ``host`` devices
    kinds: tuple[str, ...] = ()  # device i is of kind kinds[i] ("host" past its end)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="meshbed-sshlab-")))
    devices: list[LabDevice] = field(default_factory=list)
    bridge: str = ""
    gateway: str = ""
    _iptables_rule: Optional[list[str]] = None
    _namespaces: list[str] = field(default_factory=list)
    _tag: str = ""
    _prefixlen: int = 24

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
        """Where the device keeps its data (profile install/data dir), as this host sees it."""
        if dev.kind == "router":
            return dev.path("/tmp")
        if dev.chroot is not None:
            return dev.path("/root/.local/share")
        return dev.dir / "share" if self.private_dirs else self.shared_dir

    def kind_of(self, i: int) -> str:
        kind = self.kinds[i] if i < len(self.kinds) else "host"
        if kind not in KINDS:
            raise ValueError(f"unknown lab device kind {kind!r} (known: {', '.join(KINDS)})")
        return kind

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> SshLab:
        reason = skip_reason()
        if reason:
            self.close()  # the temp dir made with the instance
            raise RuntimeError(reason)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        kinds = [self.kind_of(i) for i in range(self.n)]
        for kind in dict.fromkeys(kinds):
            root = KINDS[kind][0]
            if root:
                reason = stand_in_skip_reason((kind,))
                if reason:
                    raise RuntimeError(reason)
                if kind == "pi":
                    labroots.enable_binfmt()
                labroots.ensure(root)
        tag = _new_tag()
        self._tag = tag
        self.bridge = f"msl{tag}"[:15]
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.root.chmod(0o755)
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "meshbed-lab", "-f", str(self.user_key))
        (self.root / "authorized_keys").write_text(Path(f"{self.user_key}.pub").read_text())
        self.shared_dir.mkdir()
        # the subnet is picked and taken under meshbed's host-wide lock: meshes and other labs
        # (tests run in parallel) pick theirs from what exists then
        with host_lock():
            net = _free_subnet()
            self._prefixlen = net.prefixlen
            self.gateway = str(next(net.hosts()))
            _sh("ip", "link", "add", self.bridge, "type", "bridge")
            _sh("ip", "addr", "add", f"{self.gateway}/{net.prefixlen}", "dev", self.bridge)
        hosts = list(net.hosts())
        _sh("ip", "link", "set", self.bridge, "up")
        # Docker sets FORWARD to DROP; bridged frames traverse it when br_netfilter is on.
        rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        _sh("iptables", "-I", *rule)
        self._iptables_rule = rule
        for i in range(self.n):
            self.devices.append(self._add_device(i, kinds[i], tag, str(hosts[10 + i])))
        for dev in self.devices:
            self._start_sshd(dev)
        self.known_hosts.write_text(
            "".join(f"{d.host} {d.host_key_pub}\n" for d in self.devices)
        )
        self.write_inventory()
        deadline = time.monotonic() + SSHD_START_TIMEOUT
        for dev in self.devices:
            self._wait_port(dev, deadline)

    def _start_sshd(self, dev: LabDevice) -> None:
        dev.sshd = subprocess.Popen(
            ["ip", "netns", "exec", dev.namespace, *self._plain_shell(dev),
             SSHD, "-D", "-e", "-f", str(dev.dir / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(dev.dir / "sshd.log", "ab"),  # noqa: SIM115 - lives with the process
        )

    def _plain_shell(self, dev: LabDevice) -> list[str]:
        """Run sshd in its own mount namespace where root's ~/.bashrc is empty, so a command
        costs what it costs on a device, not this host's shell set-up (pyenv init spawns
        dozens of processes per SSH command). The files of the host stay shared. A chrooted
        device's root logs in with /bin/sh (sshd takes the shell from this host's passwd;
        a router has no bash)."""
        if shutil.which("unshare") is None:
            return []
        mounts = []
        rc = Path.home() / ".bashrc"
        if rc.exists():
            empty = self.root / "empty-bashrc"
            empty.touch()
            mounts.append(f'mount --bind "{empty}" "{rc}"')
        if dev.chroot is not None:
            passwd = self.root / "passwd-sh"
            if not passwd.exists():  # written once, whole: running sshds read it
                lines = Path("/etc/passwd").read_text().splitlines()
                tmp = passwd.with_suffix(".tmp")
                tmp.write_text("".join(
                    (":".join(ln.split(":")[:6] + ["/bin/sh"]) if ln.startswith("root:") else ln) + "\n"
                    for ln in lines
                ))
                tmp.rename(passwd)
            mounts.append(f'mount --bind "{passwd}" /etc/passwd')
        if not mounts:
            return []
        return [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            " && ".join([*mounts, 'exec "$@"']), "sshd-lab",
        ]

    def _mount_root(self, dev: LabDevice) -> None:
        """The device's filesystem: overlay of its cached root (upper dir = its disk), with
        /proc, /dev and, on a router, a small tmpfs /tmp."""
        root = dev.chroot
        name = KINDS[dev.kind][0]
        assert root is not None and name is not None
        for d in ("upper", "ovwork"):
            (dev.dir / d).mkdir(exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        CHROOT_BASE.chmod(0o755)
        _sh("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={labroots.root_path(name)},upperdir={dev.dir / 'upper'},workdir={dev.dir / 'ovwork'}",
            str(root))
        _sh("mount", "-t", "proc", "proc", str(root / "proc"))
        _sh("mount", "--rbind", "/dev", str(root / "dev"))
        _sh("mount", "--make-rslave", str(root / "dev"))
        if dev.kind == "router":
            _sh("mount", "-t", "tmpfs", "-o", f"size={ROUTER_TMP_SIZE},mode=1777", "tmpfs", str(root / "tmp"))
        (root / "root").mkdir(exist_ok=True)
        # No DNS server reachable from the lab: with none named, lookups fail at once instead
        # of timing out (the agent's HTTP server reverse-resolves its bind address).
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text("# lab device: no DNS\n")
        if not (root / "etc/hosts").exists():
            (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{dev.host} {dev.name}\n")

    def _unmount_root(self, dev: LabDevice) -> None:
        root = dev.chroot
        if root is not None and root.exists():
            _sh("umount", "-R", "-l", str(root), check=False)
            try:
                root.rmdir()
            except OSError:
                pass

    def _add_netns(self, dev: LabDevice) -> None:
        i, ns, tag = dev.index, dev.namespace, self._tag
        _sh("ip", "netns", "add", ns)
        host_if, peer_if = f"msl{tag}h{i}"[:15], f"msl{tag}p{i}"[:15]
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _sh("ip", "link", "set", host_if, "master", self.bridge, "up")
        _sh("ip", "link", "set", peer_if, "netns", ns)
        _sh("ip", "-n", ns, "link", "set", peer_if, "name", "eth0")
        # A device keeps its MAC across reboots (and this host's neighbour entry stays right).
        if dev.mac:
            _sh("ip", "-n", ns, "link", "set", "eth0", "address", dev.mac)
        else:
            dev.mac = _sh("ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/address").stdout.strip()
        _sh("ip", "-n", ns, "addr", "add", f"{dev.host}/{self._prefixlen}", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", self.gateway)

    def _add_device(self, i: int, kind: str, tag: str, addr: str) -> LabDevice:
        name = f"dev-{i}" if kind == "host" else f"{kind}-{i}"
        ns = f"msl{tag}-{i}"
        self._namespaces.append(ns)
        ddir = self.root / name
        ddir.mkdir()
        key = ddir / "ssh_host_ed25519_key"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        dev = LabDevice(name=name, namespace=ns, host=addr, dir=ddir, host_key_pub=pub, kind=kind, index=i)
        self._add_netns(dev)
        if dev.chroot is not None:
            self._mount_root(dev)
            where = [f"ChrootDirectory {dev.chroot}"]
        else:
            data_home = self.data_home(dev)
            data_home.mkdir(exist_ok=True)
            where = [f"SetEnv XDG_DATA_HOME={data_home}"]
        (ddir / "sshd_config").write_text(
            "\n".join(
                [
                    "Port 22",
                    f"ListenAddress {dev.host}",
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
                    *where,
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
            d.name: {"host": d.host, "profile": self._profile(d), "tags": ["lab", f"lab{i % 2}", d.kind],
                     **self._python()}
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
                    profile=self._profile(d),
                    tags=("lab", f"lab{i % 2}", d.kind),
                    python=self._python().get("python"),
                )
                for i, d in enumerate(self.devices)
            ),
        )

    def _profile(self, dev: LabDevice) -> str:
        return self.profile if dev.kind == "host" else dev.profile

    @staticmethod
    def _python() -> dict[str, str]:
        """The system interpreter, as on a real device (not this host's pyenv shim); the
        stand-ins' roots have theirs at the same path."""
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
        return self._pids_besides_sshd(self._namespaces)

    def agent_pids_of(self, dev: LabDevice) -> list[int]:
        return self._pids_besides_sshd([dev.namespace])

    def _pids_besides_sshd(self, namespaces: list[str]) -> list[int]:
        sshd = {d.sshd.pid for d in self.devices if d.sshd}
        pids: list[int] = []
        for ns in namespaces:
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
            _kill_namespace(ns)
        for ns in self._namespaces:
            _sh("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()
        for dev in self.devices:
            self._unmount_root(dev)
        if self._iptables_rule:
            _sh("iptables", "-D", *self._iptables_rule, check=False)
            self._iptables_rule = None
        if self.bridge:
            _sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def reboot(self, dev: LabDevice) -> None:
        """Power-cycle a device: everything running in it is killed, its namespace (network,
        qdiscs, ifb links) deleted and made again, its tmpfs /tmp emptied; its disk (the
        overlay's upper dir, or this host's files) stays. sshd is back when this returns."""
        _kill_namespace(dev.namespace)
        if dev.sshd is not None:
            dev.sshd.wait(5)
        _sh("ip", "netns", "del", dev.namespace, check=False)
        host_if = Path(f"/sys/class/net/msl{self._tag}h{dev.index}"[:15 + len("/sys/class/net/")])
        deadline = time.monotonic() + SSHD_START_TIMEOUT
        while host_if.exists() and time.monotonic() < deadline:  # the kernel frees the netns lazily
            time.sleep(0.05)
        if dev.chroot is not None:
            self._unmount_root(dev)
            shutil.rmtree(dev.dir / "ovwork", ignore_errors=True)
        self._add_netns(dev)
        if dev.chroot is not None:
            self._mount_root(dev)
        self._start_sshd(dev)
        self._wait_port(dev, time.monotonic() + SSHD_START_TIMEOUT)

    def __enter__(self) -> SshLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_namespace(ns: str) -> None:
    for p in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def require_lab(kinds: tuple[str, ...] = ()) -> None:
    """pytest: skip (or, under CI=true, fail) when a lab cannot be built here."""

    from tests.facilities import require

    stand_ins = tuple(k for k in kinds if KINDS.get(k, (None, ""))[0])
    require(stand_in_skip_reason(stand_ins) if stand_ins else skip_reason())


def lab_fixture(n: int, private_dirs: bool = False, kinds: tuple[str, ...] = ()):  # noqa: ANN201
    """A session-scoped pytest fixture yielding a started SshLab of ``n`` devices."""
    import pytest

    @pytest.fixture(scope="session")
    def _lab():  # noqa: ANN202
        require_lab(kinds)
        lab = SshLab(n, private_dirs=private_dirs, kinds=kinds).start()
        try:
            yield lab
        finally:
            lab.close()

    return _lab


def main(argv: list[str]) -> int:
    """``up KIND...``: build a lab of those stand-ins, print its inventory, keep it until Ctrl-C
    or SIGTERM."""
    if not argv or argv[0] != "up" or any(k not in KINDS for k in argv[1:]):
        print(f"usage: sshlab.py up KIND... (kinds: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    kinds = tuple(argv[1:]) or ("pi", "router", "laptop")

    def _stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
        signal.signal(sig, _stop)
    with SshLab(len(kinds), kinds=kinds) as lab:
        for d in lab.devices:
            print(f"{d.name}: {d.host} ({d.kind}, profile {lab._profile(d)})")
        print(f"inventory: {lab.inventory_path}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
