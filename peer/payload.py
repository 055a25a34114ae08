"""A torrent's payload files addressed by piece-space offset (piece -> file spans).

Single-file torrents are one file; multi-file torrents are a directory of files at their
``FileEntry.offset``. Pad files (BEP 47) and v2 alignment gaps are not stored: they read as
zeros and writes to them are dropped (a verified piece has zeros there anyway).
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

from peer.metainfo import FileEntry, Metainfo

__all__ = ["Span", "file_spans", "Payload", "payload_files", "ContentMismatch",
           "check_content", "content_sha256"]

Buffer = Union[bytes, bytearray, memoryview]
Span = Tuple[Optional[int], int, int]  # (index into stored files or None for zeros, offset, n)


def payload_files(meta: Metainfo) -> List[FileEntry]:
    """The files that are stored, in piece-space order."""
    if not meta.files:  # defensive: a Metainfo built by hand
        return [FileEntry((meta.name,), meta.length, 0)]
    return [f for f in meta.files if not f.pad]


def file_spans(files: List[FileEntry], starts: List[int], offset: int, length: int
               ) -> List[Span]:
    """Split piece-space bytes ``offset..offset+length`` into file spans and zero gaps."""
    out: List[Span] = []
    end = offset + length
    k = max(0, bisect.bisect_right(starts, offset) - 1)
    pos = offset
    while pos < end:
        while k < len(files) and files[k].end <= pos:
            k += 1
        if k == len(files):
            out.append((None, 0, end - pos))
            break
        f = files[k]
        if pos < f.offset:  # a pad file or alignment gap
            n = min(f.offset, end) - pos
            out.append((None, 0, n))
        else:
            n = min(f.end, end) - pos
            out.append((k, pos - f.offset, n))
        pos += n
    return out


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise OSError(f"short read at offset {offset + got}")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


_NOWAIT = getattr(os, "RWF_NOWAIT", 0)  # Linux >= 4.14: a read that never waits for the disk


def _pread_nowait(fd: int, length: int, offset: int) -> Optional[bytes]:
    """The bytes if the page cache holds all of them, else None (never blocks on I/O).
    Raises OSError where such reads are not supported (old kernel, some filesystems)."""
    buf = bytearray(length)
    try:
        got = os.preadv(fd, [buf], offset, _NOWAIT)
    except BlockingIOError:  # EAGAIN: not (all) in the page cache
        return None
    return bytes(buf) if got == length else None


def _pwrite_full(fd: int, data: Buffer, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


class ContentMismatch(ValueError):
    """Existing content does not fit a torrent (missing file, size, piece hash)."""


class Payload:
    """Open file descriptors for every stored file (created sparse at their full size)."""

    def __init__(self, base: Path, meta: Metainfo, create: bool = True,
                 readonly: bool = False) -> None:
        """``readonly``: existing content, never changed; a file of the wrong size raises
        ContentMismatch instead of being resized."""
        self.files = payload_files(meta)
        self.starts = [f.offset for f in self.files]
        self.paths = [self._path(base, meta, f) for f in self.files]
        self.fds: List[int] = []
        self._nowait = bool(_NOWAIT)  # pread_cached may try (cleared if the system refuses)
        try:
            for path, f in zip(self.paths, self.files):
                if readonly:
                    if path.is_symlink() or not path.is_file():
                        raise ContentMismatch(f"{path}: not a regular file")
                    fd = os.open(path, os.O_RDONLY)
                else:
                    if create:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
                self.fds.append(fd)
                if os.fstat(fd).st_size == f.length:
                    continue
                if readonly:
                    raise ContentMismatch("file size does not match the metainfo")
                os.ftruncate(fd, f.length)  # sparse extension (or cut a foreign tail)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _path(base: Path, meta: Metainfo, f: FileEntry) -> Path:
        if not meta.multi_file:
            return base
        path = base.joinpath(*f.path)
        # Components were checked when parsing; this guards against a hand-made Metainfo.
        if os.path.commonpath([os.path.abspath(path), os.path.abspath(base)]) != \
                os.path.abspath(base):
            raise ValueError(f"{path} is outside {base}")
        return path

    def spans(self, offset: int, length: int) -> List[Span]:
        return file_spans(self.files, self.starts, offset, length)

    def pread(self, offset: int, length: int) -> bytes:
        if len(self.fds) == 1 and self.starts[0] == 0 and offset + length <= self.files[0].end:
            return _pread_full(self.fds[0], length, offset)  # the single-file fast path
        parts = [_pread_full(self.fds[k], n, off) if k is not None else bytes(n)
                 for k, off, n in self.spans(offset, length)]
        return b"".join(parts)

    def pread_cached(self, offset: int, length: int) -> Optional[bytes]:
        """As :meth:`pread` when every byte is in the page cache, else None at once: the
        event loop may call it (a thread hand-off costs more than a cached read)."""
        if not self._nowait:
            return None
        parts = []
        for k, off, n in self.spans(offset, length):
            try:
                part = _pread_nowait(self.fds[k], n, off) if k is not None else bytes(n)
            except OSError:  # not supported here: always the I/O thread from now on
                self._nowait = False
                return None
            if part is None:
                return None
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def pwrite(self, offset: int, data: Buffer) -> None:
        view = memoryview(data)
        pos = 0
        for k, off, n in self.spans(offset, len(view)):
            if k is not None:
                _pwrite_full(self.fds[k], view[pos:pos + n], off)
            pos += n

    def datasync(self, offset: int, length: int) -> None:
        for k, _, _ in self.spans(offset, length):
            if k is not None:
                os.fdatasync(self.fds[k])

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def check_content(meta: Metainfo, src: Path) -> None:
    """Hash-check complete content at ``src`` (a file, or the torrent's directory) before
    it is adopted as verified; raises ContentMismatch."""
    if src.is_dir() != meta.multi_file:
        raise ContentMismatch(f"{'a directory' if meta.multi_file else 'a file'} expected")
    payload = Payload(src, meta, readonly=True)
    try:
        for i in range(meta.num_pieces):
            if not meta.verify_piece(i, payload.pread(i * meta.piece_length,
                                                      meta.piece_size(i))):
                raise ContentMismatch("file does not match the metainfo's piece hashes")
    finally:
        payload.close()


def content_sha256(meta: Metainfo, src: Path) -> str:
    """SHA-256 of the content as PieceStore.sha256 computes it (files in torrent order)."""
    import hashlib  # noqa: PLC0415 - only this helper needs it

    h = hashlib.sha256()
    payload = Payload(src, meta, readonly=True)
    try:
        for f in payload.files:
            off = f.offset
            while off < f.end:
                n = min(1 << 20, f.end - off)
                h.update(payload.pread(off, n))
                off += n
    finally:
        payload.close()
    return h.hexdigest()
