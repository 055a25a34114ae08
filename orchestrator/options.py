"""Group options that belong to one backend (or a few), declared by the backends themselves.

A backend lists the extra keys it accepts in a group (``Backend.group_options``): each with
a description (shown by ``meshbed doctor``), a default and a parser that reads the YAML
value and fails with ``FILE:LINE: message``. The loader knows no backend by name: it reads
every registered backend's options, refuses an option on a backend that does not declare
it, and hands the parsed values to the backend's ``plan_nodes`` hook, which decides how
many nodes the group has and what each node carries (``Node.options``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from orchestrator.errors import InputError
from orchestrator.fields import Reader
from orchestrator.model import Inventory
from orchestrator.yamlsrc import YMap


@dataclass(frozen=True)
class GroupInput:
    """One group's YAML as a backend sees it while the topology loads."""

    name: str
    spec: YMap
    reader: Reader
    backend: str  # the backend this group runs on
    inventory: Optional[Inventory]  # the topology's `inventory:` file, if any
    max_nodes: int

    @property
    def where(self) -> str:
        return f"group {self.name!r}"

    def error(self, message: str, line: Optional[int]) -> InputError:
        return self.reader.error(message, line)

    def count(self, default: int = 1) -> int:
        """The group's ``count`` (0..max_nodes)."""
        count = self.reader.get_int(self.spec, "count", f"{self.where}: count", default, lo=0)
        if count > self.max_nodes:
            raise self.error(
                f"{self.where}: count {count} is too large (at most {self.max_nodes} nodes per mesh)",
                self.spec.value_line("count"),
            )
        return count


def dump_plain(value: Any) -> Any:
    """An option value as YAML writes it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class GroupOption:
    """One key a backend accepts in a group.

    ``parse(group)`` runs only when the key is in the group and returns the typed value
    (raising ``group.error(...)``); a group without the key gets ``default``.
    ``selects_backend``: a group that gives this key and names no backend runs on the
    (only) backend declaring it, e.g. ``devices`` picks the device backend.
    """

    key: str
    description: str
    parse: Callable[[GroupInput], Any]
    default: Any = None
    selects_backend: bool = False
    dump: Callable[[Any], Any] = dump_plain


def parse_word_list(key: str) -> Callable[[GroupInput], tuple[str, ...]]:
    """A parser for a list of strings (a single string counts as a list of one)."""

    def parse(g: GroupInput) -> tuple[str, ...]:
        return tuple(v for v, _ in g.reader.get_str_list(g.spec, key, f"{g.where}: {key}"))

    return parse


def parse_word(key: str, meaning: str) -> Callable[[GroupInput], Optional[str]]:
    """A parser for one non-empty string without blanks (``meaning``: "an image name")."""

    def parse(g: GroupInput) -> Optional[str]:
        value = g.reader.get_str(g.spec, key, f"{g.where}: {key}")
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise g.error(f"{g.where}: {key} {value!r} is not {meaning}", g.spec.value_line(key))
        return value

    return parse

