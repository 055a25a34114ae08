"""`client: libtorrent`: Debian's python3-libtorrent, driven through lt_runner.py."""

from __future__ import annotations

import base64
import json
import pkgutil
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


def runner_script(name: str, folder: Path) -> str:
    """The path of runner ``name`` (lt_runner.py, deluge_runner.py) for the system python3:
    beside this module, or, when the translator runs from a zipapp (ssh devices), a copy
    written to ``folder`` (a file inside a zip cannot be run as a script)."""
    here = Path(__file__).with_name(name)
    if here.is_file():
        return str(here)
    data = pkgutil.get_data(__package__ or "orchestrator.clients", name)
    if data is None:
        raise ClientError(f"{name} is missing from this build")
    dest = folder / name
    dest.write_bytes(data)
    return str(dest)


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

    @classmethod
    def check_command(cls) -> str:
        return f"{SYSTEM_PYTHON} -c 'import libtorrent' >/dev/null 2>&1"

    def start(self) -> list[int]:
        s = self.setup
        pid = self.spawn([
            SYSTEM_PYTHON, runner_script("lt_runner.py", s.home), "--ip", s.ip,
            "--port", str(s.wire_port), "--api-port", str(self.api_port), "--state", str(s.home),
            "--save", str(s.downloads)])
        wait_until_answers(self._torrents_raw, "the libtorrent runner")
        return [pid]
