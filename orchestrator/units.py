"""Units of the topology file: sizes (bytes), rates (bits/s), durations (s), percentages.

Every parser takes what YAML gives (a string, an int or a float) and raises ``ValueError``
with a short reason a user can act on; the loader adds the file and line.

- sizes: B, KiB, MiB, GiB (binary) and KB, MB, GB (decimal); a plain integer is bytes.
- rates: bit, kbit, mbit, gbit (decimal, bits per second); a plain integer is bits/s.
  Byte-ish rate units (MB/s, mbps, MiB) are refused with a hint: tc's "mbps" means
  megaBYTES per second, which is exactly the confusion we do not want in a topology.
- durations: ms, s, m, h; a plain number is seconds. Never negative.
- percentages: "2%" -> 0.02; a plain number is already a fraction (0.02).
"""

from __future__ import annotations

import math
import re
from typing import Union

Number = Union[int, float, str]

_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_QUANTITY = re.compile(r"^\s*(-?)\s*(" + _NUMBER + r")\s*([A-Za-z%/]*)\s*$")

SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
SIZE_UNIT_NAMES = "B, KiB, MiB, GiB, KB, MB, GB"

RATE_UNITS: dict[str, int] = {
    "bit": 1,
    "kbit": 1000,
    "mbit": 1000**2,
    "gbit": 1000**3,
}
RATE_UNIT_NAMES = "bit, kbit, mbit, gbit"

DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
DURATION_UNIT_NAMES = "ms, s, m, h"

# Far beyond anything a testbed uses; they keep arithmetic finite on absurd input.
MAX_SIZE = 1024**5  # 1 PiB
MAX_RATE = 10**13  # 10 tbit/s
MAX_DURATION = 10.0**8  # about three years


def _split(value: Number, what: str) -> tuple[float, str]:
    """(magnitude, unit) of a quantity; unit is '' for a plain number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {what}, got a boolean")
    if isinstance(value, (int, float)):
        number = float(value)
        unit = ""
    elif isinstance(value, str):
        m = _QUANTITY.match(value)
        if not m:
            raise ValueError(f"not a {what}: {value!r}")
        number = float(m.group(2))
        if m.group(1):
            number = -number
        unit = m.group(4)
    else:
        raise ValueError(f"expected a {what}, got {type(value).__name__}")
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"not a {what}: {value!r}")
    return number, unit


def parse_size(value: Number) -> int:
    """A size in bytes: ``32MiB``, ``1.5 GiB``, ``500KB``, ``4096`` (bytes)."""
    number, unit = _split(value, "size")
    if unit:
        factor = SIZE_UNITS.get(unit.lower())
        if factor is None:
            raise ValueError(f"unknown size unit {unit!r} in {value!r} (use {SIZE_UNIT_NAMES})")
    else:
        factor = 1
    total = number * factor
    if total < 0:
        raise ValueError(f"size must not be negative: {value!r}")
    if total > MAX_SIZE:
        raise ValueError(f"size is too large: {value!r} (at most 1024TiB)")
    if abs(total - round(total)) > 1e-6 * max(1.0, total):
        raise ValueError(f"size is not a whole number of bytes: {value!r}")
    return int(round(total))


def parse_rate(value: Number) -> int:
    """A rate in bits/s: ``40mbit``, ``1.5gbit``, ``512kbit``, ``1000000`` (bit/s)."""
    number, unit = _split(value, "rate")
    if unit:
        factor = RATE_UNITS.get(unit.lower())
        if factor is None:
            low = unit.lower()
            if low.endswith(("bps", "/s", "b")) or low in SIZE_UNITS:
                raise ValueError(
                    f"unknown rate unit {unit!r} in {value!r}: rates are in bits per second "
                    f"(use {RATE_UNIT_NAMES}, e.g. 40mbit)"
                )
            raise ValueError(f"unknown rate unit {unit!r} in {value!r} (use {RATE_UNIT_NAMES})")
    else:
        factor = 1
    total = number * factor
    if total < 0:
        raise ValueError(f"rate must not be negative: {value!r}")
    if total > MAX_RATE:
        raise ValueError(f"rate is too large: {value!r} (at most 10000gbit)")
    return int(round(total))


def parse_duration(value: Number) -> float:
    """Seconds: ``500ms``, ``5s``, ``2m``, ``1h``, ``1.5`` (seconds). Never negative."""
    number, unit = _split(value, "duration")
    if unit:
        factor = DURATION_UNITS.get(unit.lower())
        if factor is None:
            raise ValueError(
                f"unknown duration unit {unit!r} in {value!r} (use {DURATION_UNIT_NAMES})"
            )
    else:
        factor = 1.0
    if number < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    if number * factor > MAX_DURATION:
        raise ValueError(f"duration is too long: {value!r}")
    return number * factor


def parse_percent(value: Number) -> float:
    """A fraction 0..1 from ``"2%"`` (0.02) or a plain fraction ``0.02``."""
    number, unit = _split(value, "percentage")
    if unit == "%":
        fraction = number / 100.0
    elif unit:
        raise ValueError(f"not a percentage: {value!r} (write e.g. 2%)")
    else:
        fraction = number
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"percentage must be within 0..100%: {value!r}")
    return fraction


def _trim(number: float) -> str:
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def format_size(n: int) -> str:
    """``33554432`` -> ``32MiB``; ``1536`` -> ``1.5KiB``; ``100`` -> ``100B``."""
    for unit in ("GiB", "MiB", "KiB"):
        factor = SIZE_UNITS[unit.lower()]
        if abs(n) >= factor:
            return f"{_trim(n / factor)}{unit}"
    return f"{n}B"


def format_rate(bps: int | None) -> str:
    """``40000000`` -> ``40mbit``; ``None`` -> ``uncapped``."""
    if bps is None:
        return "uncapped"
    for unit in ("gbit", "mbit", "kbit"):
        factor = RATE_UNITS[unit]
        if abs(bps) >= factor:
            return f"{_trim(bps / factor)}{unit}"
    return f"{bps}bit"


def format_duration(seconds: float | None) -> str:
    """``0.25`` -> ``250ms``; ``42.949`` -> ``42.95s``; ``125`` -> ``2m05s``."""
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{_trim(seconds * 1000.0)}ms"
    if seconds < 120.0:
        return f"{_trim(seconds)}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
