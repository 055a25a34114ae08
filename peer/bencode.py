"""Strict bencoding (BEP 3).

Decoding never trusts the input: every length is checked against the bytes that are actually
there, nesting is bounded by ``max_depth`` and every failure is a :class:`BencodeError`
(never IndexError, RecursionError or MemoryError).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple, Union

__all__ = [
    "BencodeError",
    "bencode",
    "bdecode",
    "bdecode_prefix",
    "bdecode_dict_spans",
]

# A bencoded integer or string length longer than this is not something a peer sends us;
# bounding the digit count keeps int() conversions cheap (and below Python's 4300-digit cap).
_MAX_INT_DIGITS = 64
_MAX_LEN_DIGITS = 12  # 10^12 bytes: far beyond any input we hold in memory

_DIGITS = frozenset(b"0123456789")

Buffer = Union[bytes, bytearray, memoryview]


class BencodeError(ValueError):
    """Input is not valid (strict) bencoding, or a value cannot be encoded."""


# ---------------------------------------------------------------- encoding


def _encode_into(obj: Any, out: List[bytes]) -> None:
    # bool is an int subclass; refuse it so True never silently becomes i1e.
    if isinstance(obj, bool):
        raise BencodeError("cannot bencode bool")
    if isinstance(obj, int):
        out.append(b"i%de" % obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(obj, (list, tuple)):
        out.append(b"l")
        for item in obj:
            _encode_into(item, out)
        out.append(b"e")
    elif isinstance(obj, dict):
        keyed: Dict[bytes, Any] = {}
        for k, v in obj.items():
            if isinstance(k, str):
                kb = k.encode("utf-8")
            elif isinstance(k, (bytes, bytearray)):
                kb = bytes(k)
            else:
                raise BencodeError(f"dict key must be bytes or str, not {type(k).__name__}")
            if kb in keyed:
                raise BencodeError(f"duplicate dict key {kb!r}")
            keyed[kb] = v
        out.append(b"d")
        for kb in sorted(keyed):
            out.append(b"%d:" % len(kb))
            out.append(kb)
            _encode_into(keyed[kb], out)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(obj).__name__}")


def bencode(obj: Any) -> bytes:
    """Encode int, bytes, str (UTF-8), list/tuple and dict (keys bytes or str, emitted sorted)."""
    out: List[bytes] = []
    _encode_into(obj, out)
    return b"".join(out)


# ---------------------------------------------------------------- decoding


class _Decoder:
    __slots__ = ("data", "n", "max_depth")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.n = len(data)
        # Recursion is one Python frame per level: stay far below the interpreter's limit.
        self.max_depth = min(max_depth, 500)

    def _int_until(self, pos: int, stop: int, max_digits: int, what: str) -> Tuple[int, int]:
        """Parse the digits from ``pos`` up to the byte ``stop``; return (value, index of stop)."""
        data = self.data
        end = data.find(stop, pos, pos + max_digits + 2)
        if end < 0:
            if data.find(stop, pos) < 0:
                raise BencodeError(f"unterminated {what} at offset {pos}")
            raise BencodeError(f"{what} too long at offset {pos}")
        text = data[pos:end]
        neg = text[:1] == b"-"
        digits = text[1:] if neg else text
        if not digits or not _DIGITS.issuperset(digits):
            raise BencodeError(f"malformed {what} at offset {pos}")
        if len(digits) > 1 and digits[0] == 0x30:
            raise BencodeError(f"leading zero in {what} at offset {pos}")
        if neg and digits == b"0":
            raise BencodeError(f"negative zero at offset {pos}")
        return int(text), end

    def value(self, pos: int, depth: int) -> Tuple[Any, int]:
        data = self.data
        if pos >= self.n:
            raise BencodeError("unexpected end of data")
        c = data[pos]
        if c == 0x69:  # 'i'
            v, end = self._int_until(pos + 1, b"e"[0], _MAX_INT_DIGITS, "integer")
            return v, end + 1
        if 0x30 <= c <= 0x39:
            length, colon = self._int_until(pos, b":"[0], _MAX_LEN_DIGITS, "string length")
            if length < 0:
                raise BencodeError(f"negative string length at offset {pos}")
            start = colon + 1
            end = start + length
            if end > self.n:
                raise BencodeError(f"string at offset {pos} runs past the end of data")
            return data[start:end], end
        if c == 0x6C:  # 'l'
            if depth >= self.max_depth:
                raise BencodeError("nesting too deep")
            items: List[Any] = []
            pos += 1
            while True:
                if pos >= self.n:
                    raise BencodeError("unterminated list")
                if data[pos] == 0x65:  # 'e'
                    return items, pos + 1
                item, pos = self.value(pos, depth + 1)
                items.append(item)
        if c == 0x64:  # 'd'
            if depth >= self.max_depth:
                raise BencodeError("nesting too deep")
            d: Dict[bytes, Any] = {}
            pos += 1
            while True:
                if pos >= self.n:
                    raise BencodeError("unterminated dict")
                if data[pos] == 0x65:
                    return d, pos + 1
                if not 0x30 <= data[pos] <= 0x39:
                    raise BencodeError(f"dict key at offset {pos} is not a string")
                key, pos = self.value(pos, depth + 1)
                if key in d:
                    raise BencodeError(f"duplicate dict key {key[:40]!r}")
                d[key], pos = self.value(pos, depth + 1)
        raise BencodeError(f"unexpected byte {c:#04x} at offset {pos}")


def _as_bytes(data: Buffer) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise BencodeError(f"can only decode bytes, not {type(data).__name__}")


def bdecode_prefix(data: Buffer, *, max_depth: int = 64) -> Tuple[Any, int]:
    """Decode one value at the start of ``data``; return it and the offset where it ended."""
    raw = _as_bytes(data)
    return _Decoder(raw, max_depth).value(0, 0)


def bdecode(data: Buffer, *, max_depth: int = 64) -> Any:
    """Decode exactly one value (strings and dict keys as bytes); trailing data is an error."""
    raw = _as_bytes(data)
    value, end = _Decoder(raw, max_depth).value(0, 0)
    if end != len(raw):
        raise BencodeError(f"trailing data after offset {end}")
    return value


def bdecode_dict_spans(
    data: Buffer, *, max_depth: int = 64
) -> Tuple[Dict[bytes, Any], Dict[bytes, Tuple[int, int]]]:
    """Decode a top-level dict and also return each key's value span ``(start, end)`` in ``data``.

    The info-hash is computed over the exact bytes of the ``info`` value as sent, so the
    metainfo parser needs the span rather than a re-encoding.
    """
    raw = _as_bytes(data)
    if not raw[:1] == b"d":
        raise BencodeError("top-level value is not a dict")
    dec = _Decoder(raw, max_depth)
    values: Dict[bytes, Any] = {}
    spans: Dict[bytes, Tuple[int, int]] = {}
    pos = 1
    while True:
        if pos >= len(raw):
            raise BencodeError("unterminated dict")
        if raw[pos] == 0x65:
            pos += 1
            break
        if not 0x30 <= raw[pos] <= 0x39:
            raise BencodeError(f"dict key at offset {pos} is not a string")
        key, pos = dec.value(pos, 1)
        if key in values:
            raise BencodeError(f"duplicate dict key {key[:40]!r}")
        start = pos
        values[key], pos = dec.value(pos, 1)
        spans[key] = (start, pos)
    if pos != len(raw):
        raise BencodeError(f"trailing data after offset {pos}")
    return values, spans
