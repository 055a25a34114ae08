"""`magnet: "@NAME"` end to end with the CLI on the local backend: one node seeds a
synthetic content, the others fetch it by its magnet link (BEP 9 metadata from the mesh)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli_local import assert_gone, env, meshbed  # noqa: F401 (fixture)

TOPO = """name: {name}
groups:
  seed: {{count: 1}}
  fetchers: {{count: 3}}
content:
  movie: {{size: 3MiB, seeders: [seed]}}
  by-magnet: {{magnet: "@movie"}}
scenario:
  - fetch: {{content: by-magnet, by: fetchers}}
expect:
  all_complete_within: 60s
"""


def test_fetchers_of_a_magnet_content_get_the_metadata_and_verify(env: dict[str, str],  # noqa: F811
                                                                   tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPO.format(name="i15m-magnet-e2e"))
    report_path = tmp_path / "r.json"
    res = meshbed(env, "run", str(topo), "--keep", "--report", str(report_path))
    try:
        assert res.returncode == 0, res.stderr[-3000:]
        r = json.loads(report_path.read_text())
        assert r["ok"] is True and r["contents"]["by-magnet"] == r["contents"]["movie"]
        assert r["distribution"]["by-magnet"]["verified"] == 3
        for i in range(3):
            f = r["nodes"][f"fetchers-{i}"]["fetches"]["by-magnet"]
            assert f["complete"] and f["verified"] is True
            # the info dict came over ut_metadata, not with the request
            log = (Path(env["MESHBED_HOME"]) / "i15m-magnet-e2e" / "local" / f"fetchers-{i}"
                   / "agent.log").read_text()
            assert f"magnet {r['contents']['movie']['infohash']}: metadata of movie" in log
    finally:
        down = meshbed(env, "down", "i15m-magnet-e2e")
    assert down.returncode == 0, down.stderr
    assert_gone(env, "i15m-magnet-e2e")


def test_simulate_plays_a_magnet_content(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPO.format(name="i15m-magnet-sim"))
    res = meshbed(env, "simulate", str(topo), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(res.stdout)
    assert r["distribution"]["by-magnet"]["verified"] == 3
