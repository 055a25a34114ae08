"""Debian's opentracker on 127.0.0.1 in whitelist mode, for clients that only find peers
through a tracker (aria2c, transmission-cli). meshbed agents need no tracker: tests announce
them on their behalf."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from peer import metainfo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tracker:
    """opentracker serving only the given infohashes, on a free 127.0.0.1 port."""

    def __init__(self, root: Path, infohashes: list[str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # opentracker chroots here and drops to nobody
        whitelist = root / "whitelist"
        whitelist.write_text("".join(f"{ih}\n" for ih in infohashes))
        whitelist.chmod(0o644)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/announce"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            ["opentracker", "-i", "127.0.0.1", "-p", str(self.port), "-P", str(self.port),
             "-w", "whitelist", "-d", str(root), *user],
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("opentracker did not start") from None
                time.sleep(0.05)

    def announce(self, infohash: str, port: int, left: int) -> bytes:
        """Announce a peer that does not talk to trackers (a meshbed agent). opentracker
        loads its whitelist in the background after it starts listening, and refuses
        infohashes it has not loaded yet: retry until the announce is accepted."""
        query = urllib.parse.urlencode({
            "peer_id": "-MBTEST-" + hashlib.sha1(str(port).encode()).hexdigest()[:12],
            "port": port, "uploaded": 0, "downloaded": 0, "left": left, "compact": 1,
            "event": "started",
        })
        ih = urllib.parse.quote_from_bytes(bytes.fromhex(infohash))
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"{self.url}?info_hash={ih}&{query}", timeout=5) as r:
                answer = bytes(r.read())
            if b"failure reason" not in answer:
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"opentracker refuses the announce: {answer!r}")
            time.sleep(0.1)

    def torrent_for(self, torrent: bytes) -> bytes:
        """The same torrent (same info dict, same infohash) with our announce URL."""
        info = metainfo.parse(torrent).info_bytes
        url = self.url.encode()
        return b"d8:announce" + str(len(url)).encode() + b":" + url + b"4:info" + info + b"e"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
