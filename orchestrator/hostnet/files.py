"""Files written whole and atomically; private ones (state, the mesh token) mode 0600."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """``path`` holding ``data``, with ``mode`` from the start (a private file is never
    readable by others, even for a moment), replaced atomically so a reader sees the old
    or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name per call (O_EXCL, mode 0600): concurrent writers of one path (threads of
    # one process included) never share a temporary file
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_token_file(path: Path, token: str) -> Path:
    """The token file an agent gets through ``--token-file`` (never on its command line)."""
    return write_atomic(path, token.encode())
