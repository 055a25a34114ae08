"""Control API security on a whole mesh as `meshbed run --keep` leaves it: mutating calls
without the mesh's token get 401; the token never shows in logs, command output, reports,
files of the state dir (other than the 0600 state/token files), command lines or agent
environments; the API refuses paths outside the agent's data dir; bodies are bounded."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peerproc import http
from tests.reliability.support import (
    ROOT,
    harness,
    leftovers,
    selected_backends,
    write_topology,
)

pytestmark = pytest.mark.timeout(180)

MUTATING = ["/share", "/fetch", "/link", "/peers", "/block", "/stop"]
TOPO: dict[str, Any] = {
    "seed": 2,
    "groups": {"seeders": {"count": 1}, "leechers": {"count": 2}},
    "content": {"blob": {"size": "1MiB", "seeders": ["seeders"]}},
    "scenario": [
        {"at": "0s", "fetch": {"content": "blob", "by": "leechers"}},
        {"at": "0s", "link": {"nodes": "leechers", "latency": "5ms"}},
        {"at": "1s", "partition": [["seeders"], ["leechers"]]},
        {"at": "2s", "heal": True},
    ],
}


def _meshbed(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=150)


@pytest.fixture(params=selected_backends())
def kept_mesh(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], list[str], dict[str, Any]]]:
    backend: str = request.param
    harness(backend)
    env = dict(os.environ, MESHBED_HOME=str(tmp_path / "home"), COLUMNS="120")
    # a unique name: meshes of other backends run at the same time (pytest-xdist), and the
    # agents are found by their --mesh argument
    topo_model, topo = write_topology(tmp_path, backend, "sec", TOPO)
    name = topo_model.name
    outputs: list[str] = []
    ran = _meshbed(env, "run", str(topo), "--report", str(tmp_path / "report.json"), "--keep")
    outputs += [ran.stdout, ran.stderr, (tmp_path / "report.json").read_text()]
    try:
        assert ran.returncode == 0, ran.stderr[-2000:]
        state = json.loads((tmp_path / "home" / name / "state.json").read_text())
        yield env, outputs, state
    finally:
        down = _meshbed(env, "down", name)
        outputs += [down.stdout, down.stderr]
        assert down.returncode == 0, down.stderr
        assert leftovers(backend, name, tmp_path / "home") == []


def test_token_is_required_and_never_leaks(
    tmp_path: Path, kept_mesh: tuple[dict[str, str], list[str], dict[str, Any]]
) -> None:
    env, outputs, state = kept_mesh
    token = state["token"]
    assert len(token) >= 24
    home = Path(env["MESHBED_HOME"])
    apis = {n: v["api"] for n, v in state["nodes"].items()}
    assert len(apis) == 3

    # 1. Without (or with a wrong) token every mutating call is 401; reads are open.
    wrong = token[:-1] + ("y" if token.endswith("x") else "x")  # 1 in 64 tokens ends in "x"
    for api in apis.values():
        for path in MUTATING:
            assert http("POST", f"http://{api}{path}", {})[0] == 401, (api, path)
            assert http("POST", f"http://{api}{path}", {}, token=wrong)[0] == 401
            assert http("POST", f"http://{api}{path}", {}, token="")[0] == 401
        assert http("GET", f"http://{api}/status")[0] == 200
        assert http("POST", f"http://{api}/link", {"latency_ms": 1}, token=token)[0] == 200

    # 2. Only the 0600 state and token files hold it; no log, sample, report or output does.
    sections = state.get("backends", {}).get(state["nodes"]["seeders-0"]["backend"], {})
    node_dirs = [Path(d[k]) for d in sections.get("nodes", {}).values()
                 for k in ("run_dir", "data_dir") if k in d]
    # the mesh's home, and the nodes' own dirs where they are on this host (ssh host devices)
    roots = [home, *(d for d in node_dirs if d.is_dir())]
    holders = []
    for p in sorted({p for root in roots for p in root.rglob("*")}):
        if p.is_file() and not p.is_symlink() and token.encode() in p.read_bytes():
            holders.append(p)
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    names = {p.name for p in holders}
    assert "state.json" in names and names <= {"state.json", "token"}, holders
    # ... and none of them lies in an agent's data dir, where /share {"file"} could reach it
    data_dirs = {Path(d["data_dir"]) for d in sections.get("nodes", {}).values() if "data_dir" in d}
    assert not [p for p in holders if any(d in p.parents for d in data_dirs)], holders
    status = _meshbed(env, "status", state["mesh"])
    assert status.returncode == 0
    for text in [*outputs, status.stdout, status.stderr]:
        assert token not in text

    # 3. Not in any command line. Local, netns and ssh agents read it from a 0600 file, so it
    # is not in their environment either (docker: a read-only bind, see test_docker_token.py).
    backend = state["nodes"]["seeders-0"]["backend"]
    agent_pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        assert token.encode() not in cmdline, f"token in the command line of pid {entry.name}"
        if b"--mesh\0" + state["mesh"].encode() + b"\0" in cmdline:
            agent_pids.append(entry)
    assert len(agent_pids) == 3
    for entry in agent_pids if backend in ("local", "netns", "ssh") else []:
        assert token.encode() not in (entry / "environ").read_bytes()


def test_api_refuses_paths_outside_the_data_dir_and_big_bodies(
    tmp_path: Path, kept_mesh: tuple[dict[str, str], list[str], dict[str, Any]]
) -> None:
    env, _, state = kept_mesh
    token = state["token"]
    node = state["nodes"]["leechers-0"]
    api = node["api"]
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"outside" * 1000)
    bads = [str(secret), "/etc/shadow", "../../../secret.bin", "inbox/../../../../secret.bin",
            "torrents/../../x", "\0", "inbox/\0x"]
    section = state["backends"].get(node["backend"], {}).get("nodes", {}).get("leechers-0", {})
    if "data_dir" in section:  # symlinks out of the data dir, where it is on this host
        inbox = Path(section["data_dir"]) / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "escape").symlink_to(secret)
        (inbox / "up").symlink_to(tmp_path)
        bads += ["inbox/escape", "inbox/up/secret.bin"]
    for bad in bads:
        code, body = http("POST", f"http://{api}/share", {"file": bad}, token=token)
        assert code == 400, (bad, code, body)
    # Bodies: just over the limit -> 413 (and the agent keeps serving).
    big = b'{"peers": ["' + b"a" * (8 * 1024 * 1024) + b'"]}'
    code, _ = http("POST", f"http://{api}/peers", raw=big, token=token)
    assert code == 413
    # A huge announced length is refused at once, without reading (or waiting for) it.
    with socket.create_connection(tuple_addr(api), timeout=10) as s:
        s.sendall(b"POST /peers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{")
        answer = s.recv(200)  # the socket's 10 s timeout fails the test if it waits for the body
        assert answer.startswith(b"HTTP/1.") and b" 413 " in answer.split(b"\r\n")[0], answer
    assert http("GET", f"http://{api}/status")[0] == 200


def tuple_addr(api: str) -> tuple[str, int]:
    host, _, port = api.rpartition(":")
    return host, int(port)
