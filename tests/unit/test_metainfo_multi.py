"""Multi-file and v2-only torrents: libtorrent's parse here and ours parse in libtorrent
(which also hash-checks our torrents against the data), plus the multi-file store."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer import metainfo
from peer.bencode import bdecode, bencode
from peer.filetree import FileEntry
from peer.metainfo import create, parse
from peer.payload import file_spans
from peer.storage import PieceStore
from tests.facilities import missing, nowait_reads, require

pytestmark = pytest.mark.timeout(120)
PL = 32 * 1024
KINDS = ["v1", "hybrid", "v2"]


def _lt() -> Any:
    try:
        import libtorrent as lt
    except ImportError as e:  # pragma: no cover - depends on the environment
        missing(f"libtorrent not importable: {e}")
    return lt


def _tree(tmp_path: Path) -> Path:
    rng = random.Random(7)
    d = tmp_path / "album"
    (d / "sub" / "deeper").mkdir(parents=True)
    for rel, size in [("a.bin", 70000), ("c.bin", 40000), ("sub/b.bin", 10),
                      ("sub/deeper/z.bin", PL * 3), ("sub/e.bin", 0), ("B.txt", 1)]:
        (d / rel).write_bytes(rng.randbytes(size))
    return d


def _lt_flags(lt: Any, kind: str) -> int:
    return {"v1": lt.create_torrent.v1_only, "hybrid": 0, "v2": lt.create_torrent.v2_only}[kind]


def _lt_make(path: Path, kind: str) -> bytes:
    lt = _lt()
    fs = lt.file_storage()
    lt.add_files(fs, str(path))
    ct = lt.create_torrent(fs, PL, flags=_lt_flags(lt, kind))
    lt.set_piece_hashes(ct, str(path.parent))
    return bytes(lt.bencode(ct.generate()))


def _content(path: Path) -> dict[tuple[str, ...], int]:
    if path.is_file():
        return {(path.name,): path.stat().st_size}
    return {p.relative_to(path).parts: p.stat().st_size for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ["dir", "file"])
def test_parse_libtorrent_torrents(tmp_path: Path, kind: str, shape: str) -> None:
    lt = _lt()
    path = _tree(tmp_path) if shape == "dir" else _tree(tmp_path) / "a.bin"
    raw = _lt_make(path, kind)
    ours = parse(raw)
    hashes = lt.torrent_info(lt.bdecode(raw)).info_hashes()
    if kind == "v2":
        assert ours.v2_only and ours.info_hash == bytes.fromhex(str(hashes.v2))[:20]
    else:
        assert ours.hexhash == str(hashes.v1)
    if kind != "v1":
        assert ours.info_hash_v2 is not None and ours.info_hash_v2.hex() == str(hashes.v2)
    assert ours.multi_file == (shape == "dir")
    assert {f.path: f.length for f in ours.files if not f.pad} == _content(path)
    # Every piece verifies when read through the store's file layout.
    with PieceStore.adopt(tmp_path / "store", ours, path) as store:
        for i in range(ours.num_pieces):
            data = store.read(i, 0, ours.piece_size(i))
            assert store.verify(i, data), f"piece {i}"
        bad = bytearray(store.read(0, 0, ours.piece_size(0)))
        bad[0] ^= 1
        assert not store.verify(0, bytes(bad))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ["dir", "file"])
def test_libtorrent_checks_our_torrents(tmp_path: Path, kind: str, shape: str) -> None:
    lt = _lt()
    path = _tree(tmp_path) if shape == "dir" else _tree(tmp_path) / "a.bin"
    ours = create(path, piece_length=PL, hybrid=kind == "hybrid", v2_only=kind == "v2")
    assert parse(ours.to_torrent_bytes()) == ours
    ti = lt.torrent_info(lt.bdecode(ours.to_torrent_bytes()))
    hashes = ti.info_hashes()
    if kind != "v2":
        assert str(hashes.v1) == ours.hexhash
    if kind != "v1":
        assert ours.info_hash_v2 is not None and str(hashes.v2) == ours.info_hash_v2.hex()
    if kind == "v2":  # v1 file order and hybrid pads are up to the creator; v2's are not
        theirs: Any = lt.bdecode(_lt_make(path, kind))
        assert lt.bencode(theirs[b"info"]) == ours.info_bytes
    # libtorrent hash-checks the data against our torrent and finds it complete.
    ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False,
                      "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False})
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = str(path.parent)
    h = ses.add_torrent(atp)
    deadline = time.monotonic() + 30
    while not h.status().is_seeding:
        st = h.status()
        assert st.state != lt.torrent_status.downloading, "libtorrent finds pieces missing"
        assert time.monotonic() < deadline, f"libtorrent stuck in {st.state}"
        time.sleep(0.02)  # polls libtorrent's check; bounded by the deadline
    ses.remove_torrent(h)


def test_multi_file_store_round_trip(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    meta = create(src, piece_length=PL, hybrid=True)
    assert any(f.pad for f in meta.files)
    with PieceStore.adopt(tmp_path / "seed", meta, src) as seed, \
            PieceStore.open(tmp_path / "leech", meta) as leech:
        for i in reversed(range(meta.num_pieces)):
            assert leech.write_piece(i, seed.read(i, 0, meta.piece_size(i)))
        assert leech.complete and leech.sha256() == seed.sha256()
    out = tmp_path / "leech" / "album"
    assert _content(out) == _content(src)
    for rel in _content(src):
        assert out.joinpath(*rel).read_bytes() == src.joinpath(*rel).read_bytes()
    assert not (out / ".pad").exists(), "pad files are not stored"
    with PieceStore.open(tmp_path / "leech", meta) as again:
        assert again.complete and again.resumed == meta.num_pieces


def test_file_spans_with_gaps() -> None:
    files = [FileEntry(("a",), 10, 0), FileEntry(("b",), 5, 16), FileEntry(("c",), 4, 32)]
    starts = [0, 16, 32]
    assert file_spans(files, starts, 0, 40) == [
        (0, 0, 10), (None, 0, 6), (1, 0, 5), (None, 0, 11), (2, 0, 4), (None, 0, 4)]
    assert file_spans(files, starts, 17, 2) == [(1, 1, 2)]


def test_v2_only_from_info_bytes_needs_layers(tmp_path: Path) -> None:
    meta = create(_tree(tmp_path), piece_length=PL, v2_only=True)
    with pytest.raises(metainfo.MetainfoError, match="piece layer"):
        metainfo.from_info_bytes(meta.info_bytes)
    top: Any = bdecode(meta.to_torrent_bytes())
    assert set(top[b"piece layers"]) == set(meta.piece_layers)


_names = st.sampled_from([b"a", b"b", b"..", b".", b"", b"x/y", b"\xff", b"ok.bin", b"\0"])
_leaf = st.fixed_dictionaries({b"": st.dictionaries(
    st.sampled_from([b"length", b"pieces root"]),
    st.integers(-2, 70000) | st.binary(min_size=0, max_size=33), max_size=2)})
_tree_st = st.recursive(_leaf, lambda kids: st.dictionaries(_names, kids, max_size=3),
                        max_leaves=8)
_files_st = st.lists(st.dictionaries(
    st.sampled_from([b"length", b"path", b"attr"]),
    st.integers(-1, 70000) | st.lists(_names, max_size=3) | st.binary(max_size=3),
    max_size=3), max_size=4)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(_tree_st, _files_st, st.booleans())
def test_file_list_fuzz(tree: Any, files: Any, with_pieces: bool) -> None:
    info: dict = {"name": "n", "piece length": PL, "meta version": 2, "file tree": tree}
    if with_pieces:
        info.update(files=files, pieces=b"\x01" * 20 * 3)
    try:
        meta = parse(bencode({"info": info}))
    except metainfo.MetainfoError:
        return
    for f in meta.files:  # whatever parses is safe to write
        assert f.path and all(p not in ("", ".", "..") and "/" not in p for p in f.path)


def test_trackers_round_trip_keep_the_infohash(tmp_path: Path) -> None:
    import dataclasses

    meta = create(_tree(tmp_path) / "a.bin", piece_length=PL)
    tiers = (("http://127.0.0.1:1/announce", "udp://127.0.0.1:2"), ("http://b/announce",))
    with_t = dataclasses.replace(meta, trackers=tiers)
    back = parse(with_t.to_torrent_bytes())
    assert back.trackers == tiers and back.info_hash == meta.info_hash
    raw = bencode({"announce": "http://x/a", "announce-list": [["wss://no", b"\xff"], 5],
                   "info": bdecode(meta.info_bytes)})
    assert parse(raw).trackers == (("http://x/a",),)


def test_cached_reads_across_files_and_pads(tmp_path: Path) -> None:
    require(None if hasattr(os, "RWF_NOWAIT") else "reads that never wait need Linux")
    src = _tree(tmp_path)
    meta = create(src, piece_length=PL, hybrid=True)
    with PieceStore.adopt(tmp_path / "seed", meta, src) as seed:
        supported = nowait_reads(seed._payload.paths[0])
        for i in range(meta.num_pieces):
            expected = seed.read(i, 0, meta.piece_size(i)) if supported else None
            assert seed.read_cached(i, 0, meta.piece_size(i)) == expected
