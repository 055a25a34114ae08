"""Metainfo: create/parse, hybrid v1+v2 checked against libtorrent, and every rejection."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Tuple

import pytest

from peer import metainfo
from peer.bencode import bdecode, bencode
from peer.metainfo import Metainfo, MetainfoError, create, default_piece_length, parse

pytestmark = pytest.mark.timeout(120)

KiB = 1024
MiB = 1024 * KiB


def _lt() -> Any:
    try:
        import libtorrent as lt
    except ImportError as e:  # pragma: no cover - depends on the environment
        if os.environ.get("CI") == "true":
            pytest.fail(f"libtorrent not importable under CI=true: {e}")
        pytest.skip(f"libtorrent not importable: {e}")
    return lt


def _lt_torrent(path: Path, piece_length: int, v1_only: bool) -> Tuple[bytes, str, str]:
    """(torrent bytes, v1 hex, v2 hex) made by libtorrent for ``path``."""
    lt = _lt()
    fs = lt.file_storage()
    lt.add_files(fs, str(path))
    flags = lt.create_torrent.v1_only if v1_only else 0
    ct = lt.create_torrent(fs, piece_length, flags=flags)
    lt.set_piece_hashes(ct, str(path.parent))
    raw = lt.bencode(ct.generate())
    hashes = lt.torrent_info(raw).info_hashes()
    return raw, str(hashes.v1), str(hashes.v2)


def _file(tmp_path: Path, size: int, name: str = "content.bin") -> Path:
    p = tmp_path / name
    p.write_bytes(os.urandom(size))
    return p


SIZES = [(1, 16 * KiB), (5000, 16 * KiB), (16 * KiB, 16 * KiB), (100_000, 32 * KiB),
         (3 * MiB + 7, 64 * KiB), (MiB, MiB), (2 * MiB + 1, 256 * KiB)]


@pytest.mark.parametrize("size, pl", SIZES)
def test_v1_matches_libtorrent(tmp_path: Path, size: int, pl: int) -> None:
    path = _file(tmp_path, size)
    raw, v1, _ = _lt_torrent(path, pl, v1_only=True)
    ours = create(path, piece_length=pl)
    assert ours.hexhash == v1 and not ours.hybrid and ours.info_hash_v2 is None
    theirs = parse(raw)
    assert theirs.info_hash == ours.info_hash and theirs.piece_hashes == ours.piece_hashes
    assert (theirs.name, theirs.length, theirs.piece_length) == ("content.bin", size, pl)


@pytest.mark.parametrize("size, pl", SIZES)
def test_hybrid_matches_libtorrent(tmp_path: Path, size: int, pl: int) -> None:
    path = _file(tmp_path, size)
    raw, v1, v2 = _lt_torrent(path, pl, v1_only=False)
    ours = create(path, piece_length=pl, hybrid=True)
    assert ours.hybrid and ours.hexhash == v1
    assert ours.info_hash_v2 is not None and ours.info_hash_v2.hex() == v2
    theirs = parse(raw)
    assert theirs.hybrid and theirs.info_hash == ours.info_hash
    assert theirs.info_hash_v2 == ours.info_hash_v2 and theirs.pieces_root == ours.pieces_root
    assert theirs.piece_layer == ours.piece_layer
    if ours.num_pieces > 1:
        assert ours.piece_layer is not None and len(ours.piece_layer) == 32 * ours.num_pieces
    else:
        assert ours.piece_layer is None
    # libtorrent reads our .torrent, piece layers included, to the same hashes.
    lt = _lt()
    ti = lt.torrent_info(ours.to_torrent_bytes())
    assert str(ti.info_hashes().v1) == v1 and str(ti.info_hashes().v2) == v2


def test_default_piece_length_like_libtorrent() -> None:
    lt = _lt()
    for size in (1, 100 * KiB, MiB, 8 * MiB, 32 * MiB, 100 * MiB, 256 * MiB, 1024 * MiB,
                 4096 * MiB):
        fs = lt.file_storage()
        fs.add_file("x", size)
        assert default_piece_length(size) == lt.create_torrent(fs).piece_length(), size
    assert default_piece_length(1 << 50) == 16 * MiB
    assert default_piece_length(0) == 16 * KiB


def test_create_defaults_and_geometry(tmp_path: Path) -> None:
    path = _file(tmp_path, 40 * KiB + 3)
    m = create(path)
    assert m.piece_length == 16 * KiB and m.num_pieces == 3 and m.name == "content.bin"
    assert [m.piece_size(i) for i in range(3)] == [16 * KiB, 16 * KiB, 8 * KiB + 3]
    assert [m.piece_offset(i) for i in range(3)] == [0, 16 * KiB, 32 * KiB]
    data = path.read_bytes()
    assert m.piece_hashes[2] == hashlib.sha1(data[32 * KiB:]).digest()
    assert m.info_hash == hashlib.sha1(m.info_bytes).digest() and len(m.hexhash) == 40
    for bad in (-1, 3):
        with pytest.raises(IndexError):
            m.piece_size(bad)
    assert create(path, name="other.bin").name == "other.bin"


def test_round_trip_through_torrent_bytes(tmp_path: Path) -> None:
    path = _file(tmp_path, 300 * KiB)
    for hybrid in (False, True):
        m = create(path, piece_length=32 * KiB, hybrid=hybrid)
        raw = m.to_torrent_bytes()
        top = bdecode(raw)
        assert top[b"created by"] == b"meshbed"
        assert (b"piece layers" in top) == hybrid
        assert parse(raw) == m
        assert metainfo.from_info_bytes(m.info_bytes).info_hash == m.info_hash


def test_create_rejects(tmp_path: Path) -> None:
    path = _file(tmp_path, 1000)
    for pl in (8 * KiB, 24 * KiB, 0):
        with pytest.raises(MetainfoError, match="piece length"):
            create(path, piece_length=pl)
    with pytest.raises(MetainfoError, match="empty"):
        create(_file(tmp_path, 0, "empty.bin"))
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(MetainfoError, match="empty directory"):
        create(tmp_path / "emptydir")
    with pytest.raises(MetainfoError, match="name"):
        create(path, name="a/b")


def _info(**over: Any) -> dict:
    info: dict = {"name": "f.bin", "length": 40000, "piece length": 16384,
                  "pieces": b"\x01" * 60}
    for k, v in over.items():
        k = k.replace("_", " ")
        if v is None:
            info.pop(k, None)
        else:
            info[k] = v
    return info


def _torrent(**over: Any) -> bytes:
    return bencode({"info": _info(**over)})


@pytest.mark.parametrize(
    "data, match",
    [
        (b"d4:info", "bencoding"),
        (b"i1e", "bencoding"),
        (bencode({"announce": "x"}), "missing field 'info'"),
        (bencode({"info": 5}), "must be a dict"),
        (_torrent(name=None), "missing field 'name'"),
        (_torrent(length=None), "missing field 'length'"),
        (_torrent(pieces=None), "missing field 'pieces'"),
        (_torrent(piece_length=None), "missing field 'piece length'"),
        (_torrent(length=b"1"), "must be an integer"),
        (_torrent(pieces=5), "wrong type"),
        (_torrent(piece_length=16000), "power of two"),
        (_torrent(piece_length=8192, pieces=b"\x01" * 100), "power of two"),
        (_torrent(piece_length=1 << 30, pieces=b"\x01" * 20), "power of two"),
        (_torrent(pieces=b"\x01" * 59), "multiple of 20"),
        (_torrent(pieces=b"\x01" * 80), "do not match"),
        (_torrent(length=0, pieces=b""), "positive"),
        (_torrent(files=[{"length": 1, "path": ["a"]}]), "both length and files"),
        (_torrent(length=None, files=[{"length": 1, "path": [".."]}]), "unsafe"),
        (_torrent(length=None, files=[{"length": 1, "path": []}]), "non-empty list"),
        (_torrent(length=None, files=[{"length": 1, "path": [""]}]), "1..255 bytes"),
        (_torrent(length=None, files=[{"length": 1, "path": ["a/b"]}]), "unsafe"),
        (_torrent(length=None, files=[{"length": 1, "path": ["a\\b"]}]), "unsafe"),
        (_torrent(length=None, files=[{"length": 1, "path": ["a\0b"]}]), "unsafe"),
        (_torrent(length=None, files=[{"length": 1, "path": ["x" * 256]}]), "1..255 bytes"),
        (_torrent(length=None, files=[{"length": 1, "path": ["d"] * 40}]), "deeper"),
        (_torrent(length=None, files=[{"length": 1, "path": [b"\xff"]}]), "UTF-8"),
        (_torrent(length=None, files=[{"length": 1, "path": ["a"]},
                                      {"length": 1, "path": ["a"]}]), "used twice"),
        (_torrent(length=None, files=[{"length": 1, "path": ["a"]},
                                      {"length": 1, "path": ["a", "b"]}]), "file and a dir"),
        (_torrent(length=None, files=[{"length": -1, "path": ["a"]}]), "non-negative"),
        (_torrent(length=None, files=[]), "non-empty list"),
        (_torrent(name=""), "name"),
        (_torrent(name="."), "name"),
        (_torrent(name=".."), "name"),
        (_torrent(name="/etc"), "name"),
        (_torrent(name="a/b"), "name"),
        (_torrent(name="a\\b"), "name"),
        (_torrent(name="a\0b"), "name"),
        (_torrent(name=b"\xff\xfe"), "UTF-8"),
        (_torrent(pieces=None, meta_version=2), "v2-only"),
        (_torrent(pieces=None, meta_version=2, file_tree={"f.bin": {"": {
            "length": 40000, "pieces root": b"r" * 32}}}), "lacks the piece layer"),
        (_torrent(pieces=None, meta_version=2, file_tree={"..": {"": {
            "length": 4, "pieces root": b"r" * 32}}}), "unsafe"),
        (_torrent(pieces=None, meta_version=2, file_tree={"f": {"": {"length": 4}}}),
         "32 bytes"),
        (_torrent(pieces=None, meta_version=2, file_tree={"f": {}}), "non-empty dict"),
        (_torrent(meta_version=2, file_tree={"f.bin": {"": {"length": 40000,
                                                            "pieces root": b"x" * 32}},
                                             "g.bin": {"": {"length": 1,
                                                            "pieces root": b"y" * 32}}}),
         "does not match the v1 files"),
        (_torrent(meta_version=2, file_tree={"f.bin": {"": {"length": 4,
                                                            "pieces root": b"x" * 32}}}),
         "length differs"),
        (_torrent(meta_version=2, file_tree={"f.bin": {"": {"length": 40000,
                                                            "pieces root": b"x"}}}), "32 bytes"),
        (bencode({"info": _info(meta_version=2, file_tree={
            "f.bin": {"": {"length": 40000, "pieces root": b"r" * 32}}}),
            "piece layers": {b"r" * 32: b"\0" * 96}}), "does not match"),
        (bencode({"info": _info(meta_version=2, file_tree={
            "f.bin": {"": {"length": 40000, "pieces root": b"r" * 32}}}),
            "piece layers": {b"r" * 32: b"\0" * 95}}), "wrong size"),
    ],
)
def test_parse_rejects(data: bytes, match: str) -> None:
    with pytest.raises(MetainfoError, match=match):
        parse(data)


def test_parse_accepts_big_foreign_piece_length_and_refuses_huge_input() -> None:
    m = parse(_torrent(piece_length=32 * MiB, length=40000, pieces=b"\x02" * 20))
    assert m.piece_length == 32 * MiB and m.num_pieces == 1
    with pytest.raises(MetainfoError, match="too large"):
        parse(b"d" + b"0" * (metainfo.MAX_TORRENT_BYTES + 1))


def test_metainfo_is_frozen(tmp_path: Path) -> None:
    m = create(_file(tmp_path, 100))
    assert isinstance(m, Metainfo)
    with pytest.raises(AttributeError):
        m.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("size", [64 * KiB, 64 * KiB + 1, 300 * KiB + 5, 16 * KiB - 1])
def test_create_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   size: int) -> None:
    path = _file(tmp_path, size)
    whole = [create(path, piece_length=16 * KiB, hybrid=h) for h in (False, True)]
    monkeypatch.setattr(metainfo, "_READ_CHUNK", 32 * KiB)  # many chunks, some exact fits
    chunked = [create(path, piece_length=16 * KiB, hybrid=h) for h in (False, True)]
    assert chunked == whole
    data = path.read_bytes()
    assert whole[0].piece_hashes == tuple(
        hashlib.sha1(data[k:k + 16 * KiB]).digest() for k in range(0, size, 16 * KiB))
