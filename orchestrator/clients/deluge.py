"""`client: deluge`: deluged (libtorrent inside), reached through deluge_runner.py.

core.conf is written on first start only (deluged keeps its torrent state beside it): no
DHT, LSD, UPnP, NAT-PMP or release checks; PEX on; no queueing, ratio or speed limits;
peers on the node's address; the daemon's RPC on the namespace's loopback.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from orchestrator.clients.base import wait_until_answers
from orchestrator.clients.libtorrent_session import (
    SYSTEM_PYTHON,
    RunnerClient,
    runner_script,
    system_python_has,
)

DAEMON_PORT = 58846


def core_conf(ip: str, port: int, downloads: str) -> dict[str, Any]:
    return {
        "dht": False, "lsd": False, "upnp": False, "natpmp": False, "utpex": True,
        "new_release_check": False, "send_info": False, "allow_remote": False,
        "listen_ports": [port, port], "random_port": False, "listen_interface": ip,
        "outgoing_interface": "" if ip == "0.0.0.0" else ip, "daemon_port": DAEMON_PORT, "download_location": downloads,
        "max_active_seeding": -1, "max_active_downloading": -1, "max_active_limit": -1,
        "stop_seed_at_ratio": False, "max_upload_slots_global": -1, "enabled_plugins": [],
        "add_paused": False, "auto_managed": False,
    }


class DelugeClient(RunnerClient):
    name = "deluge"
    binary = "deluged"
    package = "deluged"
    accepts_peers = True
    api_port = 9301

    @classmethod
    def installed(cls) -> bool:
        return shutil.which(cls.binary) is not None and system_python_has("rencode")

    @classmethod
    def check_command(cls) -> str:
        return (f"command -v {cls.binary} >/dev/null 2>&1 && "
                f"{SYSTEM_PYTHON} -c 'import rencode' >/dev/null 2>&1")

    def start(self) -> list[int]:
        s = self.setup
        conf = s.home / "core.conf"
        if not conf.exists():  # deluge's format: a version header object, then the config
            s.home.mkdir(parents=True, exist_ok=True)
            conf.write_text(json.dumps({"file": 1, "format": 1}) + "\n"
                            + json.dumps(core_conf(s.ip, s.wire_port, str(s.downloads)), indent=1))
        daemon = self.spawn([self.binary, "-d", "-c", str(s.home), "-p", str(DAEMON_PORT),
                             "-u", "127.0.0.1", "-i", s.ip,
                             *([] if s.any_address else ["-o", s.ip]), "-L", "warning"])
        runner = self.spawn([
            SYSTEM_PYTHON, runner_script("deluge_runner.py", s.home),
            "--config", str(s.home), "--daemon-port", str(DAEMON_PORT),
            "--api-port", str(self.api_port), "--save", str(s.downloads)])
        wait_until_answers(self._torrents_raw, "deluged", timeout=60)
        return [daemon, runner]
