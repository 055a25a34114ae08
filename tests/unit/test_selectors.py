"""orchestrator.selectors: group / node / slice / list selectors and their errors."""

from __future__ import annotations

from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.loader import load_topology_text
from orchestrator.selectors import SelectorError, describe, resolve

pytestmark = pytest.mark.timeout(30)

GROUPS = {
    "seeders": ["seeders-0"],
    "leechers": [f"leechers-{i}" for i in range(10)],
    "idle": [],
}


def names(*idx: int) -> tuple[str, ...]:
    return tuple(f"leechers-{i}" for i in idx)


@pytest.mark.parametrize(
    ("sel", "expected"),
    [
        ("seeders", ("seeders-0",)),
        ("leechers-3", names(3)),
        ("leechers[0:4]", names(0, 1, 2, 3)),
        ("leechers[2:]", names(*range(2, 10))),
        ("leechers[:2]", names(0, 1)),
        ("leechers[-1]", names(9)),
        ("leechers[-3:]", names(7, 8, 9)),
        ("leechers[::3]", names(0, 3, 6, 9)),
        ("leechers[8:10]", names(8, 9)),
        ("leechers[-10:]", names(*range(10))),
        (" leechers[ 1 : 3 ] ", names(1, 2)),
        (["seeders", "leechers[0]"], ("seeders-0",) + names(0)),
        (["leechers[0:3]", "leechers[1:4]"], names(0, 1, 2, 3)),  # no duplicates, order kept
        (("leechers-5", "leechers-1"), names(5, 1)),
    ],
)
def test_resolve(sel: object, expected: tuple[str, ...]) -> None:
    assert resolve(sel, GROUPS) == expected


@pytest.mark.parametrize(
    ("sel", "fragment"),
    [
        ("leechrs", "unknown group or node 'leechrs' (did you mean 'leechers'?)"),
        (
            "leechers[10]",
            "selector 'leechers[10]' is out of range: 'leechers' has 10 nodes (indexes 0..9)",
        ),
        ("leechers[-11]", "is out of range"),
        # a slice past the end is refused like an index, not clamped
        ("leechers[8:100]", "selector 'leechers[8:100]' is out of range: 'leechers' has 10 nodes"),
        ("leechers[-11:]", "is out of range"),
        (
            "leechers-10",
            "node 'leechers-10' does not exist: 'leechers' has 10 nodes (leechers-0..leechers-9)",
        ),
        ("leechers[5:2]", "selects no nodes"),
        ("leechers[::0]", "slice step cannot be zero"),
        ("leechers[1", "bad selector 'leechers[1'"),
        ("leechers[]", "empty index"),
        ("sedrs[0]", "unknown group 'sedrs' in 'sedrs[0]' (did you mean 'seeders'?)"),
        ("idle", "group 'idle' has no nodes (count 0)"),
        ([], "empty selector list"),
        (["seeders", 3], "a selector list holds names, got a number (3)"),
        (7, "a selector is a name or a list of names, got a number (7)"),
        (None, "got nothing"),
    ],
)
def test_resolve_errors(sel: object, fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        resolve(sel, GROUPS)
    assert fragment in str(info.value)
    assert isinstance(info.value, InputError)  # the CLI turns it into exit 2


def test_resolve_on_a_topology() -> None:
    topo = load_topology_text("name: t\ngroups:\n  a: {count: 3}\n  b: {count: 2}\n")
    assert resolve("a[1:]", topo) == ("a-1", "a-2")
    assert resolve(["b", "a-0"], topo) == ("b-0", "b-1", "a-0")


def test_describe() -> None:
    assert describe(["seeders-0"], GROUPS) == "seeders"
    assert describe(list(names(*range(10))), GROUPS) == "leechers"
    assert describe(list(names(0, 1, 2, 5, 7, 8)), GROUPS) == (
        "leechers[0:3], leechers-5, leechers[7:9]"
    )
    assert describe([], GROUPS) == "-"
    assert describe(["stranger"], GROUPS) == "stranger"


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 12),
    start=st.one_of(st.none(), st.integers(-15, 15)),
    stop=st.one_of(st.none(), st.integers(-15, 15)),
    step=st.one_of(st.none(), st.integers(-4, 4)),
)
def test_slices_mean_what_python_means(
    n: int, start: Optional[int], stop: Optional[int], step: Optional[int]
) -> None:
    members = [f"g-{i}" for i in range(n)]
    text = "g[{}:{}{}]".format(
        "" if start is None else start,
        "" if stop is None else stop,
        "" if step is None else f":{step}",
    )
    if step == 0:
        with pytest.raises(SelectorError, match="step cannot be zero"):
            resolve(text, {"g": members})
        return
    expected = tuple(members[slice(start, stop, step)])
    past_an_end = any(b is not None and not -n <= b <= n for b in (start, stop))
    if past_an_end:  # Python clamps; meshbed refuses, as it refuses an index out of range
        with pytest.raises(SelectorError, match="is out of range"):
            resolve(text, {"g": members})
    elif not expected:
        with pytest.raises(SelectorError):
            resolve(text, {"g": members})
    else:
        assert resolve(text, {"g": members}) == expected


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 12), index=st.integers(-20, 20))
def test_index_means_what_python_means(n: int, index: int) -> None:
    members = [f"g-{i}" for i in range(n)]
    if -n <= index < n:
        assert resolve(f"g[{index}]", {"g": members}) == (members[index],)
    else:
        with pytest.raises(SelectorError, match="out of range"):
            resolve(f"g[{index}]", {"g": members})


def test_partition_sides_may_be_single_selectors() -> None:
    topo = load_topology_text(
        "name: t\ngroups:\n  a: {count: 2}\n  b: {count: 2}\nscenario:\n"
        "  - {at: 1s, partition: [a, 'b[0]', [b-1]]}\n"
    )
    (part,) = topo.scenario
    assert part.sides == (("a-0", "a-1"), ("b-0",), ("b-1",))  # type: ignore[union-attr]
