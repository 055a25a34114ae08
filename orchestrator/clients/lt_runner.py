"""The libtorrent client of a `client: libtorrent` node: one python3-libtorrent session and a
tiny JSON API on the namespace's loopback. Run by the system python3 (where Debian's
python3-libtorrent lives), stdlib + libtorrent only:

    python3 lt_runner.py --ip NODE_IP --port 6881 --api-port 9300 --state DIR --save DIR

Settings: TCP only, no DHT/LSD/UPnP/NAT-PMP, no rate limits (the kernel shapes the link).
Each added .torrent is kept in --state; a restart adds them again and libtorrent checks the
pieces already on disk (its own resume).

POST /add {"torrent": base64}; POST /peers {"infohash", "peers": ["ip:port"]};
GET /torrents -> {infohash: {pieces, have, downloaded, uploaded, rate_down, rate_up, peers,
bytes_from, bytes_to, checking}}.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import libtorrent as lt  # type: ignore[import-not-found]

LOCK = threading.Lock()
PIECES: dict[str, int] = {}  # infohash -> pieces in the torrent


def session(ip: str, port: int) -> Any:
    return lt.session({
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": "" if ip == "0.0.0.0" else ip,  # 0.0.0.0: in a container
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": lt.alert.category_t.error_notification,
    })


def add(ses: Any, raw: bytes, save: str, state: str) -> str:
    info = lt.torrent_info(lt.bdecode(raw))  # type: ignore[arg-type]
    ih = str(info.info_hash())
    PIECES[ih] = int(info.num_pieces())
    path = os.path.join(state, ih + ".torrent")
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as f:
            f.write(raw)
        os.replace(path + ".tmp", path)
    with LOCK:
        if not ses.find_torrent(info.info_hash()).is_valid():
            ses.add_torrent({"ti": info, "save_path": save})
    return ih


def torrents(ses: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with LOCK:
        handles = ses.get_torrents()
    for h in handles:
        st = h.status()
        got: dict[str, int] = {}
        sent: dict[str, int] = {}
        for p in h.get_peer_info():
            addr = f"{p.ip[0]}:{p.ip[1]}"
            got[addr] = int(p.total_download)
            sent[addr] = int(p.total_upload)
        ih = str(st.info_hashes.v1 if hasattr(st, "info_hashes") else st.info_hash)
        out[ih] = {
            "pieces": PIECES.get(ih, 0),
            "have": int(st.num_pieces),
            "downloaded": int(st.all_time_download),
            "uploaded": int(st.all_time_upload),
            "rate_down": float(st.download_payload_rate),
            "rate_up": float(st.upload_payload_rate),
            "peers": int(st.num_peers),
            "bytes_from": got,
            "bytes_to": sent,
            "checking": st.state in (lt.torrent_status.checking_files,
                                     lt.torrent_status.checking_resume_data),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, default=6881)
    ap.add_argument("--api-port", type=int, required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--save", required=True)
    args = ap.parse_args()
    os.makedirs(args.state, exist_ok=True)
    ses = session(args.ip, args.port)
    for name in sorted(os.listdir(args.state)):  # resume: libtorrent checks what is on disk
        if name.endswith(".torrent"):
            with open(os.path.join(args.state, name), "rb") as f:
                add(ses, f.read(), args.save, args.state)

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
            if self.path == "/torrents":
                self.reply(200, torrents(ses))
            else:
                self.reply(404, {"error": "no such path"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            try:
                if self.path == "/add":
                    raw = base64.b64decode(body["torrent"])
                    self.reply(200, {"infohash": add(ses, raw, args.save, args.state)})
                elif self.path == "/peers":
                    h = ses.find_torrent(lt.sha1_hash(bytes.fromhex(body["infohash"])))
                    n = 0
                    if h.is_valid():
                        for text in body["peers"]:
                            host, _, port = text.rpartition(":")
                            h.connect_peer((host, int(port)))
                            n += 1
                    self.reply(200, {"added": n})
                else:
                    self.reply(404, {"error": "no such path"})
            except (KeyError, ValueError, RuntimeError) as exc:
                self.reply(400, {"error": str(exc)})

    ThreadingHTTPServer(("127.0.0.1", args.api_port), Handler).serve_forever()


if __name__ == "__main__":
    main()
