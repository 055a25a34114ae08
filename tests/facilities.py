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


def missing(reason: str) -> NoReturn:
    """Skip because of ``reason``; under CI, fail with it."""
    if in_ci():
        pytest.fail(f"{reason} (a facility missing under CI fails the suite)")
    pytest.skip(reason)


def require(reason: Optional[str]) -> None:
    """``missing(reason)`` when there is a reason; nothing when it is None."""
    if reason is not None:
        missing(reason)


def require_binary(name: str, hint: str = "") -> str:
    """The path of ``name`` on PATH, or skip/fail."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not on PATH" + (f" ({hint})" if hint else ""))
    return path
