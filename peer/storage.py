"""Verified, resumable piece storage for one torrent.

Layout of ``root`` (= DATA_DIR/torrents/<infohash>/):
  metainfo.torrent   the .torrent, written atomically
  <name>             the payload, sparse, written with pwrite at piece offsets: one file,
                     or for a multi-file torrent a directory of files (peer/payload.py
                     maps piece offsets to file spans)
  have.journal       append-only 4-byte big-endian indexes of pieces written *after* their
                     data (so a crash can at worst leave a journaled piece whose data is
                     incomplete; every journaled piece is re-hashed on open, so such a piece
                     is simply not counted)

Thread use: ``verify``/``write_piece``/``read`` may run in worker threads at once (hashing
and pread/pwrite release the GIL); the bookkeeping is under a lock.
"""

from __future__ import annotations

import hashlib
import os
import resource
import secrets
import struct
import threading
from pathlib import Path
from typing import Optional, Union

from peer.files import write_atomic
from peer.metainfo import Metainfo
from peer.payload import Payload, payload_files
from peer.wire import Bitfield

__all__ = ["HashMismatch", "InlineWrites", "PieceStore", "voluntary_switches", "METAINFO_FILE",
           "JOURNAL_FILE", "payload_path", "open_store"]

METAINFO_FILE = "metainfo.torrent"
JOURNAL_FILE = "have.journal"
STATE_FILE = ".meshbed-state.json"  # the agent's per-torrent state (peer/engine.py)
# A payload never takes the name of one of our own files (a torrent named after the state
# file would be overwritten by it).
_RESERVED = {METAINFO_FILE, JOURNAL_FILE, STATE_FILE}
_REC = struct.Struct(">I")
_SHA256_CHUNK = 1 << 20

Buffer = Union[bytes, bytearray, memoryview]


def check_span(i: int, begin: int, length: int, size: int) -> None:
    """ValueError unless ``begin..begin+length`` lies inside piece ``i`` of ``size`` bytes."""
    if begin < 0 or length <= 0 or begin + length > size:
        raise ValueError(f"read {begin}+{length} outside piece {i} of {size} bytes")


class HashMismatch(Exception):
    """A piece's data does not match its SHA-1 from the metainfo."""


def _write_atomic(path: Path, data: bytes, fsync: bool) -> None:
    write_atomic(path, [data], fsync=fsync)


def payload_path(root: Path, meta: Metainfo) -> Path:
    """Where the payload lives (a directory for multi-file torrents); a name that clashes
    with our own files gets a prefix."""
    name = meta.name if meta.name not in _RESERVED else "payload-" + meta.name
    return Path(root) / name


class PieceStore:
    """One torrent's pieces on disk. Create with :meth:`open` or :meth:`adopt`."""

    def __init__(self, root: Path, meta: Metainfo, payload: Payload, journal_fd: int,
                 have: Bitfield, fsync: bool, resumed: int) -> None:
        self.root = root
        self.meta = meta
        self.path = payload_path(root, meta)
        self.fsync = fsync
        self.resumed = resumed  # verified pieces found on disk when opened
        self._payload = payload
        self._journal_fd = journal_fd
        self._have = have
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------ construction

    @classmethod
    def open(cls, root: Path, meta: Metainfo, *, fsync: bool = False) -> PieceStore:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        cls._write_metainfo(root, meta, fsync)
        payload = Payload(payload_path(root, meta), meta)
        try:
            have, rewrite = cls._load_journal(root, meta, payload)
            jpath = root / JOURNAL_FILE
            if rewrite:
                # Drop bad/duplicate/torn records so the journal stays small and aligned.
                _write_atomic(jpath, b"".join(_REC.pack(i) for i in have.iter_set()), fsync)
            jfd = os.open(jpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except BaseException:
            payload.close()
            raise
        return cls(root, meta, payload, jfd, have, fsync, have.count())

    @classmethod
    def adopt(cls, root: Path, meta: Metainfo, src: Path, *, fsync: bool = False) -> PieceStore:
        """Seed from ``src``, complete content just hashed into ``meta`` (a file, or a
        directory for multi-file torrents): hard-link each file (or copy when linking fails)
        into place and journal every piece as verified."""
        root = Path(root)
        src = Path(src)
        if src.is_dir() != meta.multi_file:
            raise ValueError(f"{src}: {'a directory' if meta.multi_file else 'a file'} expected")
        files = payload_files(meta)
        srcs = [src.joinpath(*f.path) if meta.multi_file else src for f in files]
        for f, s in zip(files, srcs):
            if s.stat().st_size != f.length:
                raise ValueError(f"{s}: size {s.stat().st_size} != torrent length {f.length}")
        root.mkdir(parents=True, exist_ok=True)
        cls._write_metainfo(root, meta, fsync)
        base = payload_path(root, meta)
        dsts = [base.joinpath(*f.path) if meta.multi_file else base for f in files]
        for s, dst in zip(srcs, dsts):
            if dst.exists() and os.path.samefile(s, dst):
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            # A fresh random name: os.link never follows or reuses what is there.
            tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(8)}.tmp")
            try:
                os.link(s, tmp)
            except OSError:  # other filesystem, no link support...
                with open(s, "rb") as fh:
                    write_atomic(dst, iter(lambda: fh.read(1 << 20), b""), fsync=fsync)
            else:
                os.replace(tmp, dst)
        n = meta.num_pieces
        _write_atomic(root / JOURNAL_FILE, b"".join(_REC.pack(i) for i in range(n)), fsync)
        payload = Payload(base, meta, create=False)
        jfd = os.open(root / JOURNAL_FILE, os.O_WRONLY | os.O_APPEND)
        return cls(root, meta, payload, jfd, Bitfield.full(n), fsync, n)

    @staticmethod
    def _write_metainfo(root: Path, meta: Metainfo, fsync: bool) -> None:
        path = root / METAINFO_FILE
        data = meta.to_torrent_bytes()
        try:
            if path.read_bytes() == data:
                return
        except OSError:
            pass
        _write_atomic(path, data, fsync)

    @staticmethod
    def _load_journal(root: Path, meta: Metainfo, payload: Payload) -> tuple[Bitfield, bool]:
        """Re-hash every journaled piece; return the verified set and whether to rewrite."""
        have = Bitfield(meta.num_pieces)
        try:
            raw = (root / JOURNAL_FILE).read_bytes()
        except FileNotFoundError:
            return have, False
        whole = len(raw) - len(raw) % 4  # a torn last record is ignored
        rewrite = whole != len(raw)
        for (i,) in _REC.iter_unpack(raw[:whole]):
            if i >= meta.num_pieces or i in have:
                rewrite = True
                continue
            data = payload.pread(i * meta.piece_length, meta.piece_size(i))
            if meta.verify_piece(i, data):
                have.set(i)
            else:
                rewrite = True
        return have, rewrite

    # ------------------------------------------------------------ state

    def has(self, i: int) -> bool:
        return i in self._have

    @property
    def bitfield(self) -> Bitfield:
        """The live set of verified pieces (read it, do not mutate it)."""
        return self._have

    @property
    def have_count(self) -> int:
        return self._have.count()

    @property
    def complete(self) -> bool:
        return self._have.all()

    @property
    def fileno(self) -> int:
        """The payload's file descriptor (e.g. for os.sendfile of held pieces); single-file
        torrents only: multi-file pieces may span files (use ``read``)."""
        if len(self._payload.fds) != 1:
            raise ValueError("a multi-file payload has no single file descriptor")
        return self._payload.fds[0]

    # ------------------------------------------------------------ pieces

    def verify(self, i: int, data: Buffer) -> bool:
        """Pure hash check of a whole piece: SHA-1, or SHA-256 merkle for v2-only torrents
        (hashlib releases the GIL on big buffers)."""
        return self.meta.verify_piece(i, data)

    def write_piece(self, i: int, data: Buffer, *, verified: bool = False) -> bool:
        """Store piece ``i``; False (and nothing done) when it is already held.

        Order: data (pwrite), then journal record, then the in-memory bit: a piece is
        never counted before its data is on disk.
        """
        if self.has(i):
            return False
        if len(data) != self.meta.piece_size(i):
            raise ValueError(f"piece {i}: {len(data)} bytes, expected {self.meta.piece_size(i)}")
        if not verified and not self.verify(i, data):
            raise HashMismatch(f"piece {i} failed its hash check")
        off = i * self.meta.piece_length
        self._payload.pwrite(off, data)
        if self.fsync:
            self._payload.datasync(off, len(data))
        with self._lock:
            if i in self._have:  # another thread stored it meanwhile
                return False
            os.write(self._journal_fd, _REC.pack(i))
            if self.fsync:
                os.fsync(self._journal_fd)
            self._have.set(i)
        return True

    def read(self, i: int, begin: int, length: int) -> bytes:
        """Bytes ``begin..begin+length`` of piece ``i`` (the caller checks it holds it)."""
        check_span(i, begin, length, self.meta.piece_size(i))
        return self._payload.pread(i * self.meta.piece_length + begin, length)

    def read_cached(self, i: int, begin: int, length: int) -> Optional[bytes]:
        """As :meth:`read` if the bytes are in the page cache, else None without waiting."""
        check_span(i, begin, length, self.meta.piece_size(i))
        return self._payload.pread_cached(i * self.meta.piece_length + begin, length)

    def sha256(self) -> str:
        """SHA-256 (hex) of the whole content (multi-file: the files concatenated in torrent
        order, pads and gaps left out), streamed in bounded reads."""
        h = hashlib.sha256()
        chunk = max(_SHA256_CHUNK, self.meta.piece_length)
        for f in self._payload.files:
            off = f.offset
            while off < f.end:
                n = min(chunk, f.end - off)
                h.update(self._payload.pread(off, n))
                off += n
        return h.hexdigest()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._payload.close()
        try:
            os.close(self._journal_fd)
        except OSError:
            pass

    def __enter__(self) -> PieceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PieceStore({str(self.root)!r}, {self.meta.name!r}, "
                f"{self.have_count}/{self.meta.num_pieces})")


def open_store(root: Path, meta: Metainfo, *, fsync: bool = False,
               src: Optional[Path] = None) -> PieceStore:
    """Convenience: adopt ``src`` when given, else open (resume) the store."""
    if src is not None:
        return PieceStore.adopt(root, meta, src, fsync=fsync)
    return PieceStore.open(root, meta, fsync=fsync)


class InlineWrites:
    """Where a verified piece is hashed and written: on the event loop, or in the I/O thread.

    The hand-off to the thread and back (two thread wake-ups, a future, the GIL passed twice)
    costs more than hashing and writing a 256 KiB piece into the page cache (measured on a
    1+64 netns swarm, 2 cores: 1.25 s sooner, in each of 5 alternating pairs). Inline only:
    pieces up to ``max_size``, coming slower than ``max_rate`` bytes/s (from the time since
    the previous one: faster, the thread hashes beside the loop on another core, and loopback
    runs at hundreds of MB/s), never for a store that syncs each write, and never again once
    an inline write waited for the kernel (the disk behind, dirty pages throttled: over
    ``slow`` seconds with a voluntary context switch; a write only preempted on a busy host
    is slow but did not wait)."""

    __slots__ = ("enabled", "max_size", "max_rate", "slow", "_last")

    def __init__(self, *, enabled: bool = True, max_size: int = 1 << 20, max_rate: float = 20e6,
                 slow: float = 0.02) -> None:
        self.enabled = enabled
        self.max_size = max_size
        self.max_rate = max_rate
        self.slow = slow
        self._last = float("-inf")  # monotonic: when the previous piece came

    def choose(self, size: int, now: float) -> bool:
        """A piece of ``size`` bytes came at ``now``: store it inline?"""
        last, self._last = self._last, now
        return self.enabled and size <= self.max_size and now - last > size / self.max_rate

    def wrote(self, took: float, waited: bool) -> bool:
        """An inline write took ``took`` s; ``waited``: the thread switched voluntarily.
        True when inline writes are now off."""
        if self.enabled and took > self.slow and waited:
            self.enabled = False
            return True
        return False


RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)  # Linux only


def voluntary_switches() -> Optional[int]:
    """This thread's voluntary context switches (it waited for the kernel); None where the
    system does not say."""
    return resource.getrusage(RUSAGE_THREAD).ru_nvcsw if RUSAGE_THREAD is not None else None
