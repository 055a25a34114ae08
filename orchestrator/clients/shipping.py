"""The translator of client nodes as one zipapp, for devices reached over ssh (docs/clients.md).

``client-<sha256>.pyz`` holds what peer.pyz holds (``peer`` + vendored prometheus_client)
plus ``orchestrator/__init__.py`` and ``orchestrator/clients``; it runs
``orchestrator.clients.node`` under the device's Python 3.9+::

    python3 client-<sha>.pyz CLIENT run --node N ...     (the agent's `run` arguments)

Reproducible like peer.pyz (orchestrator/pyz.py): the same sources give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Optional

from orchestrator import pyz

MAIN = '''\
"""meshbed client-node zipapp entry point: python3 client.pyz CLIENT run ARGS..."""
import os
import sys

if sys.version_info < (3, 9):
    sys.exit("meshbed client nodes need Python 3.9 or newer")
_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.join(_here, "_vendor"))
from orchestrator.clients.node import main  # noqa: E402

sys.exit(main())
'''


def _sources() -> list[tuple[str, Path]]:
    here = Path(__file__).resolve().parent
    out = list(pyz._sources())
    out.append(("orchestrator/__init__.py", here.parent / "__init__.py"))
    out += [(f"orchestrator/clients/{p.name}", p) for p in sorted(here.glob("*.py"))]
    return sorted(out)


def sources_digest() -> str:
    h = hashlib.sha256(MAIN.encode())
    for name, path in _sources():
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def build_client_pyz(dest: Path) -> Path:
    """Write the zipapp to ``dest`` atomically (mode 0755)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            raw.write(pyz.SHEBANG)
            with zipfile.ZipFile(raw, "w") as zf:
                pyz._add(zf, "__main__.py", MAIN.encode())
                for name, path in _sources():
                    pyz._add(zf, name, path.read_bytes())
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def ensure_client_pyz(home: Optional[Path] = None) -> Path:
    """The cached zipapp for the current sources, built if missing."""
    from orchestrator.state import home as meshbed_home

    dest = meshbed_home(home) / "cache" / f"client-{sources_digest()}.pyz"
    if not dest.is_file():
        build_client_pyz(dest)
    return dest
