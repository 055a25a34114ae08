"""Root filesystems for the device lab and the Python 3.9 test run, built offline from Debian
packages and cached between runs.

    python3 tests/labroots.py build bullseye-amd64 bullseye-arm64 busybox-router
    python3 tests/labroots.py path bullseye-arm64

Roots live under ``$MESHBED_LAB_CACHE`` (default /var/cache/meshbed-lab), one directory each,
complete once it holds ``.meshbed-root`` (its recipe); a missing or different stamp rebuilds it.
The Debian mirror is the one this machine's apt is configured with (no host is named here).

- ``bullseye-amd64``: Debian 11 x86-64 with Python 3.9 and python3-venv (the orchestrator's
  oldest supported Python; the CI's 3.9 run uses it).
- ``bullseye-arm64``: Debian 11 arm64 with Python 3.9, run through qemu-user via binfmt
  (a Raspberry Pi 4 stand-in).
- ``busybox-router``: busybox (ash, no bash, no systemd) plus Debian 11's Python 3.9 and the
  libraries it links, copied out of ``bullseye-amd64`` (an OpenWrt-like router stand-in).

Needs root and ``debootstrap``; the arm64 root needs ``qemu-user-static`` and
``binfmt-support`` (see ``enable_binfmt``); the router needs ``busybox-static``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

CACHE = Path(os.environ.get("MESHBED_LAB_CACHE", "/var/cache/meshbed-lab"))
STAMP = ".meshbed-root"
BUSYBOX = "/bin/busybox"
# Bump a recipe to rebuild the cached roots made from it.
RECIPES = {
    "bullseye-amd64": "debootstrap amd64 minbase python3,python3-venv,ca-certificates,procps,iproute2 v1",
    "bullseye-arm64": "debootstrap arm64 minbase python3,procps,iproute2 v1",
    "busybox-router": "busybox + python3.9 from bullseye-amd64 v2",
}


def debian_mirror() -> str:
    """The Debian archive URI apt is configured with (not the security archive)."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0]
            for uri in re.findall(r"(?:https?|file)://\S+", line):
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    raise RuntimeError("no Debian archive (…/debian) in /etc/apt/sources.list*")


def _run(*args: str, timeout: float = 1800) -> None:
    subprocess.run(list(args), check=True, timeout=timeout)


def root_path(name: str) -> Path:
    return CACHE / name


def is_built(name: str) -> bool:
    stamp = root_path(name) / STAMP
    return stamp.is_file() and stamp.read_text().strip() == RECIPES[name]


def enable_binfmt() -> None:
    """Let this kernel run aarch64 binaries through qemu-user (idempotent)."""
    mnt = Path("/proc/sys/fs/binfmt_misc")
    if not (mnt / "register").exists():
        _run("mount", "-t", "binfmt_misc", "binfmt_misc", str(mnt))
    if not (mnt / "qemu-aarch64").exists():
        _run("update-binfmts", "--enable", "qemu-aarch64")
    if not (mnt / "qemu-aarch64").exists():
        raise RuntimeError("qemu-aarch64 binfmt not registered (apt-get install qemu-user-static binfmt-support)")


def _debootstrap(arch: str, include: str, dest: Path) -> None:
    _run("debootstrap", f"--arch={arch}", "--variant=minbase", f"--include={include}",
         "bullseye", str(dest), debian_mirror())
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):  # keep the cache small
        for f in (dest / sub).glob("*"):
            if f.is_file():
                f.unlink()


def _build_amd64(dest: Path) -> None:
    _debootstrap("amd64", RECIPES["bullseye-amd64"].split()[3], dest)


def _build_arm64(dest: Path) -> None:
    enable_binfmt()
    _debootstrap("arm64", RECIPES["bullseye-arm64"].split()[3], dest)


def _shared_libs(root: Path, binary: str) -> set[str]:
    """The shared libraries ``binary`` (a path inside ``root``) loads, as paths inside root."""
    out = subprocess.run(["chroot", str(root), "/usr/bin/ldd", binary], check=True,
                         capture_output=True, text=True).stdout
    libs = set()
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.add(m.group(1))
    return libs


def _copy_into(src_root: Path, rel: str, dest: Path) -> None:
    src, dst = src_root / rel.lstrip("/"), dest / rel.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "test", "tests", "idlelib", "tkinter"))
    else:  # a library's symlinks point inside src_root, so resolve them there
        real = subprocess.run(["chroot", str(src_root), "realpath", rel], check=True,
                              capture_output=True, text=True).stdout.strip()
        shutil.copy2(src_root / real.lstrip("/"), dst)


def _build_router(dest: Path) -> None:
    """busybox's applets as the whole userland, plus CPython 3.9 and its libraries."""
    base = ensure("bullseye-amd64")
    if not os.access(BUSYBOX, os.X_OK):
        raise RuntimeError(f"{BUSYBOX} missing (apt-get install busybox-static)")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "dev", "var/run", "lib64"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True).stdout
    for applet in applets.split():
        link = dest / applet
        if applet.endswith("/busybox") or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for rel in ["/usr/bin/python3.9", "/usr/lib/python3.9", *sorted(_shared_libs(base, "/usr/bin/python3.9"))]:
        _copy_into(base, rel, dest)
    for mod in (dest / "usr/lib/python3.9/lib-dynload").glob("*.so"):
        for lib in _shared_libs(base, f"/usr/lib/python3.9/lib-dynload/{mod.name}"):
            if not (dest / lib.lstrip("/")).exists():
                _copy_into(base, lib, dest)
    for lib in DLOPENED:  # glibc loads these at run time; ldd does not list them
        for found in (base / "lib/x86_64-linux-gnu").glob(lib):
            _copy_into(base, f"/lib/x86_64-linux-gnu/{found.name}", dest)
    (dest / "usr/bin/python3").symlink_to("python3.9")
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/ash\n")
    (dest / "etc/group").write_text("root:x:0:\n")
    (dest / "etc/openwrt_release").write_text("DISTRIB_ID='OpenWrt'\nDISTRIB_DESCRIPTION='meshbed lab router'\n")


# libgcc_s for pthread_cancel (thread exit), NSS for users and host names
DLOPENED = ("libgcc_s.so.1", "libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "bullseye-amd64": _build_amd64,
    "bullseye-arm64": _build_arm64,
    "busybox-router": _build_router,
}


def ensure(name: str, log: Optional[Callable[[str], None]] = None) -> Path:
    """The cached root ``name``, built first when missing or made from an older recipe."""
    if os.geteuid() != 0:
        raise RuntimeError("building a lab root needs root")
    dest = root_path(name)
    if is_built(name):
        return dest
    if log:
        log(f"building {name} in {dest}")
    tmp = dest.with_name(f"{name}.build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        BUILDERS[name](tmp)
        (tmp / STAMP).write_text(RECIPES[name] + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("build", "path") or any(n not in RECIPES for n in argv[1:]):
        print(f"usage: labroots.py build|path NAME... (names: {', '.join(RECIPES)})", file=sys.stderr)
        return 2
    for name in argv[1:]:
        if argv[0] == "build":
            ensure(name, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(root_path(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
