"""Atomic file writes that a hostile neighbour in the data dir cannot redirect.

The temporary file gets a fresh random name created with O_EXCL (tempfile.mkstemp), so a
symlink planted at a predictable ``NAME.tmp`` is never followed and never clobbered, and a
failed write (a full disk) leaves no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Union

Buffer = Union[bytes, bytearray, memoryview]


def write_atomic(path: Path, chunks: Iterable[Buffer], *, fsync: bool = True,
                 mode: int = 0o644) -> None:
    """Write ``chunks`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
