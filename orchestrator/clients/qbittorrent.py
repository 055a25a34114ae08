"""`client: qbittorrent`: qbittorrent-nox with its Web API on the namespace's loopback.

qBittorrent.conf is written on first start only (qBittorrent keeps its BT_backup resume data
in the same profile): no DHT, LSD, UPnP/NAT-PMP, peer country lookups (GeoIP downloads),
queueing or ratio limits; TCP only; PEX on; peers on the node's address; the Web API open
to localhost without a login (it binds 127.0.0.1 inside the node's namespace only).
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import uuid
from typing import Any

from orchestrator.clients.base import (
    ClientAdapter,
    ClientError,
    ClientTorrent,
    http_json,
    wait_until_answers,
)

WEB_PORT = 8080
CHECKING = {"checkingUP", "checkingDL", "checkingResumeData", "allocating", "moving"}


def config(ip: str, port: int, downloads: str) -> str:
    return "\n".join([
        "[LegalNotice]", "Accepted=true", "",
        "[BitTorrent]",
        "Session\\DHTEnabled=false", "Session\\LSDEnabled=false", "Session\\PeXEnabled=true",
        f"Session\\Port={port}", f"Session\\InterfaceAddress={ip}",
        "Session\\BTProtocol=TCP", "Session\\Encryption=0", "Session\\AnonymousModeEnabled=false",
        f"Session\\DefaultSavePath={downloads}", "Session\\QueueingSystemEnabled=false",
        "Session\\GlobalMaxRatio=-1", "Session\\AddTorrentPaused=false",
        "Session\\IgnoreLimitsOnLAN=false", "Session\\AnnounceToAllTrackers=true", "",
        "[Network]", "PortForwardingEnabled=false", "",
        "[Preferences]",
        "Connection\\UPnP=false", "Connection\\ResolvePeerCountries=false",
        "General\\Locale=en", f"Downloads\\SavePath={downloads}",
        "WebUI\\Address=127.0.0.1", f"WebUI\\Port={WEB_PORT}", "WebUI\\LocalHostAuth=false",
        "WebUI\\CSRFProtection=false", "WebUI\\HostHeaderValidation=false",
        "WebUI\\UseUPnP=false", "",
    ])


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                     .encode())
    for k, (fname, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
                     f'filename="{fname}"\r\nContent-Type: application/x-bittorrent\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class QbittorrentClient(ClientAdapter):
    name = "qbittorrent"
    binary = "qbittorrent-nox"
    package = "qbittorrent-nox"
    accepts_peers = True

    def _get(self, path: str, **query: str) -> Any:
        q = ("?" + urllib.parse.urlencode(query)) if query else ""
        code, _, body = http_json(f"http://127.0.0.1:{WEB_PORT}/api/v2/{path}{q}")
        if code != 200:
            raise ClientError(f"qbittorrent {path}: HTTP {code} {body[:200]!r}")
        return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()

    def _post(self, path: str, data: bytes, ctype: str) -> str:
        code, _, body = http_json(f"http://127.0.0.1:{WEB_PORT}/api/v2/{path}", data=data,
                                  headers={"Content-Type": ctype}, timeout=30)
        if code != 200:
            raise ClientError(f"qbittorrent {path}: HTTP {code} {body[:200]!r}")
        return body.decode(errors="replace")

    def start(self) -> list[int]:
        s = self.setup
        conf = s.home / "qBittorrent" / "config" / "qBittorrent.conf"
        if not conf.exists():
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(config(s.ip, s.wire_port, str(s.downloads)))
        log = open(s.log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([self.binary, f"--profile={s.home}", f"--webui-port={WEB_PORT}"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_until_answers(lambda: self._get("app/version"), "qbittorrent-nox", timeout=60)
        return [proc.pid]

    def add(self, torrent: bytes, infohash: str) -> None:
        if self._get("torrents/info", hashes=infohash):
            return
        body, ctype = multipart({"savepath": str(self.setup.downloads), "paused": "false"},
                                {"torrents": (f"{infohash}.torrent", torrent)})
        answer = self._post("torrents/add", body, ctype)
        if answer.strip() != "Ok.":
            raise ClientError(f"qbittorrent refused the torrent: {answer[:200]}")

    def torrents(self) -> dict[str, ClientTorrent]:
        out: dict[str, ClientTorrent] = {}
        for t in self._get("torrents/info"):
            ih = str(t["hash"]).lower()
            props = self._get("torrents/properties", hash=ih)
            peers = self._get("sync/torrentPeers", hash=ih).get("peers", {})
            out[ih] = ClientTorrent(
                pieces=int(props.get("pieces_num", 0)), have=int(props.get("pieces_have", 0)),
                downloaded=int(t.get("downloaded", 0)), uploaded=int(t.get("uploaded", 0)),
                rate_down=float(t.get("dlspeed", 0)), rate_up=float(t.get("upspeed", 0)),
                peers=len(peers),
                bytes_from={a: int(p.get("downloaded", 0)) for a, p in peers.items()},
                bytes_to={a: int(p.get("uploaded", 0)) for a, p in peers.items()},
                checking=t.get("state") in CHECKING)
        return out

    def add_peers(self, infohash: str, peers: list[tuple[str, int]]) -> int:
        data = urllib.parse.urlencode({"hashes": infohash,
                                       "peers": "|".join(f"{h}:{p}" for h, p in peers)}).encode()
        self._post("torrents/addPeers", data, "application/x-www-form-urlencoded")
        return len(peers)

    def stop(self) -> None:
        self._post("app/shutdown", b"", "application/x-www-form-urlencoded")
