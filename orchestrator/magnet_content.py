"""`magnet: "@NAME"` contents of a topology (BEP 9): fetched by the magnet link of content
NAME of the same topology, which the orchestrator makes from NAME's infohash. Their
seeders are nodes holding NAME (its seeders, by default all of them); fetchers get
`POST /fetch {"magnet": ..., "peers": [...]}` instead of the metainfo."""

from __future__ import annotations

from typing import Any, Optional, Protocol

from orchestrator.clients import MESHBED, client_of
from orchestrator.errors import InputError
from orchestrator.fields import Reader, did_you_mean
from orchestrator.model import Content, FetchEvent, Group, Node
from orchestrator.scenario_loader import select
from orchestrator.yamlsrc import YMap


class Loader(Protocol):
    r: Reader
    magnet_lines: dict[str, Optional[int]]  # content -> line of its `magnet:`

    def err(self, message: str, line: Optional[int]) -> InputError: ...


def magnet_content(
    loader: Loader,
    cname: str,
    spec: YMap,
    known: dict[str, Content],
    nodes: tuple[Node, ...],
    groups: tuple[Group, ...],
) -> Content:
    """`magnet: "@NAME"`: the magnet link of content NAME, which its seeders hold."""
    where = f"content {cname!r}"
    line = spec.value_line("magnet")
    loader.magnet_lines[cname] = line
    for key in ("size", "path", "chunk_size"):
        if key in spec:
            raise loader.err(f"{where} has both magnet and {key}: a magnet content takes "
                             f"size and chunk_size from the content it names", spec.key_line(key))
    raw = spec["magnet"]
    if isinstance(raw, str) and raw[:8].lower() == "magnet:?":
        raise loader.err(f"{where}: magnet must name a content of this topology as \"@NAME\" "
                         "(the orchestrator makes its magnet link); magnet URIs of content "
                         "from outside the mesh are not supported", line)
    if not isinstance(raw, str) or not raw.startswith("@") or not raw[1:]:
        raise loader.err(f"{where}: magnet must be \"@NAME\" naming another content, "
                         f"got {raw!r}", line)
    target = raw[1:]
    if target in known and known[target].magnet_of is not None:
        raise loader.err(f"{where}: magnet {raw!r} names a magnet content; name the size: "
                         f"or path: content {known[target].magnet_of!r} instead", line)
    if target not in known:
        hint = did_you_mean(target, tuple(known))
        raise loader.err(f"{where}: magnet {raw!r} names no size: or path: content{hint} "
                         f"(known: {', '.join(known) or 'none'})", line)
    source = known[target]
    seeders = source.seeders
    if spec.get("seeders") is not None:
        seeders = select(loader.r, spec["seeders"], spec.value_line("seeders"), groups, nodes,
                         f"{where}: seeders")
        strangers = [n for n in seeders if n not in source.seeders]
        if strangers:
            raise loader.err(f"{where}: seeders {', '.join(strangers)} do not hold {target} "
                             f"(its seeders: {', '.join(source.seeders)})",
                             spec.value_line("seeders"))
    return Content(name=cname, seeders=seeders, chunk_size=source.chunk_size,
                   size=source.size, path=source.path, magnet_of=target)


def check_magnet_fetchers(loader: Loader, contents: tuple[Content, ...], nodes: tuple[Node, ...],
                          scenario: tuple[Any, ...]) -> None:
    """Real clients as nodes are handed a metainfo: they cannot fetch by magnet here."""
    by_name = {n.name: n for n in nodes}
    for c in contents:
        if c.magnet_of is None:
            continue
        for ev in scenario:
            if not isinstance(ev, FetchEvent) or ev.content != c.name:
                continue
            for n in ev.nodes:
                client = client_of(by_name[n].options)
                if client != MESHBED:
                    raise loader.err(f"content {c.name!r}: {n} runs {client}, which meshbed "
                                     f"hands a metainfo, not a magnet link; let it fetch "
                                     f"{c.magnet_of!r}", loader.magnet_lines.get(c.name))

