"""YAML with line numbers: plain Python values whose containers remember where they came from.

``parse_yaml(text, source)`` composes the document with PyYAML's safe composer (which keeps
marks on every node) and rebuilds it as ``YMap`` (a dict) / ``YSeq`` (a list) of scalars.
Each container knows its own line and the line of every key and item, so the loader can
say ``FILE:LINE: message`` for the exact key or value at fault. Lines are 1-based.

Guards: duplicate keys, non-string keys, recursive aliases, alias bombs and deep nesting
all end in an ``InputError`` instead of a hang or a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import InputError

MAX_DEPTH = 64
MAX_NODES = 200_000  # composed nodes visited, counting alias re-use (alias bombs)

try:  # the C composer is much faster and gives the same marks
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


class YMap(dict):  # type: ignore[type-arg]
    """A mapping with ``line`` (of the mapping) and ``key_lines``/``value_lines`` per key."""

    line: int
    key_lines: dict[str, int]
    value_lines: dict[str, int]

    def key_line(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def value_line(self, key: str) -> int:
        return self.value_lines.get(key, self.key_line(key))


class YSeq(list):  # type: ignore[type-arg]
    """A sequence with ``line`` (of the sequence) and ``item_lines``."""

    line: int
    item_lines: list[int]

    def item_line(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


YValue = Union[YMap, YSeq, str, int, float, bool, None]


def line_of(value: Any, default: int = 1) -> int:
    """The line of a container value, ``default`` for scalars (they carry no marks)."""
    return int(getattr(value, "line", default))


class _Builder:
    def __init__(self, source: Optional[Path]) -> None:
        self.source = source
        self.visited = 0
        self.constructor = SafeConstructor()

    def error(self, message: str, node: Node) -> InputError:
        return InputError(message, self.source, node.start_mark.line + 1)

    def build(self, node: Node, depth: int = 0, active: Optional[set[int]] = None) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise self.error("document too large (too many YAML nodes or aliases)", node)
        if depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH} levels", node)
        active = active if active is not None else set()
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in active:
            raise self.error("recursive alias", node)
        active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag not in ("tag:yaml.org,2002:seq",):
                    raise self.error(f"unsupported YAML tag {node.tag!r}", node)
                seq = YSeq()
                seq.line = node.start_mark.line + 1
                seq.item_lines = []
                for item in node.value:
                    seq.append(self.build(item, depth + 1, active))
                    seq.item_lines.append(item.start_mark.line + 1)
                return seq
            if isinstance(node, MappingNode):
                return self.mapping(node, depth, active)
        finally:
            active.discard(id(node))
        raise self.error("unsupported YAML node", node)  # pragma: no cover

    def mapping(self, node: MappingNode, depth: int, active: set[int]) -> YMap:
        if node.tag not in ("tag:yaml.org,2002:map",):
            raise self.error(f"unsupported YAML tag {node.tag!r}", node)
        out = YMap()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        out.value_lines = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.error("YAML merge keys (<<) are not supported", key_node)
            if not isinstance(key_node, ScalarNode):
                raise self.error("keys must be plain strings", key_node)
            key = self.scalar(key_node)
            if key is None:
                raise self.error("empty key", key_node)
            if isinstance(key, (bool, int, float)):
                key = key_node.value  # `1:` or `yes:` as a key: keep the text as written
            if not isinstance(key, str):
                raise self.error("keys must be plain strings", key_node)
            if key in out:
                raise self.error(
                    f"duplicate key {key!r} (first on line {out.key_lines[key]})", key_node
                )
            out[key] = self.build(value_node, depth + 1, active)
            out.key_lines[key] = key_node.start_mark.line + 1
            out.value_lines[key] = value_node.start_mark.line + 1
        return out

    def scalar(self, node: ScalarNode) -> Any:
        if not node.tag.startswith("tag:yaml.org,2002:"):
            raise self.error(f"unsupported YAML tag {node.tag!r}", node)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            reason = _one_line(exc.problem or "cannot be read")
            raise self.error(f"bad YAML value {node.value!r}: {reason}", node) from None
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise self.error(
                f"bad YAML value {node.value!r}: {_one_line(str(exc))}", node
            ) from None
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        # timestamps, binary, sets ...: keep the text; the loader's type checks report it
        return str(node.value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse_yaml(text: str, source: Optional[Path] = None) -> Any:
    """The one YAML document in ``text`` as YMap/YSeq/scalars; ``None`` for an empty file."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        if line is not None:  # "unexpected end of file" marks the line after the last one
            line = max(1, min(line, len(text.splitlines()) or 1))
        problem = exc.problem or exc.context or "syntax error"
        raise InputError(f"YAML syntax error: {_one_line(problem)}", source, line) from None
    except yaml.YAMLError as exc:  # ReaderError (control characters) has a position only
        pos = getattr(exc, "position", None)
        at = text.count("\n", 0, pos) + 1 if isinstance(pos, int) else None
        raise InputError(f"YAML syntax error: {_one_line(str(exc))}", source, at) from None
    except (ValueError, RecursionError, UnicodeError) as exc:  # e.g. NUL characters
        raise InputError(f"not a YAML text: {_one_line(str(exc))[:120]}", source, None) from None
    if not nodes:
        return None
    if len(nodes) > 1:
        second = nodes[1]
        raise InputError(
            "more than one YAML document (---): put one topology per file",
            source,
            second.start_mark.line + 1,
        )
    try:
        return _Builder(source).build(nodes[0])
    except RecursionError:
        raise InputError(f"nesting deeper than {MAX_DEPTH} levels", source, None) from None
