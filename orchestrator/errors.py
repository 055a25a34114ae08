"""Errors the CLI turns into exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class MeshbedError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(MeshbedError):
    """Bad input: printed as one line ``FILE:LINE: message``, exit 2, nothing deployed."""

    exit_code = 2

    def __init__(
        self, message: str, file: Optional[Union[str, Path]] = None, line: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line  # 1-based

    def __str__(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}: {self.message}"
        if self.file:
            return f"{self.file}: {self.message}"
        return self.message


class BackendUnavailable(InputError):
    """The backend cannot run here (no root, no dockerd, ...): exit 2, with the backend's reason."""


class DeployError(MeshbedError):
    """Deploy failed; what was created has been rolled back. Exit 1."""

    exit_code = 1
