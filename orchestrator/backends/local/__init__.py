"""The `local` backend: agents are child processes on 127.0.0.1 (no root, no Docker)."""

from orchestrator.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
