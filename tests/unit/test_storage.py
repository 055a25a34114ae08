"""PieceStore: verified writes, resume journal (torn/corrupt), adopt, reads, kill -9 safety."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from peer import metainfo, storage
from peer.metainfo import Metainfo
from peer.storage import JOURNAL_FILE, METAINFO_FILE, HashMismatch, PieceStore
from tests.facilities import nowait_reads, require

pytestmark = pytest.mark.timeout(120)

KiB = 1024
REPO = Path(__file__).resolve().parents[2]


def _content(tmp_path: Path, size: int = 100 * KiB, pl: int = 16 * KiB) -> tuple:
    src = tmp_path / "src.bin"
    src.write_bytes(random.Random(size).randbytes(size))
    meta = metainfo.create(src, piece_length=pl)
    return src, meta, src.read_bytes()


def _piece(meta: Metainfo, data: bytes, i: int) -> bytes:
    off = meta.piece_offset(i)
    return data[off:off + meta.piece_size(i)]


def test_write_verify_and_complete(tmp_path: Path) -> None:
    _, meta, data = _content(tmp_path)
    root = tmp_path / "t"
    with PieceStore.open(root, meta) as st:
        assert metainfo.parse((root / METAINFO_FILE).read_bytes()) == meta
        assert (root / meta.name).stat().st_size == meta.length  # sparse, full size
        assert st.resumed == 0 and st.have_count == 0 and not st.complete
        assert st.verify(0, _piece(meta, data, 0)) and not st.verify(0, _piece(meta, data, 1))
        assert not st.verify(6, b"short")
        with pytest.raises(HashMismatch):
            st.write_piece(1, _piece(meta, data, 2)[:16 * KiB])
        assert not st.has(1)
        with pytest.raises(ValueError):
            st.write_piece(1, b"x")
        for i in reversed(range(meta.num_pieces)):
            assert st.write_piece(i, _piece(meta, data, i)) is True
        assert st.write_piece(0, _piece(meta, data, 0)) is False  # already held: no-op
        assert st.complete and st.have_count == meta.num_pieces and st.bitfield.all()
        assert st.sha256() == hashlib.sha256(data).hexdigest()
    assert (root / meta.name).read_bytes() == data
    assert len((root / JOURNAL_FILE).read_bytes()) == 4 * meta.num_pieces


def test_verified_flag_skips_hash(tmp_path: Path) -> None:
    _, meta, data = _content(tmp_path)
    with PieceStore.open(tmp_path / "t", meta, fsync=True) as st:
        assert st.write_piece(3, b"\0" * meta.piece_size(3), verified=True)
        assert st.has(3)
    # The lie is caught on the next open: the journaled piece does not hash.
    with PieceStore.open(tmp_path / "t", meta) as st:
        assert st.resumed == 0 and not st.has(3)


def test_resume_torn_journal_and_corrupt_piece(tmp_path: Path) -> None:
    _, meta, data = _content(tmp_path)
    root = tmp_path / "t"
    with PieceStore.open(root, meta) as st:
        for i in (0, 2, 3, 5):
            st.write_piece(i, _piece(meta, data, i))
    journal = root / JOURNAL_FILE
    with open(journal, "ab") as f:
        f.write(b"\x00\x00")  # torn record from a crash mid-append
    payload = root / meta.name
    with open(payload, "r+b") as f:  # piece 3 half-overwritten on disk
        f.seek(meta.piece_offset(3) + 100)
        f.write(b"garbage")
    with PieceStore.open(root, meta) as st:
        assert st.resumed == 3 and sorted(st.bitfield.iter_set()) == [0, 2, 5]
        assert not st.has(3)
        assert len(journal.read_bytes()) == 12  # rewritten: aligned, only good records
        assert st.write_piece(3, _piece(meta, data, 3))
    with PieceStore.open(root, meta) as st:
        assert st.resumed == 4 and st.has(3)


def test_resume_ignores_out_of_range_and_duplicate_records(tmp_path: Path) -> None:
    _, meta, data = _content(tmp_path)
    root = tmp_path / "t"
    with PieceStore.open(root, meta) as st:
        st.write_piece(1, _piece(meta, data, 1))
    with open(root / JOURNAL_FILE, "ab") as f:
        f.write((1).to_bytes(4, "big") + (999).to_bytes(4, "big") + b"\xff" * 4)
    with PieceStore.open(root, meta) as st:
        assert st.resumed == 1 and list(st.bitfield.iter_set()) == [1]


def test_adopt_links_and_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, meta, data = _content(tmp_path)
    with PieceStore.adopt(tmp_path / "a", meta, src) as st:
        assert st.complete and st.resumed == meta.num_pieces
        assert os.path.samefile(src, tmp_path / "a" / meta.name)
        assert st.read(6, 0, 4 * KiB) == data[6 * 16 * KiB:]
    with PieceStore.open(tmp_path / "a", meta) as st:
        assert st.resumed == meta.num_pieces

    def no_link(*_: object) -> None:
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    with PieceStore.adopt(tmp_path / "b", meta, src) as st:
        assert st.complete and not os.path.samefile(src, tmp_path / "b" / meta.name)
        assert st.sha256() == hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError):
        PieceStore.adopt(tmp_path / "c", meta, tmp_path / "a" / JOURNAL_FILE)


def test_reads_in_and_out_of_bounds(tmp_path: Path) -> None:
    src, meta, data = _content(tmp_path)
    with PieceStore.adopt(tmp_path / "t", meta, src) as st:
        assert st.read(1, 100, 1000) == data[16 * KiB + 100:16 * KiB + 1100]
        assert st.read(6, 4 * KiB - 1, 1) == data[-1:]
        for i, begin, length in [(0, 0, 16 * KiB + 1), (0, -1, 10), (0, 10, 0),
                                 (6, 0, 4 * KiB + 1), (6, 4 * KiB, 1)]:
            with pytest.raises(ValueError):
                st.read(i, begin, length)
        with pytest.raises(IndexError):
            st.read(7, 0, 1)


def test_reserved_payload_name(tmp_path: Path) -> None:
    src = tmp_path / JOURNAL_FILE
    src.write_bytes(b"x" * 1000)
    meta = metainfo.create(src)
    with PieceStore.adopt(tmp_path / "t", meta, src) as st:
        assert st.path.name != JOURNAL_FILE and st.complete
    with PieceStore.open(tmp_path / "t", meta) as st:
        assert st.resumed == 1


def test_concurrent_writers(tmp_path: Path) -> None:
    _, meta, data = _content(tmp_path, size=64 * 16 * KiB)
    with PieceStore.open(tmp_path / "t", meta) as st:
        wrote: list = []

        def worker() -> None:
            for i in range(meta.num_pieces):
                if st.write_piece(i, _piece(meta, data, i)):
                    wrote.append(i)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(wrote) == list(range(meta.num_pieces)) and st.complete
    assert len((tmp_path / "t" / JOURNAL_FILE).read_bytes()) == 4 * meta.num_pieces


_CHILD = """
import random, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from peer import metainfo
from peer.storage import PieceStore
src = Path(sys.argv[2]).read_bytes()
meta = metainfo.parse(Path(sys.argv[3]).read_bytes())
# fsync makes each piece slow enough for the kills to land mid-way through the file.
st = PieceStore.open(Path(sys.argv[4]), meta, fsync=True)
missing = list(st.bitfield.iter_missing())
random.shuffle(missing)
print("ready", flush=True)
for i in missing:
    off = meta.piece_offset(i)
    st.write_piece(i, src[off:off + meta.piece_size(i)])
"""


def test_sigkill_while_writing_never_counts_a_bad_piece(tmp_path: Path) -> None:
    src, meta, data = _content(tmp_path, size=8 * 1024 * KiB + 5, pl=32 * KiB)
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(meta.to_torrent_bytes())
    root = tmp_path / "t"
    rng = random.Random(1)
    counts = []
    for _ in range(15):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(REPO), str(src), str(torrent), str(root)],
            stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None
            child.stdout.readline()
            time.sleep(rng.uniform(0, 0.015))
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(30)
        with PieceStore.open(root, meta) as st:
            for i in st.bitfield.iter_set():
                assert st.read(i, 0, meta.piece_size(i)) == _piece(meta, data, i), i
            counts.append(st.resumed)
    assert counts[0] < meta.num_pieces  # the first kill did land mid-download
    assert counts == sorted(counts)  # verified pieces are never lost across kills
    with PieceStore.open(root, meta) as st:
        for i in list(st.bitfield.iter_missing()):
            st.write_piece(i, _piece(meta, data, i))
        assert st.complete and st.sha256() == hashlib.sha256(data).hexdigest()


def test_open_store_helper(tmp_path: Path) -> None:
    src, meta, _ = _content(tmp_path)
    with storage.open_store(tmp_path / "t", meta, src=src) as st:
        assert st.complete
    with storage.open_store(tmp_path / "t", meta) as st:
        assert st.resumed == meta.num_pieces


def test_payload_never_takes_the_state_file_name(tmp_path: Path) -> None:
    from peer.storage import STATE_FILE, payload_path

    src = tmp_path / STATE_FILE
    src.write_bytes(b"x" * 1000)
    meta = metainfo.create(src, piece_length=16384)
    assert payload_path(tmp_path / "root", meta).name != STATE_FILE


def test_cached_reads_equal_reads_and_never_wait(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop's read (RWF_NOWAIT): the same bytes as read() when the page cache has
    them (None where the filesystem cannot say); None, not a wait, when it does not; None
    for good once the system refuses."""
    require(None if hasattr(os, "RWF_NOWAIT") else "reads that never wait need Linux")
    src, meta, data = _content(tmp_path)
    with PieceStore.adopt(tmp_path / "t", meta, src) as st:
        supported = nowait_reads(st.path)
        for i, begin, length in [(1, 100, 1000), (6, 0, 4 * KiB), (0, 0, 16 * KiB)]:
            expected = st.read(i, begin, length) if supported else None
            assert st.read_cached(i, begin, length) == expected
        with pytest.raises(ValueError):
            st.read_cached(6, 0, 4 * KiB + 1)
        calls = []

        def not_cached(fd: int, bufs: list, offset: int, flags: int) -> int:
            calls.append(flags)
            raise BlockingIOError(11, "not cached")

        monkeypatch.setattr(os, "preadv", not_cached)
        st._payload._nowait = True  # as on a filesystem that takes them
        assert st.read_cached(1, 0, 100) is None
        assert calls == [os.RWF_NOWAIT]
        assert st.read(1, 0, 100) == data[16 * KiB:16 * KiB + 100]  # the thread's way

        def unsupported(fd: int, bufs: list, offset: int, flags: int) -> int:
            calls.append(flags)
            raise OSError(95, "Operation not supported")

        monkeypatch.setattr(os, "preadv", unsupported)
        assert st.read_cached(1, 0, 100) is None
        assert st.read_cached(1, 0, 100) is None
        assert len(calls) == 2  # asked once, then never again


# --- where a verified piece is stored: on the loop or in the I/O thread ---------------------
def test_inline_writes_for_pieces_that_come_slowly() -> None:
    from peer.storage import InlineWrites

    route = InlineWrites(max_rate=20e6)
    piece = 256 * 1024  # 13 ms at 20 MB/s
    assert route.choose(piece, 100.0)  # the first one
    assert route.choose(piece, 100.2)  # 200 ms later: a 1+64 leecher's pace
    assert not route.choose(piece, 100.201)  # 1 ms later: loopback pace, the thread hashes
    assert route.choose(piece, 100.3)
    assert not route.choose(2 << 20, 200.0)  # over max_size


def test_inline_writes_off_for_a_syncing_store_and_after_a_write_that_waited() -> None:
    from peer.storage import InlineWrites

    assert not InlineWrites(enabled=False).choose(1024, 1.0)
    route = InlineWrites(slow=0.02)
    assert not route.wrote(0.5, waited=False)  # preempted on a busy host: slow, not waiting
    assert not route.wrote(0.001, waited=True)  # waited, briefly
    assert route.choose(1024, 1.0)
    assert route.wrote(0.05, waited=True)
    assert not route.choose(1024, 10.0)
    assert not route.wrote(0.05, waited=True)  # said once


def test_voluntary_switches_count_a_wait() -> None:
    import sys
    import time

    from peer.storage import voluntary_switches

    before = voluntary_switches()
    if not sys.platform.startswith("linux"):
        assert before is None
        return
    assert before is not None
    time.sleep(0.01)  # sleeping gives the CPU up
    after = voluntary_switches()
    assert after is not None and after > before
