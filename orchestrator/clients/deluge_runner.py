"""The bridge to a `client: deluge` node's deluged: the same small JSON API as lt_runner.py
(POST /add, POST /peers, GET /torrents) on the namespace's loopback, spoken to deluged over
its RPC (TLS, zlib + rencode messages). Run by the system python3, where Debian's deluged
brings rencode; stdlib + rencode only:

    python3 deluge_runner.py --config DIR --daemon-port 58846 --api-port 9301 --save DIR
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import rencode  # type: ignore[import-not-found]

KEYS = ["hash", "num_pieces", "progress", "state", "total_payload_download",
        "total_payload_upload", "download_payload_rate", "upload_payload_rate", "num_peers"]


class Rpc:
    """One logged-in connection to deluged; calls are serialised."""

    def __init__(self, port: int, config: Path) -> None:
        self.port, self.config = port, config
        self.lock = threading.Lock()
        self.sock: Any = None
        self.next_id = 0
        self.buf = b""

    def _connect(self) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock, self.buf = ctx.wrap_socket(raw), b""
        user, password = self.config.joinpath("auth").read_text().splitlines()[0].split(":")[:2]
        self._call("daemon.login", [user, password], {"client_version": "2.0.3"})

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("deluged closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _call(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self.next_id += 1
        rid = self.next_id
        body = zlib.compress(rencode.dumps(((rid, method, args, kwargs),)))
        self.sock.sendall(struct.pack("!BI", 1, len(body)) + body)
        while True:
            _version, length = struct.unpack("!BI", self._read(5))
            msg = rencode.loads(zlib.decompress(self._read(length)), decode_utf8=True)
            if msg[0] == 3 or msg[1] != rid:  # an event, or an answer to someone else
                continue
            if msg[0] == 2:
                raise ValueError(f"deluged {method}: {msg[2]}: {msg[3]}")
            return msg[2]

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            if self.sock is None:
                self._connect()
            try:
                return self._call(method, list(args), kwargs)
            except OSError:
                self.sock = None
                raise


def torrents(rpc: Rpc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ih, st in rpc.call("core.get_torrents_status", {}, KEYS).items():
        pieces = int(st["num_pieces"])
        checking = str(st["state"]).startswith("Checking")
        out[ih] = {
            "pieces": pieces, "have": int(pieces * float(st["progress"]) / 100.0 + 1e-6),
            "downloaded": int(st["total_payload_download"]),
            "uploaded": int(st["total_payload_upload"]),
            "rate_down": float(st["download_payload_rate"]),
            "rate_up": float(st["upload_payload_rate"]),
            "peers": int(st["num_peers"]), "bytes_from": None, "bytes_to": None,
            "checking": checking,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--daemon-port", type=int, required=True)
    ap.add_argument("--api-port", type=int, required=True)
    ap.add_argument("--save", required=True)
    args = ap.parse_args()
    rpc = Rpc(args.daemon_port, args.config)
    deadline = time.monotonic() + 60
    while True:  # deluged writes its auth file and opens its port shortly after start
        try:
            rpc.call("daemon.info")
            break
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: Any) -> None:  # noqa: A002 - stdlib name
            pass

        def reply(self, code: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/torrents":
                self.reply(404, {"error": "no such path"})
                return
            try:
                self.reply(200, torrents(rpc))
            except (OSError, ValueError) as exc:
                self.reply(503, {"error": str(exc)})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            try:
                if self.path == "/add":
                    have = rpc.call("core.get_torrents_status", {}, ["hash"])
                    if body.get("infohash") not in have:
                        rpc.call("core.add_torrent_file", "t.torrent", body["torrent"],
                                 {"download_location": args.save, "add_paused": False,
                                  "auto_managed": False})
                    else:  # deluged restores a torrent paused after a kill: its resume
                        rpc.call("core.resume_torrents", [body["infohash"]])
                    self.reply(200, {"infohash": body.get("infohash")})
                elif self.path == "/peers":
                    n = 0
                    for text in body["peers"]:
                        host, _, port = text.rpartition(":")
                        rpc.call("core.connect_peer", body["infohash"], host, int(port))
                        n += 1
                    self.reply(200, {"added": n})
                else:
                    self.reply(404, {"error": "no such path"})
            except (KeyError, ValueError, OSError) as exc:
                self.reply(400, {"error": str(exc)})

    ThreadingHTTPServer(("127.0.0.1", args.api_port), Handler).serve_forever()


if __name__ == "__main__":
    main()
