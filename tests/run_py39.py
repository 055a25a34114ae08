"""Run tests under Debian 11's Python 3.9 (the oldest Python meshbed supports), in a chroot of
the cached ``bullseye-amd64`` root (tests/labroots.py) with this repository bind-mounted.

    python3 tests/run_py39.py [PYTEST ARGS...]     # default: DEFAULT_TESTS below

The chroot runs on a throw-away overlay (the cached root stays pristine) inside private mount
and pid namespaces, so every mount goes away with the run and /proc shows only its processes. Its virtualenv is made inside the
chroot from PyPI and cached next to the roots, rebuilt when pyproject.toml changes.
Needs root; exits with pytest's status.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labroots  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV = labroots.CACHE / "py39-venv"
# The unit tests, and the local backend's contract and end-to-end tests.
DEFAULT_TESTS = [
    "tests/unit", "tests/contract", "-k", "local or not contract", "tests/e2e/test_cli_local.py",
    # examples/clients.yaml names real BitTorrent clients, which the 3.9 root does not have
    # (loading it refuses a client not installed): the 3.11 run on the host covers it
    "--deselect", "tests/unit/test_graph.py::test_every_example_renders[clients.yaml]",
    "--deselect", "tests/unit/test_loader.py::test_valid_files_round_trip[examples/clients]",
    # reads python3-libtorrent's files from the root's dist-packages (docker client images)
    "--deselect",
    "tests/unit/test_client_image.py::test_python_clients_bring_their_dist_packages_not_what_site_loads",
]


def _venv_stamp() -> str:
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]


def _in_chroot(root: Path, work: Path, script: str) -> int:
    """Run ``script`` (sh) as root in an overlay of ``root`` with /repo and /opt/venv bound."""
    for d in ("upper", "work", "merged"):
        (work / d).mkdir()
    merged = work / "merged"
    VENV.mkdir(parents=True, exist_ok=True)
    setup = "\n".join([
        "set -e",
        f"mount -t overlay overlay -o lowerdir={root},upperdir={work}/upper,workdir={work}/work {merged}",
        f"mkdir -p {merged}/repo {merged}/opt/venv",
        f"mount -t proc proc {merged}/proc",
        f"mount --rbind /sys {merged}/sys",
        f"mount --rbind /dev {merged}/dev",
        f"mount -t tmpfs tmpfs {merged}/tmp",
        f"mount --bind {REPO} {merged}/repo",
        f"mount --bind {VENV} {merged}/opt/venv",
        f"cp /etc/resolv.conf {merged}/etc/resolv.conf",
        # This host's CA bundle: it may trust an HTTPS proxy between us and PyPI.
        f"mkdir -p {merged}/etc/ssl/certs && cp -L /etc/ssl/certs/ca-certificates.crt {merged}/etc/ssl/certs/",
        f'exec chroot {merged} /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin '
        f'HOME=/root LANG=C.UTF-8 CI="${{CI:-}}" PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 '
        f'PIP_CERT=/etc/ssl/certs/ca-certificates.crt '
        f'/bin/sh -ec {shlex.quote(script)}',
    ])
    # Own pid namespace too: tests that look for "their" processes in /proc see only this run's.
    cmd = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", setup]
    return subprocess.run(cmd).returncode


def main(args: list[str]) -> int:
    root = labroots.ensure("bullseye-amd64", log=lambda m: print(m, file=sys.stderr, flush=True))
    stamp = VENV / ".meshbed-stamp"
    make_venv = "" if stamp.is_file() and stamp.read_text() == _venv_stamp() else (
        "rm -rf /opt/venv/* /opt/venv/.[!.]* 2>/dev/null || true\n"
        "python3 -m venv /opt/venv\n"
        "pip install -q --upgrade pip\n"
        "pip install -q -e '/repo[dev]'\n"
        f"printf %s {_venv_stamp()} > /opt/venv/.meshbed-stamp\n"
    )
    pytest = " ".join(shlex.quote(a) for a in (args or DEFAULT_TESTS))
    script = (
        f"{make_venv}cd /repo\n"
        "python -c 'import sys; assert sys.version_info[:2] == (3, 9), sys.version; print(\"python\", sys.version.split()[0])'\n"
        f"exec python -m pytest -q -ra -p no:cacheprovider {pytest}\n"
    )
    with tempfile.TemporaryDirectory(prefix="meshbed-py39-") as tmp:
        return _in_chroot(root, Path(tmp), script)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
