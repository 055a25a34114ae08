"""Moved to ``orchestrator.mesh`` (the deployed mesh: up, play, poll, down). This alias
keeps imports of branches written before the rename working; remove it once merged."""

from orchestrator.mesh import *  # noqa: F403
from orchestrator.mesh import Mesh, StateUnreadable, bounded  # noqa: F401
