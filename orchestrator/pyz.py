"""Build ``peer.pyz``: the agent as one zipapp that runs on any Python 3.9+ with nothing
installed (the ``peer`` package plus a vendored copy of prometheus_client under ``_vendor/``).

The archive is reproducible: sorted entries, fixed timestamps and modes, so the same sources
give the same bytes. ``ensure_pyz()`` caches it under
``$MESHBED_HOME/cache/peer-<sha256 of the sources>.pyz``; backends ship that file.

    python3 -m orchestrator.pyz peer.pyz
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

SHEBANG = b"#!/usr/bin/env python3\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
VENDOR = "_vendor"
# Parts of prometheus_client that need third-party packages or servers we never use.
_SKIP_VENDORED = ("twisted", "django", "aiohttp")

MAIN = '''\
"""meshbed-peer zipapp entry point."""
import os
import sys

if sys.version_info < (3, 9):
    sys.exit("meshbed-peer needs Python 3.9 or newer")
_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.join(_here, "_vendor"))
from peer.cli import main  # noqa: E402

sys.exit(main())
'''


def _python_files(root: Path, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or (rel.parts and rel.parts[0] in skip):
            continue
        if path.is_file() and path.suffix in (".py", ".typed"):
            yield path


def _sources() -> list[tuple[str, Path]]:
    """(name in the archive, source file), sorted by name."""
    import prometheus_client

    import peer

    peer_dir = Path(peer.__file__).resolve().parent
    prom_dir = Path(prometheus_client.__file__).resolve().parent
    entries = [(f"peer/{p.relative_to(peer_dir).as_posix()}", p) for p in _python_files(peer_dir)]
    entries = [e for e in entries if not e[0].startswith("peer/_vendor/")]
    entries += [
        (f"{VENDOR}/prometheus_client/{p.relative_to(prom_dir).as_posix()}", p)
        for p in _python_files(prom_dir, _SKIP_VENDORED)
    ]
    return sorted(entries)


def sources_digest() -> str:
    """SHA-256 over the archive's names and contents (the cache key)."""
    return digest_of(MAIN, _sources())


def digest_of(main: str, sources: list[tuple[str, Path]]) -> str:
    """SHA-256 over a zipapp's entry point, names and contents."""
    h = hashlib.sha256(main.encode())
    for name, path in sources:
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.create_system = 3  # unix, so the mode bits above are honoured
    zf.writestr(info, data, compresslevel=9)


def build_pyz(dest: Path) -> Path:
    """Write the zipapp to ``dest`` atomically (mode 0755); return ``dest``."""
    return build_zipapp(Path(dest), MAIN, _sources())


def build_zipapp(dest: Path, main: str, sources: list[tuple[str, Path]]) -> Path:
    """A reproducible zipapp of ``sources`` run by ``main``, written atomically (0755)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            raw.write(SHEBANG)
            with zipfile.ZipFile(raw, "w") as zf:
                _add(zf, "__main__.py", main.encode())
                for name, path in sources:
                    _add(zf, name, path.read_bytes())
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def ensure_pyz(home: Optional[Path] = None) -> Path:
    """The cached zipapp for the current sources, built if missing."""
    return ensure_cached("peer", sources_digest(), build_pyz, home)


def ensure_cached(stem: str, digest: str, build: Callable[[Path], Path],
                  home: Optional[Path] = None) -> Path:
    """``$MESHBED_HOME/cache/STEM-DIGEST.pyz``, built by ``build`` if missing."""
    from orchestrator.state import home as meshbed_home

    dest = meshbed_home(home) / "cache" / f"{stem}-{digest}.pyz"
    if not dest.is_file():
        build(dest)
    return dest


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python3 -m orchestrator.pyz DEST.pyz", file=sys.stderr)
        return 2
    dest = build_pyz(Path(args[0]))
    print(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
