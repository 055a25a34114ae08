"""bencode/bdecode: round trips, strictness, bounded decoding."""

from __future__ import annotations

import pytest

from peer.bencode import BencodeError, bdecode, bdecode_dict_spans, bdecode_prefix, bencode

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, b"i0e"),
        (-42, b"i-42e"),
        (2**70, b"i1180591620717411303424e"),
        (b"", b"0:"),
        (b"spam", b"4:spam"),
        ([], b"le"),
        ([1, b"a", [b"b"]], b"li1e1:al1:bee"),
        ({}, b"de"),
        ({b"cow": b"moo", b"spam": [b"a", b"b"]}, b"d3:cow3:moo4:spaml1:a1:bee"),
    ],
)
def test_round_trip(value: object, encoded: bytes) -> None:
    assert bencode(value) == encoded
    assert bdecode(encoded) == value


def test_encode_str_tuple_and_sorted_mixed_keys() -> None:
    assert bencode("héllo") == b"6:h\xc3\xa9llo"
    assert bencode((1, 2)) == b"li1ei2ee"
    assert bencode({"b": 1, b"a": 2, "\u00e9": 3}) == b"d1:ai2e1:bi1e2:\xc3\xa9i3ee"


@pytest.mark.parametrize("bad", [True, 1.5, None, {1: 2}, object(), {"a": 1, b"a": 2}])
def test_encode_rejects(bad: object) -> None:
    with pytest.raises(BencodeError):
        bencode(bad)


@pytest.mark.parametrize(
    "bad",
    [
        b"", b"i", b"ie", b"i-e", b"i-0e", b"i03e", b"i1", b"i1.5e", b"i--1e", b"i+1e",
        b"01:a", b"-1:a", b"5:abc", b"1a", b"4", b"l", b"li1e", b"d", b"d1:a", b"d1:ai1e",
        b"di1ei2ee", b"d1:ai1e1:ai2ee", b"i1ei2e", b"x", b"le ", b"i" + b"9" * 100 + b"e",
        b"9" * 20 + b":a",
    ],
)
def test_decode_rejects(bad: bytes) -> None:
    with pytest.raises(BencodeError):
        bdecode(bad)


def test_unsorted_keys_accepted_but_duplicates_rejected() -> None:
    assert bdecode(b"d1:bi1e1:ai2ee") == {b"b": 1, b"a": 2}
    with pytest.raises(BencodeError, match="duplicate"):
        bdecode(b"d1:ai1e1:bi1e1:ai2ee")


def test_depth_bounded() -> None:
    deep = b"l" * 64 + b"e" * 64
    assert bdecode(deep, max_depth=64) is not None
    for data in (b"l" * 65 + b"e" * 65, b"d1:a" * 65 + b"i1e" + b"e" * 65, b"l" * 100000):
        with pytest.raises(BencodeError):
            bdecode(data)
    with pytest.raises(BencodeError):
        bdecode(b"l" * 100000 + b"e" * 100000, max_depth=10**9)  # clamped: no RecursionError


def test_huge_declared_length_is_not_allocated() -> None:
    with pytest.raises(BencodeError, match="past the end"):
        bdecode(b"999999999999:x")


def test_accepts_bytearray_and_memoryview_but_not_str() -> None:
    assert bdecode(bytearray(b"i5e")) == 5
    assert bdecode(memoryview(b"3:abc")) == b"abc"
    with pytest.raises(BencodeError):
        bdecode("i5e")  # type: ignore[arg-type]


def test_prefix() -> None:
    assert bdecode_prefix(b"d1:ai1ee trailing") == ({b"a": 1}, 8)
    assert bdecode_prefix(b"4:spamXYZ") == (b"spam", 6)
    with pytest.raises(BencodeError):
        bdecode_prefix(b"4:sp")


def test_dict_spans_give_exact_value_bytes() -> None:
    data = b"d4:infod1:bi1e1:ai2ee3:zzzi3ee"
    values, spans = bdecode_dict_spans(data)
    assert values[b"info"] == {b"b": 1, b"a": 2}
    s, e = spans[b"info"]
    assert data[s:e] == b"d1:bi1e1:ai2ee"  # as sent, unsorted: not a re-encoding
    for bad in (b"li1ee", b"d4:infoi1e", b"d4:infoi1eex", b"d1:ai1e1:ai1ee"):
        with pytest.raises(BencodeError):
            bdecode_dict_spans(bad)
