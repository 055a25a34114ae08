"""The reliability suite imports its helpers as ``support`` and the agent-process helper as
``peerproc`` (tests/reliability and tests/ on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent, HERE.parent / "contract"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
