"""A multi-engine swarm on one Linux machine: `meshbed swarm lab up|down` and the test fixture.

Each engine is a real dockerd in its own network namespace (and UTS namespace, for a distinct
node hostname), with its own data root, exec root, socket and containerd namespace, joined to
one bridge. The first is the swarm manager, the others join as workers; the peer image is built
offline on the manager and moved to each worker with save/load (no registry needed). Every
node carries the label ``meshbed.engine`` (the address of its own Docker API), which is how the
swarm backend reaches a worker's engine to remove the mesh's volumes there.

Everything is named ``mbsl<ID>...`` and recorded in ``lab.json`` before it is created, so
`down` (from any shell, after a crash too) removes exactly what this lab made: daemons and their
children, namespaces, veths, the bridge, its iptables rule, mounts, cgroups, the data folder.

``nsenter --net`` rather than ``ip netns exec``: the latter remounts /sys, and dockerd then
finds no cgroup mounts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from orchestrator.backends.swarm.teardown import ENGINE_LABEL  # the Docker API of a node's engine

LAB_FILE = "lab.json"
ROLE_LABEL = "lab.engine"  # node label: manager | worker1 | worker2 ... (for placement)
NETNS_DIR = Path("/var/run/netns")
START_TIMEOUT = 60.0

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class LabError(RuntimeError):
    pass


@dataclass
class Engine:
    role: str  # manager, worker1, worker2 ...
    netns: str
    veth: str  # host side; the namespace side is renamed eth0
    ip: str
    root: str  # data root, exec root, socket, logs live under it
    pid: int = 0

    @property
    def socket(self) -> str:
        return f"{self.root}/docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def hostname(self) -> str:
        return self.netns


@dataclass
class Lab:
    lab_id: str
    root: str
    bridge: str
    subnet: str
    engines: list[Engine] = field(default_factory=list)
    image: str = ""

    @property
    def manager(self) -> Engine:
        return self.engines[0]

    @property
    def workers(self) -> list[Engine]:
        return self.engines[1:]

    @property
    def docker_host(self) -> str:
        """What DOCKER_HOST must be for meshbed to drive this swarm."""
        return self.manager.docker_host

    def engine(self, role: str) -> Engine:
        for e in self.engines:
            if e.role == role:
                return e
        raise KeyError(role)

    def save(self) -> None:
        path = Path(self.root) / LAB_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, root: Path) -> Lab:
        data = json.loads((root / LAB_FILE).read_text())
        engines = [Engine(**e) for e in data.pop("engines")]
        return cls(engines=engines, **data)

    def client(self, role: str = "manager", timeout: int = 30) -> Any:
        import docker

        return docker.DockerClient(base_url=self.engine(role).docker_host, timeout=timeout)


# --- small helpers ----------------------------------------------------------------------------
def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def unavailable_reason() -> Optional[str]:
    """Why a lab cannot be made on this machine (None: it can)."""
    if os.geteuid() != 0:
        return "the swarm lab needs root (network namespaces, bridges, dockerd)"
    for tool in ("dockerd", "nsenter", "unshare", "ip", "iptables"):
        if shutil.which(tool) is None:
            return f"the swarm lab needs {tool} (apt-get install docker.io iproute2 iptables util-linux)"
    return None


def _used_subnets() -> set[str]:
    out = _run("ip", "-4", "-o", "addr", "show", check=False).stdout
    used = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            net = ipaddress.ip_interface(parts[parts.index("inet") + 1]).network
            used.add(str(net))
    return used


def _pick_subnet() -> ipaddress.IPv4Network:
    used = _used_subnets()
    for third in range(10, 250):
        net = ipaddress.IPv4Network(f"10.231.{third}.0/24")
        if str(net) not in used:
            return net
    raise LabError("no free 10.231.X.0/24 subnet for the lab bridge")


def default_root(lab_id: str) -> Path:
    return Path("/var/lib") / f"mbsl{lab_id}"


# --- up -----------------------------------------------------------------------------------------
def up(workers: int = 2, lab_id: Optional[str] = None, root: Optional[Path] = None,
       build_image: bool = True, say: Say = _quiet) -> Lab:
    """Bring up a manager and ``workers`` workers; on any failure remove what was made."""
    reason = unavailable_reason()
    if reason:
        raise LabError(reason)
    lab_id = lab_id or uuid.uuid4().hex[:6]
    if not re.fullmatch(r"[a-z0-9]{1,6}", lab_id) or workers > 8:
        # interface names are at most 15 bytes: mbsl + id + w8 + n
        raise LabError(f"lab id {lab_id!r}: 1-6 of [a-z0-9], and at most 8 workers")
    root_dir = root or default_root(lab_id)
    root_dir.mkdir(parents=True, exist_ok=False)
    net = _pick_subnet()
    hosts = list(net.hosts())
    lab = Lab(lab_id=lab_id, root=str(root_dir), bridge=f"mbsl{lab_id}", subnet=str(net))
    roles = ["manager"] + [f"worker{i}" for i in range(1, workers + 1)]
    for i, role in enumerate(roles):
        short = "m" if role == "manager" else f"w{i}"
        lab.engines.append(Engine(role=role, netns=f"mbsl{lab_id}-{short}", veth=f"mbsl{lab_id}{short}",
                                  ip=str(hosts[i + 1]), root=str(root_dir / short)))
    lab.save()
    try:
        _make_network(lab, hosts[0], net.prefixlen)
        for e in lab.engines:
            _start_engine(lab, e)
        lab.save()
        for e in lab.engines:
            _wait_engine(e)
        say(f"lab {lab_id}: {len(lab.engines)} engines up on {lab.bridge} ({lab.subnet})")
        _form_swarm(lab)
        say(f"lab {lab_id}: swarm formed (manager {lab.manager.ip}, workers "
            f"{', '.join(w.ip for w in lab.workers)})")
        if build_image:
            lab.image = _load_peer_image(lab, say)
            lab.save()
    except BaseException:
        down(lab)
        raise
    return lab


def _make_network(lab: Lab, gateway: ipaddress.IPv4Address, prefix: int) -> None:
    _run("ip", "link", "add", lab.bridge, "type", "bridge")
    _run("ip", "addr", "add", f"{gateway}/{prefix}", "dev", lab.bridge)
    _run("ip", "link", "set", lab.bridge, "up")
    # Docker's FORWARD policy is DROP; with br_netfilter, bridged traffic passes FORWARD too
    _run("iptables", "-I", "FORWARD", "-i", lab.bridge, "-o", lab.bridge, "-m", "comment",
         "--comment", lab.bridge, "-j", "ACCEPT")
    for e in lab.engines:
        _run("ip", "netns", "add", e.netns)
        _run("ip", "link", "add", e.veth, "type", "veth", "peer", "name", e.veth + "n")
        _run("ip", "link", "set", e.veth, "master", lab.bridge, "up")
        _run("ip", "link", "set", e.veth + "n", "netns", e.netns)
        ns = ("ip", "-n", e.netns)
        _run(*ns, "link", "set", e.veth + "n", "name", "eth0")
        _run(*ns, "addr", "add", f"{e.ip}/{prefix}", "dev", "eth0")
        _run(*ns, "link", "set", "eth0", "up")
        _run(*ns, "link", "set", "lo", "up")
        # no default route: nothing in the lab can reach (or wait on) the outside world


def _start_engine(lab: Lab, e: Engine) -> None:
    root = Path(e.root)
    root.mkdir(parents=True, exist_ok=True)
    dockerd = [
        "dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
        "-H", e.docker_host, "--pidfile", f"{root}/dockerd.pid",
        "--containerd-namespace", e.netns, "--containerd-plugins-namespace", e.netns + "-p",
        "--cgroup-parent", e.netns, "--bip", "172.29.0.1/24",
    ]
    # a UTS namespace of its own: the swarm node's hostname is the engine's netns name
    cmd = ["nsenter", f"--net={NETNS_DIR / e.netns}", "unshare", "--uts", "--",
           "sh", "-c", f'hostname {e.hostname} && exec "$@"', "sh", *dockerd]
    with open(root / "dockerd.log", "ab") as log:
        # without it a swarm task first tries the registry for its image, even when present
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    e.pid = proc.pid


def _wait_engine(e: Engine) -> None:
    import docker

    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if e.pid and not _alive(e.pid):
            raise LabError(f"dockerd of {e.role} exited: {_tail(Path(e.root) / 'dockerd.log')}")
        try:
            docker.DockerClient(base_url=e.docker_host, timeout=5).ping()
            return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = str(exc)
        time.sleep(0.3)
    raise LabError(f"dockerd of {e.role} did not answer in {START_TIMEOUT:.0f} s ({last[:100]})")


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _form_swarm(lab: Lab) -> None:
    mgr = lab.client()
    m = lab.manager
    # overlay subnets far from the underlay so VXLAN never routes into itself
    mgr.swarm.init(advertise_addr=m.ip, listen_addr=f"{m.ip}:2377",
                   default_addr_pool=["10.232.0.0/16"], subnet_size=24)
    token = mgr.swarm.attrs["JoinTokens"]["Worker"]
    for w in lab.workers:
        lab.client(w.role).swarm.join(remote_addrs=[f"{m.ip}:2377"], join_token=token,
                                      advertise_addr=w.ip, listen_addr=f"{w.ip}:2377")
    by_host = {e.hostname: e for e in lab.engines}
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        nodes = mgr.nodes.list()
        ready = [n for n in nodes if n.attrs["Status"]["State"] == "ready"]
        if len(ready) == len(lab.engines):
            break
        if time.monotonic() > deadline:
            raise LabError(f"swarm: {len(ready)}/{len(lab.engines)} nodes ready")
        time.sleep(0.3)
    for n in nodes:
        e = by_host[n.attrs["Description"]["Hostname"]]
        spec = dict(n.attrs["Spec"])
        spec["Labels"] = {**(spec.get("Labels") or {}), ENGINE_LABEL: e.docker_host, ROLE_LABEL: e.role}
        n.update(spec)


def _load_peer_image(lab: Lab, say: Say) -> str:
    from orchestrator.dockerlib import images
    from orchestrator.pyz import ensure_pyz

    mgr = lab.client(timeout=300)
    tag = str(images.ensure_peer_image(mgr, ensure_pyz(), None, True, say))
    for w in lab.workers:
        stream = mgr.api.get_image(tag)  # chunks of the `docker save` tarball
        lab.client(w.role, timeout=300).api.load_image(stream)
    say(f"lab {lab.lab_id}: image {tag} on {len(lab.engines)} engines")
    return tag


# --- engines going away ---------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of ours is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _procs_in_netns(netns: str) -> list[int]:
    """Every process whose network namespace is the lab's ``netns`` (dockerd, containerd,
    shims, containers): matched by namespace inode, never by name."""
    try:
        target = os.stat(NETNS_DIR / netns).st_ino
    except OSError:
        return []
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.stat(d / "ns/net").st_ino == target:
                found.append(int(d.name))
        except OSError:
            continue
    return found


def _procs_in_cgroup(cgroup: str) -> list[int]:
    """Container processes live in the root netns of their container, not the engine's:
    find them by the lab's cgroup parent."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "cgroup").read_text()
        except OSError:
            continue
        if f"/{cgroup}/" in text or text.rstrip().endswith(f"/{cgroup}"):
            found.append(int(d.name))
    return found


def stop_engine(lab: Lab, role: str, hard: bool = True) -> None:
    """Take one engine away mid-run (node loss): SIGKILL its dockerd, containerd, shims and
    containers, as a host losing power would."""
    e = lab.engine(role)
    _kill_engine(e, signal.SIGKILL if hard else signal.SIGTERM)


def restart_engine(lab: Lab, role: str) -> None:
    """Start a stopped engine again on its data root: it rejoins the swarm by itself."""
    e = lab.engine(role)
    _start_engine(lab, e)
    lab.save()
    _wait_engine(e)


def _kill_engine(e: Engine, sig: signal.Signals) -> None:
    for _ in range(5):
        pids = set(_procs_in_netns(e.netns)) | set(_procs_in_cgroup(e.netns))
        if e.pid and _alive(e.pid):
            pids.add(e.pid)
        pids.discard(os.getpid())
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            for p in pids:
                _reap(p)
            time.sleep(0.1)
        sig = signal.SIGKILL
    if e.pid:
        _reap(e.pid)


# --- down -----------------------------------------------------------------------------------------
def down(lab: Lab, say: Say = _quiet) -> list[str]:
    """Remove everything the lab made; what could not be removed (empty when all is gone)."""
    # containers first, while their engine still answers: shims outlive a stopped dockerd
    for e in lab.engines:
        if e.pid and _alive(e.pid):
            try:
                cl = lab.client(e.role, timeout=20)
                for c in cl.api.containers(all=True):
                    try:
                        cl.api.remove_container(c["Id"], force=True, v=True)
                    except Exception:  # noqa: BLE001 - vanishing under us is fine
                        pass
            except Exception:  # noqa: BLE001 - engine already gone: killed below
                pass
    for e in lab.engines:
        _kill_engine(e, signal.SIGTERM)
    problems: list[str] = []
    root = Path(lab.root)
    for mnt in sorted(_mounts_under(root), key=len, reverse=True):
        _run("umount", "-l", mnt, check=False)
    for e in lab.engines:
        if (NETNS_DIR / e.netns).exists():
            _run("ip", "netns", "delete", e.netns, check=False)
        if Path(f"/sys/class/net/{e.veth}").exists():
            _run("ip", "link", "delete", e.veth, check=False)
        for base in _cgroup_dirs(e.netns):
            for sub in sorted(base.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                try:
                    sub.rmdir()  # cgroup dirs go with rmdir once empty, files and all
                except OSError:
                    pass
    while _run("iptables", "-D", "FORWARD", "-i", lab.bridge, "-o", lab.bridge, "-m", "comment",
               "--comment", lab.bridge, "-j", "ACCEPT", check=False).returncode == 0:
        pass
    if Path(f"/sys/class/net/{lab.bridge}").exists():
        _run("ip", "link", "delete", lab.bridge, check=False)
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    problems = leftovers(lab)
    say(f"lab {lab.lab_id}: " + ("removed" if not problems else "left " + ", ".join(problems)))
    return problems


def _cgroup_dirs(name: str) -> list[Path]:
    """The cgroup folders named ``name`` (the engines' --cgroup-parent) under each hierarchy:
    at its root or under our own cgroup, where a relative parent lands."""
    out: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        for ctrl in (ctrls.replace("name=", "").split(",") if ctrls else ["unified", ""]):
            base = Path("/sys/fs/cgroup") / ctrl
            for cand in {base / name, base / path.lstrip("/") / name}:
                if cand.is_dir() and cand not in out:
                    out.append(cand)
    return out


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    out = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4]
            if mnt.startswith(prefix):
                out.append(mnt)
    except OSError:
        pass
    return out


def leftovers(lab: Lab) -> list[str]:
    """Whatever of the lab is still on the machine (empty after `down`)."""
    found: list[str] = []
    for e in lab.engines:
        found += [f"process {p}" for p in _procs_in_netns(e.netns) + _procs_in_cgroup(e.netns)
                  if p != os.getpid()]
        if (NETNS_DIR / e.netns).exists():
            found.append(f"netns {e.netns}")
        if Path(f"/sys/class/net/{e.veth}").exists():
            found.append(f"veth {e.veth}")
        found += [f"cgroup {p}" for p in _cgroup_dirs(e.netns)]
    if Path(f"/sys/class/net/{lab.bridge}").exists():
        found.append(f"bridge {lab.bridge}")
    rules = _run("iptables", "-S", "FORWARD", check=False).stdout
    found += [f"iptables {r}" for r in rules.splitlines() if lab.bridge in r]
    found += [f"mount {m}" for m in _mounts_under(Path(lab.root))]
    if Path(lab.root).exists():
        found.append(f"directory {lab.root}")
    return found


def find_labs(base: Path = Path("/var/lib")) -> list[Lab]:
    out = []
    for d in sorted(base.glob("mbsl*")):
        if (d / LAB_FILE).is_file():
            out.append(Lab.load(d))
    return out
