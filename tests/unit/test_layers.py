"""The layer rules of pyproject's [tool.importlinter] hold (import-linter, as CI runs it):
peer imports no orchestrator; the neutral layers import no backend; backends are
independent of each other."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.facilities import missing

ROOT = Path(__file__).resolve().parents[2]


def test_import_layers_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports")
    if exe is None:
        missing("import-linter is not installed (pip install -e '.[dev]')")
    res = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-1000:]
    assert "0 broken" in res.stdout
