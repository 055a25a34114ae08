"""The translator of client nodes as one zipapp, for devices reached over ssh (docs/clients.md).

``client-<sha256>.pyz`` holds what peer.pyz holds (``peer`` + vendored prometheus_client)
plus ``orchestrator/__init__.py`` and ``orchestrator/clients``; it runs
``orchestrator.clients.node`` under the device's Python 3.9+::

    python3 client-<sha>.pyz CLIENT run --node N ...     (the agent's `run` arguments)

Reproducible like peer.pyz (orchestrator/pyz.py): the same sources give the same bytes.
"""

from __future__ import annotations

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
    return pyz.digest_of(MAIN, _sources())


def build_client_pyz(dest: Path) -> Path:
    """Write the zipapp to ``dest`` atomically (mode 0755)."""
    return pyz.build_zipapp(dest, MAIN, _sources())


def ensure_client_pyz(home: Optional[Path] = None) -> Path:
    """The cached zipapp for the current sources, built if missing."""
    return pyz.ensure_cached("client", sources_digest(), build_client_pyz, home)
