"""The monitoring stack: Prometheus (local binary, or the prom/prometheus container) scraping every
peer of every running mesh through file_sd target files that meshbed rewrites atomically, a small
exporter of finished runs' results, and Grafana where its image can be had.

Layout under ``$MESHBED_HOME/monitor/``: ``targets/<mesh>.json`` (file_sd), ``prometheus.yml``,
``data/`` (TSDB), ``state.json`` (pids, ports), ``*.log``; finished run reports are kept in
``$MESHBED_HOME/results/`` for the exporter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

from orchestrator import settings
from orchestrator.errors import MeshbedError
from orchestrator.hostnet.processes import alive, start_time
from orchestrator.state import home as meshbed_home
from orchestrator.state import write_atomic

PROMETHEUS_PORT = 9090
EXPORTER_PORT = 9109
GRAFANA_PORT = 3000
# dashboards, provisioning and the compose file: package data (a symlink in a checkout)
GRAFANA_DIR = Path(__file__).parent / "grafana"
# pinned: a dashboard or provisioning format change must not arrive unannounced
GRAFANA_IMAGE = "grafana/grafana:11.2.2"
PROMETHEUS_IMAGE = "prom/prometheus:v2.54.1"


def monitor_dir(home: Optional[Path] = None) -> Path:
    return meshbed_home(home) / "monitor"


def targets_dir(home: Optional[Path] = None) -> Path:
    return monitor_dir(home) / "targets"


def results_dir() -> Path:
    return meshbed_home() / "results"


def _atomic_write(path: Path, text: str) -> None:
    # world-readable: a Prometheus container (compose) reads these as another user
    write_atomic(path, text.encode(), mode=0o644)


# --- file_sd targets ---------------------------------------------------------------------
def target_groups(mesh: str, nodes: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """file_sd entries, one per node: {targets: [api], labels: {mesh, node, group, backend,
    client}} (+ ``engine`` where the backend spans several engines)."""
    out = []
    for name, info in sorted(nodes.items()):
        api = info.get("api")
        if not api:
            continue
        labels = {
            "mesh": mesh,
            "node": name,
            "group": str(info.get("group", "")),
            "backend": str(info.get("backend", "")),
            "client": str(info.get("client") or "meshbed"),  # real clients: docs/clients.md
        }
        if info.get("site"):  # which engine/host runs it (swarm): dashboards group by it
            labels["engine"] = str(info["site"])
        out.append({"targets": [str(api)], "labels": labels})
    return out


def write_targets(mesh: str, nodes: Mapping[str, Mapping[str, Any]], home: Optional[Path] = None) -> Path:
    """(Re)write the mesh's target file atomically; Prometheus picks it up within seconds."""
    path = targets_dir(home) / f"{mesh}.json"
    _atomic_write(path, json.dumps(target_groups(mesh, nodes), indent=1))
    return path


def remove_targets(mesh: str, home: Optional[Path] = None) -> None:
    try:
        (targets_dir(home) / f"{mesh}.json").unlink()
    except FileNotFoundError:
        pass


def sync_targets_from_state() -> list[str]:
    """Rewrite target files from every mesh state on disk (and drop files of meshes gone)."""
    home = meshbed_home()
    meshes: list[str] = []
    if home.is_dir():
        for state_file in sorted(home.glob("*/state.json")):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            mesh = str(state.get("mesh") or state_file.parent.name)
            write_targets(mesh, state.get("nodes") or {})
            meshes.append(mesh)
    if targets_dir().is_dir():
        for f in targets_dir().glob("*.json"):
            if f.stem not in meshes:
                f.unlink(missing_ok=True)
    return meshes


def save_result(report: Mapping[str, Any]) -> Path:
    """Keep a finished run's report for the results exporter (scalability dashboard)."""
    name = str(report.get("name", "mesh"))
    path = results_dir() / f"{name}-{int(time.time() * 1000)}.json"
    _atomic_write(path, json.dumps(report))
    return path


# --- processes ---------------------------------------------------------------------------
def prometheus_config(scrape_interval: str = "2s", exporter_port: int = EXPORTER_PORT) -> str:
    return "\n".join(
        [
            "global:",
            f"  scrape_interval: {scrape_interval}",
            "  evaluation_interval: 5s",
            "scrape_configs:",
            "  - job_name: meshbed",
            "    file_sd_configs:",
            f"      - files: [{json.dumps(str(targets_dir() / '*.json'))}]",
            "        refresh_interval: 2s",
            "  - job_name: meshbed-results",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{exporter_port}']",
            "",
        ]
    )


def _spawn(argv: list[str], log: Path) -> dict[str, Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return {"pid": proc.pid, "start": start_time(proc.pid), "argv": argv[:1]}


def _alive(rec: Mapping[str, Any]) -> bool:
    start = rec.get("start")
    return start is not None and alive(int(rec.get("pid", 0)), start)


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def load_state() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((monitor_dir() / "state.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def up(
    prometheus_port: int = PROMETHEUS_PORT,
    exporter_port: int = EXPORTER_PORT,
    grafana: bool = True,
    say: Any = print,
) -> dict[str, Any]:
    """Start (or keep) Prometheus + the results exporter (+ Grafana when its image is present)."""
    state = load_state()
    if state.get("prometheus") and _alive(state["prometheus"]):
        sync_targets_from_state()
        say(f"monitoring already up: Prometheus at {state['prometheus_url']}")
        return state
    mdir = monitor_dir()
    mdir.mkdir(parents=True, exist_ok=True)
    targets_dir().mkdir(parents=True, exist_ok=True)
    results_dir().mkdir(parents=True, exist_ok=True)
    sync_targets_from_state()
    config = mdir / "prometheus.yml"
    _atomic_write(config, prometheus_config(exporter_port=exporter_port))
    state = {"prometheus_url": f"http://127.0.0.1:{prometheus_port}"}
    _atomic_write(mdir / "state.json", json.dumps(state))
    exporter = _spawn(
        [sys.executable, "-m", "orchestrator.exporter", "--port", str(exporter_port), "--dir", str(results_dir())],
        mdir / "exporter.log",
    )
    state["exporter"] = exporter
    _atomic_write(mdir / "state.json", json.dumps(state))
    binary = shutil.which("prometheus")
    if binary:
        prom = _spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={mdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--storage.tsdb.retention.time=7d",
            ],
            mdir / "prometheus.log",
        )
        state["prometheus"] = prom
        _atomic_write(mdir / "state.json", json.dumps(state))
    else:
        _start_prometheus_container(state, config, prometheus_port)
        _atomic_write(mdir / "state.json", json.dumps(state))
    if not _wait_http(f"{state['prometheus_url']}/-/ready", 30):
        down(say=lambda _m: None)
        raise MeshbedError(f"Prometheus did not become ready; see {mdir / 'prometheus.log'}")
    say(f"Prometheus: {state['prometheus_url']} (targets: {targets_dir()})")
    if grafana:
        note = _start_grafana(state, prometheus_port)
        _atomic_write(mdir / "state.json", json.dumps(state))
        say(note)
    return state


def _docker_client() -> Any:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=5)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - any failure means "no docker here"
        return None


def _image_present(client: Any, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def _start_prometheus_container(state: dict[str, Any], config: Path, port: int) -> None:
    client = _docker_client()
    image = PROMETHEUS_IMAGE
    if client is None or not (_image_present(client, image) or _try_pull(client, image)):
        raise MeshbedError("no prometheus binary and no prom/prometheus image: apt-get install prometheus")
    c = client.containers.run(
        image,
        command=[f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.path=/prometheus"],
        network_mode="host",
        volumes={str(monitor_dir()): {"bind": str(monitor_dir()), "mode": "rw"}},
        labels={"meshbed.managed": "1", "meshbed.monitor": "prometheus"},
        detach=True,
        name="meshbed-prometheus",
    )
    state["prometheus_container"] = c.id


def _try_pull(client: Any, image: str) -> bool:
    if settings.offline():  # air-gapped: never contact a registry
        return False
    try:
        client.images.pull(image)
        return True
    except Exception:  # noqa: BLE001
        return False


def _start_grafana(state: dict[str, Any], prometheus_port: int) -> str:
    client = _docker_client()
    image = GRAFANA_IMAGE
    dashboards = GRAFANA_DIR / "dashboards"
    if client is None:
        return f"Grafana: no Docker engine here; dashboards to import are in {dashboards}"
    if not (_image_present(client, image) or _try_pull(client, image)):
        return f"Grafana: image {image} not available (no registry?); dashboards are in {dashboards}"
    c = client.containers.run(
        image,
        network_mode="host",
        environment={
            "GF_SERVER_HTTP_ADDR": "127.0.0.1",
            "GF_AUTH_ANONYMOUS_ENABLED": "true",
            "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
            "MESHBED_PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}",
        },
        volumes={
            str((GRAFANA_DIR / "provisioning").resolve()): {"bind": "/etc/grafana/provisioning", "mode": "ro"},
            str(dashboards.resolve()): {"bind": "/var/lib/grafana/dashboards", "mode": "ro"},
        },
        labels={"meshbed.managed": "1", "meshbed.monitor": "grafana"},
        detach=True,
        name="meshbed-grafana",
    )
    state["grafana_container"] = c.id
    state["grafana_url"] = f"http://127.0.0.1:{GRAFANA_PORT}"
    return f"Grafana: {state['grafana_url']}"


def _kill(rec: Mapping[str, Any]) -> None:
    if not _alive(rec):
        return
    pid = int(rec["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(rec):
        time.sleep(0.1)
    if _alive(rec):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def down(say: Any = print, purge: bool = False) -> None:
    """Stop what `up` started; idempotent. ``purge`` also removes the TSDB and target files."""
    state = load_state()
    for key in ("prometheus", "exporter"):
        if state.get(key):
            _kill(state[key])
    containers = [state[k] for k in ("prometheus_container", "grafana_container") if state.get(k)]
    if containers:
        client = _docker_client()
        for cid in containers if client else []:
            try:
                client.containers.get(cid).remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
    (monitor_dir() / "state.json").unlink(missing_ok=True)
    if purge:
        shutil.rmtree(monitor_dir(), ignore_errors=True)
    say("monitoring down")


def query(expr: str, url: Optional[str] = None, timeout: float = 10) -> list[dict[str, Any]]:
    """Run an instant PromQL query; returns the result vector (raises on a Prometheus error)."""
    import urllib.parse

    base = url or load_state().get("prometheus_url") or f"http://127.0.0.1:{PROMETHEUS_PORT}"
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{base}/api/v1/query?{q}", timeout=timeout) as resp:
        body = json.loads(resp.read())
    if body.get("status") != "success":
        raise MeshbedError(f"Prometheus query failed: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def meshes_with_targets() -> Iterable[str]:
    return sorted(p.stem for p in targets_dir().glob("*.json")) if targets_dir().is_dir() else []
