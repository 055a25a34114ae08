"""`client: aria2`: aria2c with JSON-RPC on the namespace's loopback.

No DHT (v4/v6), no LPD; PEX on (peers of the mesh only). Seeds without a ratio limit.
aria2 cannot be told peers to dial: it finds them through the torrent's tracker and
through peers that dial it. Resume: its control files, re-added with check-integrity.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

from orchestrator.clients.base import (
    ClientAdapter,
    ClientError,
    ClientTorrent,
    count_bits,
    http_json,
    wait_until_answers,
)

RPC_PORT = 6800
KEYS = ["gid", "status", "infoHash", "numPieces", "bitfield", "completedLength", "totalLength",
        "uploadLength", "downloadSpeed", "uploadSpeed", "connections", "verifiedLength",
        "verifyIntegrityPending"]


class Aria2Client(ClientAdapter):
    name = "aria2"
    binary = "aria2c"
    package = "aria2"

    def _call(self, method: str, *params: Any) -> Any:
        code, _, body = http_json(f"http://127.0.0.1:{RPC_PORT}/jsonrpc", {
            "jsonrpc": "2.0", "id": "m", "method": method, "params": list(params)}, timeout=10)
        answer = json.loads(body)
        if code != 200 or "error" in answer:
            raise ClientError(f"aria2 {method}: {answer.get('error')}")
        return answer["result"]

    def start(self) -> list[int]:
        s = self.setup
        log = open(s.log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([
            self.binary, "--enable-rpc", f"--rpc-listen-port={RPC_PORT}", "--rpc-listen-all=false",
            f"--dir={s.downloads}", f"--listen-port={s.wire_port}",
            *([] if s.any_address else [f"--interface={s.ip}"]),
            "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
            "--enable-peer-exchange=true", "--seed-ratio=0.0", "--bt-seed-unverified=false",
            "--check-integrity=true", "--bt-max-peers=0", "--max-overall-upload-limit=0",
            "--max-overall-download-limit=0", "--file-allocation=none", "--auto-save-interval=1",
            "--bt-hash-check-seed=true", "--console-log-level=warn", "--summary-interval=0",
            "--bt-stop-timeout=0", "--disable-ipv6=true",
        ], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until_answers(lambda: self._call("aria2.getVersion"), "aria2c")
        return [proc.pid]

    def _all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("aria2.tellActive", KEYS)
        out += self._call("aria2.tellWaiting", 0, 1000, KEYS)
        out += self._call("aria2.tellStopped", 0, 1000, KEYS)
        return out

    def add(self, torrent: bytes, infohash: str) -> None:
        if any(d.get("infoHash") == infohash for d in self._all()):
            return
        self._call("aria2.addTorrent", base64.b64encode(torrent).decode(), [],
                   {"dir": str(self.setup.downloads), "check-integrity": "true"})

    def torrents(self) -> dict[str, ClientTorrent]:
        out: dict[str, ClientTorrent] = {}
        for d in self._all():
            ih = d.get("infoHash")
            if not ih or d.get("status") in ("removed",):
                continue
            pieces = int(d.get("numPieces", 0))
            checking = "verifyIntegrityPending" in d or (
                int(d.get("verifiedLength", 0) or 0) > 0)
            out[ih] = ClientTorrent(
                pieces=pieces, have=count_bits(d.get("bitfield", ""), pieces),
                downloaded=int(d.get("completedLength", 0)), uploaded=int(d.get("uploadLength", 0)),
                rate_down=float(d.get("downloadSpeed", 0)), rate_up=float(d.get("uploadSpeed", 0)),
                peers=int(d.get("connections", 0)), checking=checking)
        return out

    def stop(self) -> None:
        self._call("aria2.shutdown")
