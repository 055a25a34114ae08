"""Client images for `client:` nodes on the docker backend, built offline from this host.

Like the offline base (orchestrator/dockerlib/images.py), an image is a rootfs made from the
host's own files and ``docker import``-ed: the host's Python and stdlib, the client's Debian
build (its binary and the shared libraries ``ldd`` lists; for Python clients the modules a
test import loads from dist-packages) and the translator (``orchestrator.clients`` + ``peer``
+ prometheus_client) as plain files under /opt/meshbed/py. The container runs
``python3 -m orchestrator.clients.node KIND`` with the agent's arguments, so the orchestrator
talks to it as to an agent. Tags carry a digest of everything copied: a changed client,
translator or recipe gives a new image.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from orchestrator.clients.libtorrent_session import SYSTEM_PYTHON

REPO = "meshbed/client-"  # + kind
CODE_DIR = "/opt/meshbed/py"  # the translator's packages in the image


@dataclass(frozen=True)
class Recipe:
    """What a client image holds beyond the host's Python."""

    commands: tuple[str, ...] = ()  # looked up on PATH; ELF ones bring their libraries
    modules: tuple[str, ...] = ()  # imported by the system python3; their dist-packages come
    globs: tuple[str, ...] = ()  # more host files (loaded at run time, so ldd cannot list them)


# OpenSSL 3 keeps RC4 in its legacy provider, loaded at run time: Transmission's encrypted
# handshake (MSE) needs it (without it the daemon died at the first encrypted peer), and so
# does cryptography (deluged's TLS)
OPENSSL_PROVIDERS = "/usr/lib/*/ossl-modules/*.so"

RECIPES: dict[str, Recipe] = {
    "aria2": Recipe(commands=("aria2c",), globs=(OPENSSL_PROVIDERS,)),
    "transmission": Recipe(commands=("transmission-daemon",), globs=(OPENSSL_PROVIDERS,)),
    "qbittorrent": Recipe(commands=("qbittorrent-nox",), globs=(OPENSSL_PROVIDERS,)),
    "libtorrent": Recipe(modules=("libtorrent",), globs=(OPENSSL_PROVIDERS,)),
    # deluged is a Python script: its package, Twisted & co. come through the import
    "deluge": Recipe(commands=("deluged",),
                     modules=("deluge.core.daemon_entry", "deluge.core.daemon", "deluge.core.core",
                              "deluge.core.rpcserver", "rencode", "libtorrent"),
                     globs=(OPENSSL_PROVIDERS,)),
}

# what the test import prints: every loaded module file under a dist-packages folder
_MODULE_FILES = """
import importlib, sys
before = set(sys.modules)  # what site loads by itself (.pth hooks) is not the client's
for name in sys.argv[1:]:
    importlib.import_module(name)
for key, mod in list(sys.modules.items()):
    f = None if key in before else getattr(mod, "__file__", None)
    if f and "/dist-packages/" in f:
        print(f)
"""


class ImageProblem(Exception):
    """A client image cannot be made on this host (the message says why)."""


def _canonical(path: str) -> str:
    """Directory resolved (merged-/usr: /lib -> /usr/lib), name kept (as the base does)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _package_files(found: list[str]) -> list[str]:
    """Whole top-level packages (and their egg/dist-info) of the loaded module files."""
    tops: set[str] = set()
    for f in found:
        root, _, rest = f.partition("/dist-packages/")
        tops.add(os.path.join(root + "/dist-packages", rest.split("/", 1)[0]))
    out: list[str] = []
    for top in sorted(tops):
        base = os.path.basename(top).split(".", 1)[0].lower()
        parent = os.path.dirname(top)
        infos = [os.path.join(parent, n) for n in os.listdir(parent)
                 if n.lower().startswith(base) and n.endswith((".egg-info", ".dist-info"))]
        for item in [top, *infos]:
            if os.path.isfile(item):
                out.append(item)
                continue
            for dirpath, dirs, files in os.walk(item):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                out += [os.path.join(dirpath, n) for n in files]
    return out


def _missing_libraries(files: list[str]) -> list[str]:
    elves = [f for f in files if _is_elf(f)]
    missing: set[str] = set()
    for start in range(0, len(elves), 64):
        proc = subprocess.run(["ldd", *elves[start:start + 64]], capture_output=True, text=True,
                              timeout=30)
        missing |= {m.group(1) for m in re.finditer(r"(\S+) => not found", proc.stdout)}
    return sorted(missing)


def _is_elf(path: str) -> bool:
    from orchestrator.dockerlib.images import is_elf

    return is_elf(path)


@functools.cache
def client_files(kind: str) -> tuple[str, ...]:
    """The host files a client image of ``kind`` holds besides Python and the translator;
    ImageProblem when the client (or a library it needs) is not on this host."""
    from orchestrator.clients import ADAPTERS

    recipe = RECIPES[kind]
    package = ADAPTERS[kind].package
    files: list[str] = []
    for command in recipe.commands:
        path = shutil.which(command)
        if path is None:
            raise ImageProblem(f"{command} is not installed on this host, so the {kind} image "
                               f"cannot be built (apt-get install {package})")
        files.append(os.path.realpath(path))
    if recipe.modules:
        try:
            proc = subprocess.run([SYSTEM_PYTHON, "-c", _MODULE_FILES, *recipe.modules],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageProblem(f"cannot run {SYSTEM_PYTHON} to find the {kind} modules: "
                               f"{exc}") from exc
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise ImageProblem(f"the {kind} image cannot be built: {SYSTEM_PYTHON} cannot "
                               f"import its modules ({last}; apt-get install {package})")
        files += _package_files(proc.stdout.split())
    for pattern in recipe.globs:
        files += sorted(glob.glob(pattern))
    missing = _missing_libraries(files)
    if missing:
        raise ImageProblem(f"the {kind} image cannot be built: libraries not found on this "
                           f"host: {', '.join(missing[:4])}")
    return tuple(dict.fromkeys(files))


def image_problem(kind: str) -> Optional[str]:
    """Why the image of ``kind`` cannot be built here, or None (no docker call)."""
    try:
        client_files(kind)
    except ImageProblem as exc:
        return str(exc)
    return None


def translator_files() -> list[tuple[str, Path]]:
    """(path in the image, host file): the orchestrator.clients package, the agent's peer
    package and the vendored prometheus_client (as in peer.pyz)."""
    from orchestrator import pyz

    here = Path(__file__).resolve().parent
    out = [(f"{CODE_DIR}/{name}", path) for name, path in pyz._sources()]
    out.append((f"{CODE_DIR}/orchestrator/__init__.py", here.parent / "__init__.py"))
    out += [(f"{CODE_DIR}/orchestrator/clients/{p.name}", p) for p in sorted(here.glob("*.py"))]
    return out


def image_tag(kind: str, python: str = SYSTEM_PYTHON) -> str:
    """``meshbed/client-KIND:<digest>`` over the copied files (path, size, mtime), the
    translator's sources and the two recipes (this module, the base's)."""
    from orchestrator.dockerlib import images

    h = hashlib.sha256(f"{kind}\0{os.path.realpath(python)}\0".encode())
    for f in client_files(kind):
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for arc, path in translator_files():
        h.update(arc.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for recipe_file in (Path(__file__), Path(images.__file__)):
        h.update(hashlib.sha256(recipe_file.read_bytes()).digest())
    return f"{REPO}{kind}:{h.hexdigest()[:12]}"


def build_client_image(docker: Any, kind: str, tag: Optional[str] = None,
                       say: Callable[[str], None] = print) -> str:
    """Import the image of ``kind`` (ImageProblem when the host lacks the client)."""
    from orchestrator.dockerlib import images, labels

    tag = tag or image_tag(kind)
    extra = [(f, _canonical(f)) for f in client_files(kind)]
    extra += [(str(path), arc) for arc, path in translator_files()]
    images.build_offline_base(
        docker, tag, SYSTEM_PYTHON, say, extra=extra,
        changes=[f"ENV PYTHONPATH={CODE_DIR}:{CODE_DIR}/_vendor",
                 'ENTRYPOINT ["python3", "-m", "orchestrator.clients.node", "' + kind + '"]',
                 f"LABEL {labels.MANAGED}=1", f"LABEL meshbed.client={kind}"],
        what=f"{kind} client image")
    return tag


def ensure_client_images(docker: Any, kinds: Sequence[str],
                         say: Callable[[str], None] = print) -> dict[str, str]:
    """kind -> tag of a present image, the missing ones built side by side (each is mostly
    tar writing and dockerd's unpacking: ~1-2.5 s apiece)."""
    from orchestrator.dockerlib import images

    tags = {kind: image_tag(kind) for kind in sorted(set(kinds))}
    missing = [k for k, t in tags.items() if not images.image_exists(docker, t)]
    notes: list[str] = []
    with ThreadPoolExecutor(max(1, min(3, len(missing)))) as pool:
        list(pool.map(lambda k: build_client_image(docker, k, tags[k], notes.append), missing))
    for kind in missing:
        _remove_older(docker, kind, tags[kind])
    for note in notes:
        say(note)
    return tags


def _remove_older(docker: Any, kind: str, keep: str) -> None:
    """Earlier images of this kind that no container uses (a rebuild replaced them)."""
    import docker.errors as errors

    for img in docker.images.list(name=f"{REPO}{kind}"):
        for t in img.tags:
            if t == keep:
                continue
            try:
                docker.images.remove(t, noprune=False)
            except errors.APIError:
                pass  # in use by a container (another mesh): it stays
