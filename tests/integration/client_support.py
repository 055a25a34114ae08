"""What a client node's kill/start run must show, whatever the backend."""

from __future__ import annotations

from typing import Any


def check_kill_start(report: dict[str, Any], client: str, name: str = "leech-0") -> dict[str, Any]:
    """The leecher ``name`` ran ``client``, was killed and started, and still ended with a
    complete, verified file of content ``blob`` in an ok run; returns its fetch entry."""
    node = report["nodes"][name]
    assert node["client"] == client
    fetch = node["fetches"]["blob"]
    assert fetch["complete"] and fetch["verified"], (fetch, report["problems"], report["events"])
    assert report["ok"], report
    kinds = [e["kind"] for e in report["events"] if name in e.get("nodes", [name])]
    assert "kill" in kinds and "start" in kinds
    return fetch
