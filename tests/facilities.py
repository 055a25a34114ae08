"""The one rule for missing facilities (root, dockerd, a binary, a library): a test skips
with the reason locally, and fails under CI, where every facility must be there."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn, Optional

import pytest


def in_ci() -> bool:
    """``CI`` set to true/1/yes, in any case (what CI services export)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str, *, module: bool = False) -> NoReturn:
    """Skip because of ``reason`` (the whole module when ``module``); under CI, fail."""
    if in_ci():
        pytest.fail(f"{reason} (a facility missing under CI fails the suite)")
    pytest.skip(reason, allow_module_level=module)


def require(reason: Optional[str], *, module: bool = False) -> None:
    """``missing(reason)`` when there is a reason; nothing when it is None."""
    if reason is not None:
        missing(reason, module=module)


def require_binary(name: str, hint: str = "") -> str:
    """The path of ``name`` on PATH, or skip/fail."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not on PATH" + (f" ({hint})" if hint else ""))
    return path


def nowait_reads(path: os.PathLike[str]) -> bool:
    """Does ``path``'s filesystem take reads that never wait (RWF_NOWAIT)? ext4 does; tmpfs
    on some kernels (CI's Python 3.9 chroot) says EOPNOTSUPP. Needs os.RWF_NOWAIT (Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        pass
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
