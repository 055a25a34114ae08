"""`meshbed play` / `report` / `watch` to a pipe, as a user runs them on the local backend:
a scenario played on a mesh that is up, detached, with `watch` and `status` showing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.chromium import check_report_page
from tests.e2e.test_cli_local import (
    REPO,
    agents_of,
    assert_gone,
    env,
    meshbed,
    wait_for,
    write_topo,
)

__all__ = ["env"]  # the fixture, imported for pytest
pytestmark = pytest.mark.timeout(240)

SMALL = """
defaults:
  link: {up: 8mbit, down: 40mbit}
groups:
  seeders: {count: 1}
  leechers: {count: 3}
content:
  blob: {size: 2MiB, seeders: [seeders]}
scenario:
  - {at: 0s, fetch: {content: blob, by: leechers}}
"""

# A scenario that would start agents again long after `down`: down must stop the player.
LATE_START = SMALL + """  - {at: 1s, kill: "leechers[0]"}
  - {at: 60s, start: "leechers[0]"}
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_up_play_watch_report_down(env: dict[str, str], tmp_path: Path) -> None:
    topo = write_topo(tmp_path, "played", SMALL)
    up = meshbed(env, "up", str(topo), "--play")
    assert up.returncode == 0, up.stderr[-3000:]
    assert "playing 1 scenario event on played" in up.stderr
    play = json.loads((Path(env["MESHBED_HOME"]) / "played" / "play.json").read_text())
    assert play["phase"] in ("playing", "done") and play["pid"] != os.getpid()

    # watch to a pipe: a plain frame every interval, never an empty log
    w = subprocess.Popen([sys.executable, "-m", "orchestrator", "watch", "played", "--interval", "0.3"],
                         env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert w.stdout is not None
        lines: list[str] = []
        while sum(1 for ln in lines if ln.startswith("--- ")) < 3:
            line = w.stdout.readline()
            assert line, f"watch ended early: {w.stderr.read() if w.stderr else ''}"
            lines.append(line)
    finally:
        w.terminate()
        w.wait(timeout=30)
    text = "".join(lines)
    assert "\x1b[" not in text  # no colour codes in a log
    assert "scenario" in text and "seeders-0" in text and "blob chunks" in text
    assert "fetchers complete" in text and "1 seeder" not in text.split("fetchers complete")[0]

    st = meshbed(env, "status", "played")
    assert st.returncode == 0 and "scenario" in st.stdout, st.stderr

    r_json, r_html = tmp_path / "r.json", tmp_path / "r.html"
    rep = meshbed(env, "report", "played", "--report", str(r_json), "--html", str(r_html))
    assert rep.returncode == 0, rep.stderr[-3000:]
    report = json.loads(r_json.read_text())
    d = report["distribution"]["blob"]
    assert report["ok"] is True and d["verified"] == 3
    assert len(d["completions"]) == 3 and d["completions"] == sorted(d["completions"])
    assert d["completions"][-1] == d["seconds"]
    assert d["utilisation"] and all(0 <= u <= 1.5 for u in d["utilisation"]) and max(d["utilisation"]) > 0
    assert "blob: 3/3 verified in" in rep.stderr and "of the lower bound" in rep.stderr
    assert r_html.read_text().startswith("<!DOCTYPE html>")
    check_report_page(r_html, tmp_path)
    assert (r_json.stat().st_mode & 0o777) == 0o666 & ~_umask()
    assert len(agents_of("played")) == 4  # report leaves the mesh up

    flow = tmp_path / "flow.svg"  # who sent how much to whom, from that report
    g = meshbed(env, "graph", str(topo), "--report", str(r_json), "-o", str(flow))
    assert g.returncode == 0, g.stderr
    assert flow.read_text().count('class="flow"') >= 3 and "leechers-2" in flow.read_text()

    again = meshbed(env, "play", "played")  # a finished scenario can be played again
    assert again.returncode == 0, again.stderr[-2000:]
    down = meshbed(env, "down", "played")
    assert down.returncode == 0, down.stderr
    assert_gone(env, "played")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_down_stops_a_playing_scenario(env: dict[str, str], tmp_path: Path) -> None:
    topo = write_topo(tmp_path, "stopped", LATE_START)
    assert meshbed(env, "up", str(topo)).returncode == 0
    play = meshbed(env, "play", "stopped", str(topo))
    assert play.returncode == 0, play.stderr[-2000:]
    pid = json.loads((Path(env["MESHBED_HOME"]) / "stopped" / "play.json").read_text())["pid"]
    assert alive(pid)
    busy = meshbed(env, "play", "stopped")
    assert busy.returncode == 2 and "already playing" in busy.stderr
    wait_for(lambda: len(agents_of("stopped")) == 3, 60, "the kill event")
    down = meshbed(env, "down", "stopped")
    assert down.returncode == 0, down.stderr
    assert not alive(pid)  # no start event can bring an agent back now
    assert_gone(env, "stopped")


def test_a_detached_scenario_kills_and_restarts_agents(env: dict[str, str], tmp_path: Path) -> None:
    """The player is a fresh process: it must find the agents `up` started to kill them,
    and start them again on their data."""
    churn = SMALL + """  - {at: 1s, kill: "leechers[0:2]"}
  - {at: 3s, start: "leechers[0:2]"}
"""
    topo = write_topo(tmp_path, "churned", churn)
    assert meshbed(env, "up", str(topo), "--play").returncode == 0
    rep = meshbed(env, "report", "churned", "--json")
    assert rep.returncode == 0, rep.stderr[-3000:]
    report = json.loads(rep.stdout)
    assert report["ok"] is True, report.get("problems")
    assert [e["kind"] for e in report["events"]] == ["fetch", "kill", "start"]
    assert len(agents_of("churned")) == 4  # the restarted ones run on after the player ended
    assert meshbed(env, "down", "churned").returncode == 0
    assert_gone(env, "churned")


def test_play_refuses_what_does_not_fit(env: dict[str, str], tmp_path: Path) -> None:
    nothing = meshbed(env, "play", "nosuch")
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1
    topo = write_topo(tmp_path, "fits", SMALL)
    assert meshbed(env, "up", str(topo)).returncode == 0
    bigger = write_topo(tmp_path, "fits2", SMALL.replace("count: 3", "count: 5"))
    bigger.write_text(bigger.read_text().replace("name: fits2", "name: fits"))
    res = meshbed(env, "play", "fits", str(bigger))
    assert res.returncode == 2 and "leechers-3 is not part of the running mesh fits" in res.stderr
    assert res.stderr.startswith(str(bigger)) and res.stderr.count("\n") == 1
    no_report = meshbed(env, "report", "fits")
    assert no_report.returncode == 2 and "meshbed play fits" in no_report.stderr
    assert meshbed(env, "down", "fits").returncode == 0


def test_output_off_a_terminal_is_full_width_and_unwrapped(env: dict[str, str], tmp_path: Path) -> None:
    topo = write_topo(tmp_path, "plain", SMALL)
    res = meshbed(env, "run", str(topo), "--keep")  # COLUMNS=120 in env: must not cut anything
    assert res.returncode == 0, res.stderr[-3000:]
    legend = [ln for ln in res.stdout.splitlines() if ln.startswith("received:")]
    assert len(legend) == 1 and legend[0].rstrip().endswith("pieces failing their hash)")
    assert "client-server bound" in res.stdout and "…" not in res.stdout
    assert "wasted" in res.stdout
    finals = [ln for ln in res.stderr.splitlines() if ln.startswith("meshbed: blob: 3/3 verified in ")]
    assert len(finals) == 1 and "of the lower bound" in finals[0]
    assert "\x1b[" not in res.stdout + res.stderr
    kept = meshbed(env, "report", "plain", "--json")  # the report of `run --keep`, later
    assert kept.returncode == 0 and json.loads(kept.stdout)["distribution"]["blob"]["verified"] == 3
    assert meshbed(env, "down", "plain").returncode == 0
    assert_gone(env, "plain")
