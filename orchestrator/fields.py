"""Typed reads of YAML values for the loaders, each failing with ``FILE:LINE: message``.

``Reader`` knows the source file; every ``get_*`` takes the mapping and the key so the
error points at the key's own line (or its value's line for bad values).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from orchestrator.errors import InputError
from orchestrator.yamlsrc import YMap, YSeq, line_of

T = TypeVar("T")
NAME_RE = re.compile(r"[a-z0-9-]{1,32}")


def kind(value: Any) -> str:
    """How a value reads in an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({value})"
    if isinstance(value, float):
        return f"a number ({value:g})"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({short!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# words people reach for, and the field they mean (used when that field is a candidate)
SYNONYMS = {
    "delay": "latency",
    "rtt": "latency",
    "upload": "up",
    "uplink": "up",
    "download": "down",
    "downlink": "down",
    "packet_loss": "loss",
    "drop": "loss",
    "piece_size": "chunk_size",
    "piece_length": "chunk_size",
    "chunk": "chunk_size",
    "replicas": "count",
    "number": "count",
    "seeds": "seeders",
    "time": "at",
    "when": "at",
    "file": "path",
    "nodes": "count",
}


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    alias = SYNONYMS.get(word.lower())
    if alias is not None and alias in candidates:
        return f" (did you mean {alias!r}?)"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Reader:
    def __init__(self, source: Optional[Path]) -> None:
        self.source = source

    def error(self, message: str, line: Optional[int]) -> InputError:
        return InputError(message, self.source, line)

    # --- structure ----------------------------------------------------------------------
    def check_keys(
        self, m: YMap, allowed: Iterable[str], where: str, required: Iterable[str] = ()
    ) -> None:
        allowed = list(allowed)
        for key in m:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f" (known: {', '.join(allowed)})"
                raise self.error(f"unknown key {key!r} in {where}{hint}", m.key_line(key))
        for key in required:
            if key not in m or m[key] is None:
                line = m.key_line(key) if key in m else m.line
                raise self.error(f"{where} needs {key!r}", line)

    def mapping(self, value: Any, what: str, line: int, empty_ok: bool = True) -> YMap:
        if value is None and empty_ok:
            empty = YMap()
            empty.line, empty.key_lines, empty.value_lines = line, {}, {}
            return empty
        if not isinstance(value, YMap):
            raise self.error(f"{what} must be a mapping (key: value), got {kind(value)}", line)
        return value

    def sequence(self, value: Any, what: str, line: int) -> YSeq:
        if isinstance(value, YSeq):
            return value
        raise self.error(f"{what} must be a list, got {kind(value)}", line)

    # --- scalars ------------------------------------------------------------------------
    def get_str(self, m: YMap, key: str, what: str, default: Optional[str] = None) -> Optional[str]:
        if key not in m or m[key] is None:
            return default
        value = m[key]
        if not isinstance(value, str):
            raise self.error(f"{what} must be a string, got {kind(value)}", m.value_line(key))
        return value

    def get_name(self, value: Any, what: str, line: int) -> str:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            shown = repr(value) if isinstance(value, str) else kind(value)
            raise self.error(
                f"{what} {shown} is not a valid name: use 1-32 of a-z, 0-9 and '-'", line
            )
        return value

    def get_int(
        self,
        m: YMap,
        key: str,
        what: str,
        default: int,
        lo: Optional[int] = None,
        hi: Optional[int] = None,
    ) -> int:
        if key not in m or m[key] is None:
            return default
        value = m[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"{what} must be a whole number, got {kind(value)}", m.value_line(key))
        if lo is not None and value < lo:
            raise self.error(f"{what} must be at least {lo}, got {value}", m.value_line(key))
        if hi is not None and value > hi:
            raise self.error(f"{what} must be at most {hi}, got {value}", m.value_line(key))
        return value

    def get_float(self, m: YMap, key: str, what: str, lo: float = 0.0) -> Optional[float]:
        if key not in m or m[key] is None:
            return None
        value = m[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise self.error(f"{what} must be a number, got {kind(value)}", m.value_line(key))
        if value <= lo or value == float("inf"):
            raise self.error(
                f"{what} must be a number above {lo:g}, got {value}", m.value_line(key)
            )
        return float(value)

    def get_bool(self, m: YMap, key: str, what: str, default: bool) -> bool:
        if key not in m or m[key] is None:
            return default
        value = m[key]
        if not isinstance(value, bool):
            raise self.error(f"{what} must be true or false, got {kind(value)}", m.value_line(key))
        return value

    def get_unit(self, m: YMap, key: str, what: str, parse: Callable[[Any], T]) -> Optional[T]:
        """``parse(m[key])`` with its ValueError turned into ``FILE:LINE: what: reason``."""
        if key not in m or m[key] is None:
            return None
        return self.unit(m[key], what, parse, m.value_line(key))

    def unit(self, value: Any, what: str, parse: Callable[[Any], T], line: int) -> T:
        if isinstance(value, (YMap, YSeq)):
            raise self.error(f"{what} must be a single value, got {kind(value)}", line)
        try:
            return parse(value)
        except ValueError as exc:
            raise self.error(f"{what}: {exc}", line) from None

    def get_str_list(self, m: YMap, key: str, what: str) -> tuple[tuple[str, int], ...]:
        """A list of strings (a single string counts as a list of one), with item lines."""
        if key not in m or m[key] is None:
            return ()
        value = m[key]
        if isinstance(value, str):
            return ((value, m.value_line(key)),)
        seq = self.sequence(value, what, m.value_line(key))
        out = []
        for i, item in enumerate(seq):
            if not isinstance(item, str):
                raise self.error(f"{what} must hold strings, got {kind(item)}", seq.item_line(i))
            out.append((item, seq.item_line(i)))
        return tuple(out)


def value_line(value: Any, default: int) -> int:
    return line_of(value, default)
