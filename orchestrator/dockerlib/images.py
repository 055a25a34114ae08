"""The peer image: ``Dockerfile`` (repo root) + ``peer.pyz``, on a base image.

With no registry reachable the base is made offline from the host's own Debian Python:
the interpreter, its stdlib (trimmed) and the shared libraries ``ldd`` lists, packed into a
rootfs tarball and ``docker import``-ed as ``meshbed/base:offline`` (about 2 s).
``debootstrap`` is the slower alternative, only when asked.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from orchestrator import settings
from orchestrator.dockerlib import labels
from orchestrator.errors import DeployError

DEFAULT_BASE = "python:3.12-slim"
OFFLINE_BASE = "meshbed/base:offline"
PYTHON_LABEL = "meshbed.python"  # on the offline base: the host interpreter it was made from
PEER_REPO = "meshbed/peer"
REGISTRY_HOST = "registry-1.docker.io"

# stdlib parts the agent never needs: keeps the offline base small. The host's own
# __pycache__ is kept (plain .pyc only): without it every container start compiles asyncio
# & co. again, which costs ~0.5 s of CPU per agent.
_STDLIB_SKIP = {
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "distutils", "venv", "unittest", "config-3.11-x86_64-linux-gnu",
}
_DYNLOAD_SKIP = re.compile(r"^(_test|_xxtest|xxlimited|_ctypes_test|_tkinter|_curses|readline)")

DOCKERFILE_FALLBACK = """\
ARG BASE=python:3.12-slim
FROM ${BASE}
COPY peer.pyz /opt/meshbed/peer.pyz
ENTRYPOINT ["python3", "/opt/meshbed/peer.pyz"]
"""


def dockerfile_text() -> str:
    """The repo's Dockerfile when running from a checkout, else the same text built in."""
    repo_file = Path(__file__).resolve().parents[3] / "Dockerfile"
    if repo_file.is_file():
        return repo_file.read_text()
    return DOCKERFILE_FALLBACK


def peer_tag(client: Any, pyz: Path, base: str) -> str:
    """Image tag from the pyz and the base image's id: a changed agent (or a rebuilt base)
    gives a new tag, so a rebuild. The base must be present."""
    h = hashlib.sha256()
    h.update(pyz.read_bytes())
    h.update(client.images.get(base).id.encode())
    h.update(dockerfile_text().encode())
    return f"{PEER_REPO}:{h.hexdigest()[:12]}"


def image_exists(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def registry_reachable(host: str = REGISTRY_HOST, timeout: float = 2.0) -> bool:
    """Whether the registry's name resolves and its port 443 accepts a connection, each
    within ``timeout``: a firewalled registry must not make `up` hang in a pull.

    getaddrinfo has no timeout of its own, so it runs in a daemon thread we stop waiting for.
    """
    result: list[bool] = []

    def resolve() -> None:
        try:
            addrs = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except OSError:
            result.append(False)
            return
        for family, kind, proto, _, sockaddr in addrs[:2]:
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(timeout)
                    sock.connect(sockaddr)
                result.append(True)
                return
            except OSError:
                continue
        result.append(False)

    t = threading.Thread(target=resolve, daemon=True)
    t.start()
    t.join(timeout * 3)
    return bool(result and result[0])


# --- offline base from the host's Python -------------------------------------------------


def _host_python(python: str) -> tuple[Path, Path]:
    """(interpreter binary, stdlib dir) of the host's system Python (3.9+, as the agent)."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys,sysconfig;print(sys.executable);"
             "print(sysconfig.get_paths()['stdlib']);print(int(sys.version_info >= (3, 9)))"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError) as exc:
        raise DeployError(f"backend docker: no usable {python} for an offline base: {exc}") from exc
    if out[2] != "1":
        raise DeployError(f"backend docker: {python} is older than 3.9; the agent needs 3.9+")
    return Path(os.path.realpath(out[0])), Path(out[1])


def _ldd(paths: list[Path]) -> set[str]:
    """Shared libraries (and the loader) the given ELF files need, as ldd names them."""
    libs: set[str] = set()
    for start in range(0, len(paths), 64):
        chunk = [str(p) for p in paths[start:start + 64]]
        proc = subprocess.run(["ldd", *chunk], capture_output=True, text=True, timeout=30)
        for line in proc.stdout.splitlines():
            m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if m:
                libs.add(m.group(1))
    return libs


def _canonical(path: str) -> str:
    """Path with its directory resolved (merged-/usr hosts: /lib -> /usr/lib)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _add_file(tar: tarfile.TarFile, src: str, arcname: str, seen: set[str]) -> None:
    if arcname in seen:
        return
    seen.add(arcname)
    info = tar.gettarinfo(os.path.realpath(src), arcname=arcname.lstrip("/"))
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with open(os.path.realpath(src), "rb") as fh:
        tar.addfile(info, fh)


def _add_dir(tar: tarfile.TarFile, arcname: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(arcname.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info)


def _add_symlink(tar: tarfile.TarFile, arcname: str, target: str) -> None:
    info = tarfile.TarInfo(arcname.lstrip("/"))
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arcname.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def write_host_rootfs(out: Path, python: str = "/usr/bin/python3",
                      extra: Sequence[tuple[str, str]] = (),
                      data: Sequence[tuple[str, bytes]] = ()) -> int:
    """Write a minimal rootfs tarball (python + stdlib + libs) to ``out``; return file count.

    ``extra``: more host files as (host path, path in the image); ELF ones bring the shared
    libraries they need. ``data``: files made on the fly, (path in the image, bytes).
    """
    exe, stdlib = _host_python(python)
    seen: set[str] = set()
    elves: list[Path] = [exe]
    with tarfile.open(out, "w") as tar:
        # merged-/usr hosts have /bin, /lib, /lib64 as symlinks: keep that shape
        for top in ("/bin", "/sbin", "/lib", "/lib64"):
            if os.path.islink(top):
                _add_symlink(tar, top, os.readlink(top))
        for d in ("/tmp", "/data", "/opt/meshbed", "/etc", "/root", "/run", "/proc", "/sys",
                  "/dev"):
            _add_dir(tar, d, 0o1777 if d == "/tmp" else 0o755)
        _add_bytes(tar, "/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _add_bytes(tar, "/etc/group", b"root:x:0:\n")
        exe_arc = _canonical(str(exe))
        _add_file(tar, str(exe), exe_arc, seen)
        _add_symlink(tar, os.path.join(os.path.dirname(exe_arc), "python3"), exe.name)
        for root, dirs, files in os.walk(stdlib):
            dirs[:] = [d for d in dirs if d not in _STDLIB_SKIP and not d.startswith("site-")
                       and d != "dist-packages"]
            for f in files:
                src = os.path.join(root, f)
                # optimized .pyc are never used; a dangling link (Debian's sitecustomize.py)
                if ".opt-" in f or not os.path.exists(src):
                    continue
                if f.endswith(".so"):
                    if _DYNLOAD_SKIP.match(f):
                        continue
                    elves.append(Path(src))
                _add_file(tar, src, _canonical(src), seen)
        for src, arc in extra:
            if is_elf(src):
                elves.append(Path(src))
            _add_file(tar, src, arc, seen)
        for arc, blob in data:
            seen.add(arc)
            _add_bytes(tar, arc, blob)
        for lib in sorted(_ldd(elves)):
            _add_file(tar, lib, _canonical(lib), seen)
    return len(seen)


def build_offline_base(client: Any, tag: str = OFFLINE_BASE, python: str = "/usr/bin/python3",
                       say: Callable[[str], None] = print,
                       extra: Sequence[tuple[str, str]] = (), data: Sequence[tuple[str, bytes]] = (),
                       changes: Sequence[str] = (), what: str = "base image") -> str:
    """``docker import`` a rootfs made from the host's Python as ``tag`` (plus ``extra`` and
    ``data`` files and Dockerfile ``changes``: how the client images are made too)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="meshbed-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        n = write_host_rootfs(tarball, python, extra, data)
        client.api.import_image(
            src=str(tarball),
            repository=tag.rsplit(":", 1)[0],
            tag=tag.rsplit(":", 1)[1] if ":" in tag else "latest",
            changes=[
                "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                "ENV LANG=C.UTF-8",
                "ENV PYTHONDONTWRITEBYTECODE=1",
                "WORKDIR /data",
                f"LABEL {labels.MANAGED}=1",
                f"LABEL {PYTHON_LABEL}={python}",
                *changes,
            ],
        )
    if not image_exists(client, tag):
        raise DeployError(f"backend docker: importing {tag} did not produce an image")
    say(f"docker: {what} {tag} made from {python} ({n} files) in "
        f"{time.monotonic() - t0:.1f} s")
    return tag


def build_debootstrap_base(client: Any, tag: str = OFFLINE_BASE, suite: str = "bookworm",
                           mirror: str = "http://deb.debian.org/debian",
                           say: Callable[[str], None] = print) -> str:
    """The slower alternative: a minimal Debian with python3 (needs a Debian mirror)."""
    if shutil.which("debootstrap") is None:
        raise DeployError("backend docker: debootstrap is not installed")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="meshbed-debootstrap-") as tmp:
        root = Path(tmp) / "root"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", suite, str(root), mirror],
            check=True, capture_output=True, timeout=1800,
        )
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True,
                       timeout=600)
        client.api.import_image(src=str(tarball), repository=tag.rsplit(":", 1)[0],
                                tag=tag.rsplit(":", 1)[1], changes=["WORKDIR /data"])
    say(f"docker: base image {tag} made with debootstrap in {time.monotonic() - t0:.0f} s")
    return tag


# --- the peer image -------------------------------------------------------------------------


# Run by the base's own interpreter: adds unchecked hash-based .pyc files (PEP 552) beside
# the sources in the zipapp; zipimport loads them (it never writes a cache itself), which
# halves each agent's start-up CPU. Another Python ignores them (bad magic) and compiles.
_PRECOMPILE = """
import importlib.util, marshal, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        data = zin.read(info)
        zout.writestr(info, data)
        if info.filename.endswith(".py") and info.filename != "__main__.py":
            code = compile(data, info.filename, "exec", dont_inherit=True)
            pyc = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
            pyc += importlib.util.source_hash(data) + marshal.dumps(code)
            zout.writestr(info.filename[:-3] + ".pyc", pyc)
"""


def precompiled_pyz(pyz: Path, python: str, out: Path) -> Optional[Path]:
    """``pyz`` plus .pyc files made by ``python`` (the base image's interpreter, present on
    this host), or None when that is not possible."""
    if not os.path.exists(python):
        return None
    try:
        subprocess.run([python, "-c", _PRECOMPILE, str(pyz), str(out)], check=True,
                       capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return out


def _context_tar(pyz: Path) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile_text().encode())
        info = tar.gettarinfo(str(pyz), arcname="peer.pyz")
        info.uid = info.gid = 0
        info.mode = 0o644
        with open(pyz, "rb") as fh:
            tar.addfile(info, fh)
    buf.seek(0)
    return buf


def build_peer_image(client: Any, pyz: Path, base: str, tag: Optional[str] = None,
                     say: Callable[[str], None] = print) -> str:
    """Build Dockerfile + pyz on ``base`` (which must be present locally: no pulls)."""
    import docker.errors

    tag = tag or peer_tag(client, pyz, base)
    t0 = time.monotonic()
    # a base made from this host's Python names it: precompile the agent with it
    base_python = ((client.images.get(base).attrs.get("Config") or {}).get("Labels") or {}).get(
        PYTHON_LABEL)
    tmp = tempfile.TemporaryDirectory(prefix="meshbed-pyz-")
    try:
        shipped = pyz
        if base_python:
            shipped = precompiled_pyz(pyz, base_python, Path(tmp.name) / "peer.pyz") or pyz
        client.images.build(
            fileobj=_context_tar(shipped), custom_context=True, tag=tag, pull=False, rm=True,
            forcerm=True, buildargs={"BASE": base}, labels={labels.MANAGED: "1"},
        )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise DeployError(f"backend docker: building {tag} on {base} failed: {exc}") from exc
    finally:
        tmp.cleanup()
    say(f"docker: built {tag} on {base} in {time.monotonic() - t0:.1f} s")
    _remove_stale(client, tag)
    return tag


def _remove_stale(client: Any, keep: str, min_age: float = 3600.0) -> None:
    """Peer images of earlier agents, older than ``min_age`` seconds (a younger one may be
    about to be used by another mesh or a swarm service); ones in use stay."""
    import docker.errors

    cutoff = time.time() - min_age
    for img in client.images.list(name=PEER_REPO):
        created = str(img.attrs.get("Created", ""))[:19]
        try:
            old = time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%S")) - time.timezone < cutoff
        except ValueError:
            old = False
        if keep in img.tags or not old:
            continue
        for t in img.tags:
            try:
                client.images.remove(t, noprune=False)
            except docker.errors.APIError:
                pass


def ensure_base(client: Any, base: Optional[str], offline: Optional[bool],
                say: Callable[[str], None] = print) -> str:
    """A base image present locally. ``offline=None`` decides: pull ``base`` when a registry
    resolves, else make the offline base."""
    import docker.errors

    wanted = base or DEFAULT_BASE
    if image_exists(client, wanted):
        return wanted
    if offline is None:
        # MESHBED_OFFLINE=1: never contact a registry (air-gapped labs, and the test suite)
        offline = settings.offline() or not registry_reachable()
    if not offline:
        try:
            client.images.pull(wanted)
            return wanted
        except docker.errors.APIError as exc:
            say(f"docker: cannot pull {wanted} ({str(exc)[:120]}); making an offline base")
    if base and base != OFFLINE_BASE:
        say(f"docker: base {base} is not available; using {OFFLINE_BASE}")
    if image_exists(client, OFFLINE_BASE):
        return OFFLINE_BASE
    return build_offline_base(client, say=say)


def ensure_peer_image(client: Any, pyz: Path, base: Optional[str] = None,
                      offline: Optional[bool] = None, say: Callable[[str], None] = print) -> str:
    """The peer image for this pyz, built when missing; its tag."""
    # the usual case: already built for this agent on some base
    if base is None:
        for candidate in (DEFAULT_BASE, OFFLINE_BASE):
            if image_exists(client, candidate):
                tag = peer_tag(client, pyz, candidate)
                if image_exists(client, tag):
                    return tag
    resolved = ensure_base(client, base, offline, say)
    tag = peer_tag(client, pyz, resolved)
    if image_exists(client, tag):
        return tag
    return build_peer_image(client, pyz, resolved, tag, say)
