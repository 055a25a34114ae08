"""`client: libtorrent`: Debian's python3-libtorrent, driven through lt_runner.py."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from orchestrator.clients.base import (
    ClientAdapter,
    ClientError,
    ClientTorrent,
    http_json,
    wait_until_answers,
)

SYSTEM_PYTHON = "/usr/bin/python3"  # where python3-libtorrent is importable
API_PORT = 9300  # the runner's JSON API, on the namespace's loopback


def system_python_has(module: str) -> bool:
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RunnerClient(ClientAdapter):
    """A client driven through a small runner of ours (system python3) with a JSON API:
    POST /add, POST /peers, GET /torrents (see lt_runner.py)."""

    api_port = API_PORT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(self, argv: list[str]) -> int:
        with open(self.setup.log, "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL).pid

    def _torrents_raw(self) -> dict[str, dict[str, object]]:
        code, _, body = http_json(self.url + "/torrents")
        if code != 200:
            raise ClientError(f"{self.name} runner: GET /torrents answered {code}")
        data: dict[str, dict[str, object]] = json.loads(body)
        return data

    def add(self, torrent: bytes, infohash: str) -> None:
        code, _, body = http_json(self.url + "/add", {
            "torrent": base64.b64encode(torrent).decode(), "infohash": infohash}, timeout=30)
        if code != 200:
            raise ClientError(f"{self.name} runner refused the torrent: {body[:200]!r}")

    def torrents(self) -> dict[str, ClientTorrent]:
        out = {}
        for ih, t in self._torrents_raw().items():
            out[ih] = ClientTorrent(**t)  # type: ignore[arg-type]
        return out

    def add_peers(self, infohash: str, peers: list[tuple[str, int]]) -> int:
        code, _, body = http_json(self.url + "/peers", {
            "infohash": infohash, "peers": [f"{h}:{p}" for h, p in peers]})
        return int(json.loads(body).get("added", 0)) if code == 200 else 0


class LibtorrentClient(RunnerClient):
    name = "libtorrent"
    binary = "libtorrent"
    package = "python3-libtorrent"
    accepts_peers = True

    @classmethod
    def installed(cls) -> bool:
        return system_python_has("libtorrent")

    def start(self) -> list[int]:
        s = self.setup
        pid = self.spawn([
            SYSTEM_PYTHON, str(Path(__file__).with_name("lt_runner.py")), "--ip", s.ip,
            "--port", str(s.wire_port), "--api-port", str(self.api_port), "--state", str(s.home),
            "--save", str(s.downloads)])
        wait_until_answers(self._torrents_raw, "the libtorrent runner")
        return [pid]
