"""orchestrator.units: parsing and formatting of sizes, rates, durations, percentages."""

from __future__ import annotations

import pytest

from orchestrator.units import (
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
)

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32MiB", 32 * 1024**2),
        ("32 MiB", 32 * 1024**2),
        ("1.5GiB", 1536 * 1024**2),
        ("16KiB", 16384),
        ("500KB", 500_000),
        ("2MB", 2_000_000),
        ("1GB", 1_000_000_000),
        ("100B", 100),
        ("7b", 7),
        (4096, 4096),
        ("4096", 4096),
        ("0.5KiB", 512),
        ("1e3B", 1000),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("32MiBs", "unknown size unit 'MiBs'"),
        ("1.5B", "not a whole number of bytes"),
        ("-1MiB", "must not be negative"),
        ("lots", "not a size"),
        ("", "not a size"),
        (True, "got a boolean"),
        (None, "expected a size"),
        (float("nan"), "not a size"),
    ],
)
def test_parse_size_rejects(text: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_size(text)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40mbit", 40_000_000),
        ("40 Mbit", 40_000_000),
        ("1.5gbit", 1_500_000_000),
        ("512kbit", 512_000),
        ("9600bit", 9600),
        (1_000_000, 1_000_000),
        ("2500kbit", 2_500_000),
    ],
)
def test_parse_rate(text: object, expected: int) -> None:
    assert parse_rate(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10MB/s", "rates are in bits per second"),
        ("10mbps", "rates are in bits per second"),
        ("10MiB", "rates are in bits per second"),
        ("10furlongs", "unknown rate unit 'furlongs'"),
        ("-3mbit", "must not be negative"),
    ],
)
def test_parse_rate_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), (1.5, 1.5), ("0", 0.0), (3, 3.0)],
)
def test_parse_duration(text: object, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-5s", "must not be negative"),
        ("5 sec", "unknown duration unit 'sec'"),
        ("soon", "not a duration"),
    ],
)
def test_parse_duration_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2%", 0.02),
        ("0%", 0.0),
        ("100%", 1.0),
        (0.02, 0.02),
        ("0.5", 0.5),
        (0, 0.0),
        ("1.5 %", 0.015),
    ],
)
def test_parse_percent(text: object, expected: float) -> None:
    assert parse_percent(text) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("150%", "within 0..100%"),
        (2, "within 0..100%"),
        ("-1%", "within 0..100%"),
        ("2x", "not a percentage"),
    ],
)
def test_parse_percent_rejects(text: object, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_percent(text)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_formatting() -> None:
    assert format_size(32 * 1024**2) == "32MiB"
    assert format_size(1536) == "1.5KiB"
    assert format_size(100) == "100B"
    assert format_size(3 * 1024**3) == "3GiB"
    assert format_rate(40_000_000) == "40mbit"
    assert format_rate(2_500_000) == "2.5mbit"
    assert format_rate(None) == "uncapped"
    assert format_rate(999) == "999bit"
    assert format_duration(0.25) == "250ms"
    assert format_duration(42.949) == "42.95s"
    assert format_duration(125) == "2m05s"
    assert format_duration(7200) == "2h00m"
    assert format_duration(None) == "-"


@pytest.mark.parametrize("n", [1, 1000, 16384, 33554432, 1610612736, 3 * 1024**3])
def test_format_size_parses_back(n: int) -> None:
    assert parse_size(format_size(n)) == n


@pytest.mark.parametrize("bps", [1000, 40_000_000, 1_500_000_000, 64_000])
def test_format_rate_parses_back(bps: int) -> None:
    assert parse_rate(format_rate(bps)) == bps
