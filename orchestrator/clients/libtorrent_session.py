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


class LibtorrentClient(ClientAdapter):
    name = "libtorrent"
    binary = "libtorrent"
    package = "python3-libtorrent"
    accepts_peers = True

    @classmethod
    def installed(cls) -> bool:
        try:
            return subprocess.run([SYSTEM_PYTHON, "-c", "import libtorrent"], capture_output=True,
                                  timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    def start(self) -> list[int]:
        s = self.setup
        runner = Path(__file__).with_name("lt_runner.py")
        log = open(s.log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(runner), "--ip", s.ip, "--port", str(s.wire_port),
             "--api-port", str(API_PORT), "--state", str(s.home), "--save", str(s.downloads)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=False)
        log.close()
        wait_until_answers(self._torrents_raw, "the libtorrent runner")
        return [proc.pid]

    def _torrents_raw(self) -> dict[str, dict[str, object]]:
        code, _, body = http_json(self.url + "/torrents")
        if code != 200:
            raise ClientError(f"libtorrent runner: GET /torrents answered {code}")
        data: dict[str, dict[str, object]] = json.loads(body)
        return data

    def add(self, torrent: bytes, infohash: str) -> None:
        code, _, body = http_json(self.url + "/add", {"torrent": base64.b64encode(torrent).decode()},
                                  timeout=30)
        if code != 200:
            raise ClientError(f"libtorrent runner refused the torrent: {body[:200]!r}")

    def torrents(self) -> dict[str, ClientTorrent]:
        out = {}
        for ih, t in self._torrents_raw().items():
            out[ih] = ClientTorrent(**t)  # type: ignore[arg-type]
        return out

    def add_peers(self, infohash: str, peers: list[tuple[str, int]]) -> int:
        code, _, body = http_json(self.url + "/peers", {
            "infohash": infohash, "peers": [f"{h}:{p}" for h, p in peers]})
        return int(json.loads(body).get("added", 0)) if code == 200 else 0
