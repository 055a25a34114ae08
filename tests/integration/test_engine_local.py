"""The scenario engine on real local agents: rollback of a failed deploy, a content that can
no longer complete, the client-server strategy, a real file as content."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.local.forks import ForkServer
from orchestrator.errors import DeployError
from orchestrator.loader import load_topology_text
from orchestrator.mesh import Mesh
from tests.contract.harness import local as local_harness
from tests.meshplay import play_report

pytestmark = pytest.mark.timeout(120)


agents_of = local_harness.agent_pids


def topo(name: str, body: str, source: Path | None = None) -> Any:
    return load_topology_text(f"name: {name}\nbackend: local\nseed: 3\n" + body, source)


def test_failed_deploy_rolls_everything_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_spawn = ForkServer.spawn

    async def spawn(self: ForkServer, args: list[str], cmdline: list[str], *rest: Any) -> Any:
        if args[args.index("--node") + 1] == "b-2":  # this agent dies at once (no --data-dir)
            return await real_spawn(self, ["run", "--node", "b-2"], cmdline, *rest)
        return await real_spawn(self, args, cmdline, *rest)

    monkeypatch.setattr(ForkServer, "spawn", spawn)
    t = topo("rollback", "groups:\n  b: {count: 4}\ncontent:\n  x: {size: 1MiB, seeders: [b]}\n")
    mesh = Mesh(t, home=tmp_path)
    with pytest.raises(DeployError, match="b-2") as err:
        asyncio.run(mesh.up())
    assert "required: --data-dir" in str(err.value)  # the node's log is in the message
    assert agents_of("rollback") == []
    assert not (tmp_path / "rollback").exists()


def test_content_that_cannot_complete_ends_the_run(tmp_path: Path) -> None:
    t = topo("orphan", """
defaults: {link: {up: 4mbit}}
groups: {seeders: {count: 1}, leechers: {count: 2}}
content: {blob: {size: 8MiB, seeders: [seeders]}}
scenario:
  - {at: 0s, fetch: {content: blob, by: leechers}}
  - {at: 1s, kill: seeders}
timeout: 100s
""")

    report = play_report(t, tmp_path)
    assert report["ok"] is False and report["reason"] == "stuck" and report["stuck"] == ["blob"]
    # reason "stuck" (not "timeout") shows it ended early instead of waiting for the 100 s timeout
    assert agents_of("orphan") == []


def test_client_server_fetchers_pull_only_from_seeders(tmp_path: Path) -> None:
    t = topo("cs", """
strategy: client-server
defaults: {link: {up: 40mbit}}
groups: {seeders: {count: 1}, leechers: {count: 3}}
content: {blob: {size: 4MiB, seeders: [seeders]}}
scenario: [{at: 0s, fetch: {content: blob, by: leechers}}]
""")

    report = play_report(t, tmp_path)
    assert report["ok"] is True
    for i in range(3):
        f = report["nodes"][f"leechers-{i}"]["fetches"]["blob"]
        assert set(f["bytes_from"]) == {"seeders-0"}, f
    d = report["distribution"]["blob"]
    assert d["lower_bound_seconds"] == d["client_server_bound_seconds"]


def test_real_file_is_copied_shared_and_verified(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 12345)
    (tmp_path / "paper.bin").write_bytes(payload)
    t = topo("realfile", """
groups: {a: {count: 1}, b: {count: 2}}
content: {paper: {path: ./paper.bin, seeders: [a]}}
scenario: [{at: 0s, fetch: {content: paper, by: b}}]
""", source=tmp_path / "t.yaml")

    report = play_report(t, tmp_path / "home")
    assert report["ok"] is True
    assert report["contents"]["paper"]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert report["contents"]["paper"]["size"] == len(payload)
    assert all(report["nodes"][f"b-{i}"]["fetches"]["paper"]["verified"] for i in range(2))


def test_partition_never_healed_ends_as_stalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator import scenario

    monkeypatch.setattr(scenario, "STALL_SECONDS", 4.0)
    t = topo("cut", """
groups: {seeders: {count: 1, link: {up: 8mbit}}, leechers: {count: 2}}
content: {blob: {size: 8MiB, seeders: [seeders]}}
scenario:
  - {at: 0s, fetch: {content: blob, by: leechers}}
  - {at: 1s, partition: [[seeders], [leechers]]}
timeout: 100s
""")

    report = play_report(t, tmp_path)
    assert report["ok"] is False and report["reason"] == "stalled", report["reason"]
    assert any(p.startswith("stalled: leechers-") for p in report["problems"])


def test_stopped_seeder_serves_again_after_start(tmp_path: Path) -> None:
    t = topo("restart-seed", """
groups: {seeders: {count: 1, link: {up: 8mbit}}, leechers: {count: 2}}
content: {blob: {size: 6MiB, seeders: [seeders]}}
scenario:
  - {at: 0s, fetch: {content: blob, by: leechers}}
  - {at: 1s, stop: seeders}
  - {at: 3s, start: seeders}
timeout: 60s
""")

    async def go() -> dict[str, Any]:
        mesh = Mesh(t, home=tmp_path)
        try:
            await mesh.up()
            api_before = mesh.endpoints["seeders-0"].api
            await mesh.play()
            assert mesh.endpoints["seeders-0"].api == api_before  # same ports again
            return mesh.report()
        finally:
            await mesh.down()

    report = asyncio.run(go())
    # Only the seeder has the whole file: completion proves it served again after the restart.
    assert report["ok"] is True, report["reason"]
    assert [e["kind"] for e in report["events"]] == ["fetch", "stop", "start"]
    assert agents_of("restart-seed") == []
