"""Observability, end to end with real parts: a real mesh (local backend) runs while a real
Prometheus (Debian's binary, started by `meshbed monitor up`) scrapes it; then every PromQL
expression of every dashboard must return at least one series, the scrape passes
`promtool check metrics`, and the run's HTML report, opened in headless Chromium, shows charts
with data."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.facilities import missing, require_binary

ROOT = Path(__file__).resolve().parents[2]


def _need(binary: str) -> str:
    return require_binary(binary)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TOPOLOGY = """\
name: {name}
seed: 5
monitoring: false
defaults:
  link: {{up: 24mbit, down: 48mbit}}
groups:
  seeders: {{count: 1, link: {{up: 32mbit}}}}
  leechers: {{count: 4}}
content:
  movie: {{size: 24MiB, seeders: [seeders]}}
scenario:
  - {{at: 0s, fetch: {{content: movie, by: leechers}}}}
expect:
  all_complete_within: 90s
"""


def _meshbed(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture(scope="module")
def scraped_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _need("prometheus")
    tmp = tmp_path_factory.mktemp("mon")
    home = tmp / "home"
    env = dict(os.environ, MESHBED_HOME=str(home))
    name = f"mon-{os.getpid() % 100000}"
    topo = tmp / "topo.yaml"
    topo.write_text(TOPOLOGY.format(name=name))
    prom_port, exp_port = _free_port(), _free_port()
    up = _meshbed("monitor", "up", "--port", str(prom_port), "--exporter-port", str(exp_port), "--no-grafana", env=env)
    assert up.returncode == 0, up.stderr
    base = f"http://127.0.0.1:{prom_port}"
    try:
        run = _meshbed("run", str(topo), "--keep", "--report", str(tmp / "r.json"), "--html", str(tmp / "r.html"), env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        report = json.loads((tmp / "r.json").read_text())
        ended = time.time()
        # Prometheus must have scraped every target of the finished mesh at least twice since
        # the run ended (final values; rate() needs two points); on a loaded host scrapes lag
        # their 2 s interval, so wait for them rather than for a fixed time.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            since = int(time.time() - ended)  # whole seconds: the window starts after `ended`
            targets = f'up{{job="meshbed",mesh="{name}"}}'
            counts = _query(base, f"count_over_time({targets}[{max(since, 1)}s])")
            ups = _query(base, f"{targets} == 1")
            want = len(report["nodes"])  # one target per node
            if len(ups) == want and len(counts) == want and all(float(c["value"][1]) >= 2 for c in counts):
                break
            time.sleep(1)
        else:
            pytest.fail(f"Prometheus did not scrape every target twice after the run: {counts}")
        yield {"name": name, "base": base, "report": report, "tmp": tmp, "env": env}
    finally:
        _meshbed("down", name, env=env)
        _meshbed("monitor", "down", "--purge", env=env)


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            for t in panel["targets"]:
                out.append((path.name, panel["title"], t["expr"]))
        for var in dash["templating"]["list"]:
            out.append((path.name, f"variable {var['name']}", var["query"]["query"]))
    return out


def _concrete(expr: str, mesh: str) -> str:
    """What Grafana would send: variables substituted, label_values() as a query."""
    expr = expr.replace("$__rate_interval", "1m").replace("$mesh", mesh)
    expr = re.sub(r"\$(group|backend)\b", ".*", expr)
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", expr)
    if m:
        expr = f"group by ({m.group(2)}) ({m.group(1)})"
    return expr


def test_every_dashboard_query_returns_data(scraped_mesh: dict[str, Any]) -> None:
    empty = []
    exprs = _dashboard_exprs()
    assert len(exprs) > 20
    for dash, title, expr in exprs:
        q = _concrete(expr, scraped_mesh["name"])
        if not _query(scraped_mesh["base"], q):
            empty.append(f"{dash} / {title}: {q}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_targets_carry_mesh_labels(scraped_mesh: dict[str, Any]) -> None:
    series = _query(scraped_mesh["base"], f'meshbed_completion_ratio{{mesh="{scraped_mesh["name"]}"}}')
    nodes = {s["metric"]["node"] for s in series}
    assert nodes == set(scraped_mesh["report"]["nodes"]) | {"seeders-0"} or nodes >= set(scraped_mesh["report"]["nodes"])
    for s in series:
        assert {"mesh", "node", "group", "backend"} <= set(s["metric"]), s["metric"]
        assert s["metric"]["backend"] == "local"
    done = [s for s in series if float(s["value"][1]) >= 1.0]
    assert len(done) >= 4  # the four leechers (and the seeder) completed


def test_scrape_passes_promtool(scraped_mesh: dict[str, Any]) -> None:
    promtool = _need("promtool")
    node = next(n for n in scraped_mesh["report"]["nodes"].values() if n.get("fetches"))
    with urllib.request.urlopen(node["metrics_url"], timeout=10) as resp:
        text = resp.read()
    assert len(text) < 64 * 1024
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    names = set(re.findall(rb"^(meshbed_[a-z_]+)", text, re.M))
    for required in (b"meshbed_bytes_sent_total", b"meshbed_bytes_received_total", b"meshbed_pieces_held",
                     b"meshbed_content_pieces", b"meshbed_completion_ratio", b"meshbed_connected_peers",
                     b"meshbed_piece_fetch_duration_seconds_bucket", b"meshbed_rejected_pieces_total",
                     b"meshbed_rarest_piece_copies", b"meshbed_completion_timestamp_seconds"):
        assert required in names, required


def test_html_report_renders_charts_in_chromium(scraped_mesh: dict[str, Any]) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        missing("chromium not installed")
    from PIL import Image

    tmp: Path = scraped_mesh["tmp"]
    page = tmp / "r.html"
    shot = tmp / "r.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium'}"]
    subprocess.run([chromium, *flags, "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    # DOM: one completion line per fetching node, each with more than a couple of points
    lines = re.findall(r'<polyline class="series" data-name="([^"]+)"[^>]*points="([^"]*)"', dom)
    names = {n for n, _ in lines}
    fetchers = {n for n, info in scraped_mesh["report"]["nodes"].items() if info["fetches"]}
    assert fetchers and fetchers <= names
    assert all(len(pts.split()) >= 3 for n, pts in lines if n in fetchers)
    assert dom.count('class="seg"') >= 4
    # pixels: the charts' coloured strokes are on screen (not just white or text grey)
    img = Image.open(shot).convert("RGB")
    w, h = img.size
    colourful = 0
    for y in range(0, h, 2):
        for x in range(0, w, 2):
            r, g, b = img.getpixel((x, y))  # type: ignore[misc]
            if max(r, g, b) - min(r, g, b) > 60:
                colourful += 1
    # a page without drawn charts has next to none (text and axes are grey); a short run draws
    # short strokes (1,878 seen for a valid page under load), so the bar is what any chart clears
    assert colourful > 1000, f"only {colourful} coloured pixels in the screenshot"
