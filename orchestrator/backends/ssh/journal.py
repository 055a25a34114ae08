"""A copy of the ssh section of a mesh's state kept outside its state folder, so what the
backend put on devices can still be found and removed when that folder is lost.

One private file per mesh state folder under ``$XDG_STATE_HOME/meshbed/ssh`` (default
``~/.local/state/meshbed/ssh``), rewritten with every save of the section and removed when
the section holds no device any more.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.hostnet.files import write_atomic


def folder() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "meshbed" / "ssh"


def path_for(state_dir: Path) -> Path:
    return folder() / (hashlib.sha1(str(state_dir).encode()).hexdigest()[:20] + ".json")


def write(state_dir: Path, mesh: str, section: dict[str, Any]) -> None:
    """Keep the journal entry of ``state_dir`` equal to ``section`` (none without devices)."""
    path = path_for(state_dir)
    if not section.get("devices"):
        path.unlink(missing_ok=True)
        return
    body = {"mesh": mesh, "state_dir": str(state_dir), "section": section}
    write_atomic(path, json.dumps(body).encode())  # 0600: it names devices and keys


def entries() -> list[dict[str, Any]]:
    """Every readable journal entry: {"mesh", "state_dir", "section"}."""
    out: list[dict[str, Any]] = []
    try:
        files = sorted(folder().glob("*.json"))
    except OSError:
        return out
    for f in files:
        try:
            data = json.loads(f.read_text())
            if isinstance(data, dict) and {"mesh", "state_dir", "section"} <= set(data):
                out.append(data)
        except (OSError, ValueError):
            continue
    return out
