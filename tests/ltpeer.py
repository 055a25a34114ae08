"""A libtorrent (PyPI ``libtorrent``) peer on 127.0.0.1 for interop tests and benchmarks:
no DHT/LSD/UPnP/NAT-PMP, TCP only, several peers per IP allowed (everything is loopback)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Optional

import libtorrent as lt

BASE_SETTINGS: dict[str, Any] = {
    "listen_interfaces": "127.0.0.1:0",
    "outgoing_interfaces": "127.0.0.1",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": int(lt.alert.category_t.error_notification),
}


def make_torrent(path: Path, piece_length: int, v1_only: bool = True) -> bytes:
    """A single-file .torrent of ``path`` made by libtorrent (v1 only, or libtorrent 2.x's
    default: hybrid v1+v2)."""
    fs = lt.file_storage()
    lt.add_files(fs, str(path))
    ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only if v1_only else 0)
    lt.set_piece_hashes(ct, str(path.parent))
    return bytes(lt.bencode(ct.generate()))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LtPeer:
    def __init__(self, save_path: Path, extra: Optional[dict[str, Any]] = None) -> None:
        self.save_path = save_path
        save_path.mkdir(parents=True, exist_ok=True)
        settings: Any = dict(BASE_SETTINGS, **(extra or {}))
        self.session = lt.session(settings)
        self.handle: Any = None

    @property
    def port(self) -> int:
        return int(self.session.listen_port())

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, torrent: bytes) -> Any:
        atp = lt.add_torrent_params()
        decoded: Any = lt.bdecode(torrent)
        atp.ti = lt.torrent_info(decoded)
        atp.save_path = str(self.save_path)
        atp.flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
        self.handle = self.session.add_torrent(atp)
        return self.handle

    def connect(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        self.handle.connect_peer((host, int(port)))

    def status(self) -> Any:
        self.session.pop_alerts()  # keep the alert queue from growing
        return self.handle.status()

    def wait_state(self, seeding: bool, timeout: float, connect: tuple[str, ...] = ()) -> Any:
        """Wait until checked (and seeding if asked), re-connecting to ``connect`` peers."""
        deadline = time.monotonic() + timeout
        last_connect = 0.0
        while True:
            st = self.status()
            checked = st.state not in (
                lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data
            )
            if checked and (st.is_seeding or not seeding):
                return st
            now = time.monotonic()
            if checked and connect and now - last_connect > 2.0:
                for addr in connect:
                    self.connect(addr)
                last_connect = now
            if now > deadline:
                raise AssertionError(
                    f"libtorrent: timed out ({timeout}s); state={st.state} progress="
                    f"{st.progress:.3f} peers={st.num_peers} errc={st.errc.message()}"
                )
            time.sleep(0.05)

    def recheck_complete(self, timeout: float = 60.0) -> bool:
        """Force a full hash check; True when libtorrent then holds every piece."""
        self.handle.force_recheck()
        time.sleep(0.2)
        st = self.wait_state(False, timeout)
        return bool(st.is_seeding and st.num_pieces == self.handle.torrent_file().num_pieces())

    def close(self) -> None:
        if self.handle is not None:
            self.session.remove_torrent(self.handle)
            self.handle = None
        self.session.pause()
