"""`meshbed doctor` never cuts a reason mid-sentence (CI logs and grep want all of it)."""

from __future__ import annotations

import pytest

from orchestrator.commands import doctor


def test_docker_reason_is_whole_and_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.backends.docker as docker_backend

    reason = "cannot reach the Docker engine at unix:///nowhere.sock:\n" + "because " * 30 + "end"
    monkeypatch.setattr(docker_backend, "ping_error", lambda: reason)
    engine_row, _ = doctor._docker()
    assert engine_row[2].endswith("because end") and "\n" not in engine_row[2]
    assert engine_row[2] == " ".join(reason.split())
