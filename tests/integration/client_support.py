"""What a client node's kill/start run must show, whatever the backend."""

from __future__ import annotations

from typing import Any


def check_kill_start(report: dict[str, Any], client: str) -> dict[str, Any]:
    """The leecher ``leech-0`` ran ``client``, was killed and started, and still ended with a
    complete, verified file in an ok run; returns its fetch entry."""
    node = report["nodes"]["leech-0"]
    assert node["client"] == client
    fetch = node["fetches"]["blob"]
    assert fetch["complete"] and fetch["verified"], (fetch, report["problems"], report["events"])
    assert report["ok"], report
    kinds = [e["kind"] for e in report["events"]]
    assert "kill" in kinds and "start" in kinds
    return fetch
