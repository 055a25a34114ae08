"""`client: transmission`: transmission-daemon with its RPC on the namespace's loopback.

settings.json is written on first start only (the daemon keeps its resume files beside it):
no DHT, LPD, port forwarding or uTP; PEX on; no speed limits or seed ratio; peers on the
node's address. Transmission's RPC cannot be told peers to dial: it finds them through the
torrent's tracker and through peers that dial it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any, Optional

from orchestrator.clients.base import (
    ClientAdapter,
    ClientError,
    ClientTorrent,
    http_json,
    wait_until_answers,
)

RPC_PORT = 9091
FIELDS = ["hashString", "pieceCount", "haveValid", "pieceSize", "totalSize", "downloadedEver",
          "uploadedEver", "rateDownload", "rateUpload", "peersConnected", "status", "percentDone",
          "recheckProgress", "sizeWhenDone", "leftUntilDone"]
CHECKING = (1, 2)  # TR_STATUS_CHECK_WAIT, TR_STATUS_CHECK


def settings(ip: str, port: int, downloads: str) -> dict[str, Any]:
    return {
        "bind-address-ipv4": ip, "bind-address-ipv6": "::1", "peer-port": port,
        "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": False, "lpd-enabled": False, "utp-enabled": False, "pex-enabled": True,
        "encryption": 1, "download-dir": downloads, "incomplete-dir-enabled": False,
        "rpc-enabled": True, "rpc-bind-address": "127.0.0.1", "rpc-port": RPC_PORT,
        "rpc-authentication-required": False, "rpc-whitelist-enabled": False,
        "rpc-host-whitelist-enabled": False, "speed-limit-down-enabled": False,
        "speed-limit-up-enabled": False, "alt-speed-enabled": False, "ratio-limit-enabled": False,
        "idle-seeding-limit-enabled": False, "download-queue-enabled": False,
        "seed-queue-enabled": False, "queue-stalled-enabled": False, "start-added-torrents": True,
        "peer-limit-global": 500, "peer-limit-per-torrent": 100, "blocklist-enabled": False,
        "message-level": 1, "cache-size-mb": 4, "prefetch-enabled": True,
    }


class TransmissionClient(ClientAdapter):
    name = "transmission"
    binary = "transmission-daemon"
    package = "transmission-daemon"

    def __init__(self, setup: Any) -> None:
        super().__init__(setup)
        self._session: Optional[str] = None

    def _call(self, method: str, arguments: dict[str, Any]) -> Any:
        for _ in range(3):  # the first call learns the session id (409)
            headers = {"X-Transmission-Session-Id": self._session} if self._session else {}
            code, hdrs, body = http_json(f"http://127.0.0.1:{RPC_PORT}/transmission/rpc",
                                         {"method": method, "arguments": arguments}, headers)
            if code == 409:
                self._session = {k.lower(): v for k, v in hdrs.items()}.get(
                    "x-transmission-session-id")
                continue
            answer = json.loads(body) if code == 200 else {"result": f"HTTP {code}"}
            if answer.get("result") != "success":
                raise ClientError(f"transmission {method}: {answer.get('result')}")
            return answer.get("arguments", {})
        raise ClientError(f"transmission {method}: no session id")

    def start(self) -> list[int]:
        s = self.setup
        config = s.home / "settings.json"
        if not config.exists():
            s.home.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps(settings(s.ip, s.wire_port, str(s.downloads)), indent=1))
        log = open(s.log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([self.binary, "-f", "-g", str(s.home)], stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        wait_until_answers(lambda: self._call("session-get", {}), "transmission-daemon")
        return [proc.pid]

    def add(self, torrent: bytes, infohash: str) -> None:
        self._call("torrent-add", {"metainfo": base64.b64encode(torrent).decode(),
                                   "download-dir": str(self.setup.downloads), "paused": False})

    def torrents(self) -> dict[str, ClientTorrent]:
        out: dict[str, ClientTorrent] = {}
        for t in self._call("torrent-get", {"fields": FIELDS}).get("torrents", []):
            pieces = int(t["pieceCount"])
            size = int(t["pieceSize"]) or 1
            have = pieces if t["leftUntilDone"] == 0 and t["status"] not in CHECKING else min(
                pieces, int(t["haveValid"]) // size)
            out[str(t["hashString"]).lower()] = ClientTorrent(
                pieces=pieces, have=have, downloaded=int(t["downloadedEver"]),
                uploaded=int(t["uploadedEver"]), rate_down=float(t["rateDownload"]),
                rate_up=float(t["rateUpload"]), peers=int(t["peersConnected"]),
                checking=t["status"] in CHECKING)
        return out

    def stop(self) -> None:
        self._call("session-close", {})
