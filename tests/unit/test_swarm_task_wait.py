"""services.running_task: waiting for a node's task, replacing one the engine failed to start.

A scripted service object stands in for the Docker SDK's (pure logic: which task states end
the wait, when a forced update is asked for, what the error says)."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from orchestrator.backends.swarm import services

BUSY = ("starting container failed: unable to remount dir as readonly: mount tmpfs:"
        "/var/lib/docker/containers/x/mounts/secrets: device or resource busy")


def task(tid: str, state: str, err: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if err:
        status["Err"] = err
    return {"ID": tid, "Status": status, "DesiredState": "running", "NodeID": "n1"}


class ScriptedService:
    """Each ``tasks()`` call returns the next listing; the last one repeats."""

    def __init__(self, listings: list[list[dict[str, Any]]],
                 after_update: Optional[list[list[dict[str, Any]]]] = None) -> None:
        self.listings = listings
        self.after_update = after_update or []
        self.updates = 0

    def tasks(self, filters: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
        listing = self.listings[0] if len(self.listings) == 1 else self.listings.pop(0)
        return list(listing)

    def reload(self) -> None:
        pass

    def force_update(self) -> bool:
        self.updates += 1
        if self.after_update:
            self.listings = [self.after_update.pop(0)]
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(svc: ScriptedService, timeout: float = 120.0) -> dict[str, Any]:
    clock = FakeClock()
    return services.running_task(svc, timeout, clock=clock, sleep=clock.sleep)


def test_a_running_task_ends_the_wait_without_an_update() -> None:
    svc = ScriptedService([[], [task("a", "preparing")], [task("a", "running")]])
    assert wait(svc)["ID"] == "a"
    assert svc.updates == 0


def test_an_agent_that_fails_is_reported_not_retried() -> None:
    svc = ScriptedService([[task("a", "failed", "task: non-zero exit (2)")]])
    with pytest.raises(RuntimeError, match="non-zero exit"):
        wait(svc)
    assert svc.updates == 0


def test_the_engines_mount_failure_gets_a_new_task() -> None:
    svc = ScriptedService([[task("a", "starting", BUSY)]],
                          after_update=[[task("a", "starting", BUSY), task("b", "running")]])
    assert wait(svc)["ID"] == "b"
    assert svc.updates == 1


def test_a_task_stuck_starting_is_replaced_but_a_pull_is_left_alone() -> None:
    pulling = ScriptedService([[task("a", "preparing")]])
    with pytest.raises(RuntimeError, match="not running after 120 s"):
        wait(pulling)
    assert pulling.updates == 0
    stuck = ScriptedService([[task("a", "starting")]], after_update=[[task("b", "running")]])
    assert wait(stuck)["ID"] == "b"
    assert stuck.updates == 1


def test_replacements_are_bounded_and_the_error_says_so() -> None:
    svc = ScriptedService([[task("a", "failed", BUSY)]],
                          after_update=[[task("b", "failed", BUSY)], [task("c", "failed", BUSY)]])
    with pytest.raises(RuntimeError, match="resource busy"):
        wait(svc)
    assert svc.updates == services.RETRIES


def test_a_replacement_the_engine_refuses_is_reported_with_the_cause() -> None:
    class Refusing(ScriptedService):
        def force_update(self) -> bool:
            raise OSError("connection refused")

    with pytest.raises(RuntimeError, match="resource busy; replacing the task failed: connection refused"):
        wait(Refusing([[task("a", "starting", BUSY)]]))
