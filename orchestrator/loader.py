"""Topology YAML -> ``model.Topology``, with ``FILE:LINE: message`` for anything wrong.

The field names are DESIGN.md's "Topology file", plus ``monitoring: bool``,
``timeout: DURATION``, ``expect.min_efficiency`` and the group options each backend
declares (``Backend.group_options``: e.g. ``image``, ``placement``, ``devices``); the
loader names no backend. Choices made here (documented in docs/topology.md):

- a group without ``count`` has one node, unless its backend's ``plan_nodes`` decides
  otherwise (one node per device);
- a group giving an option that selects its backend (``devices``) and no ``backend``
  runs on the backend declaring it;
- a content's ``size`` of a real file (``path``) is filled in from the file;
- ``chunk_size``: the content's own, else the topology's, else chosen from the size;
- a scenario entry without ``at`` happens at 0s; entries are sorted by ``at`` (stable);
- ``magnet: "@NAME"`` fetches content NAME of the same topology by magnet link: its seeders
  default to NAME's and must be among them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from orchestrator import backends as registry
from orchestrator.backends.base import Capability
from orchestrator.bounds import MAX_CHUNK, MIN_CHUNK, default_chunk_size
from orchestrator.errors import InputError
from orchestrator.fields import Reader, did_you_mean, kind
from orchestrator.magnet_content import check_magnet_fetchers, magnet_content
from orchestrator.model import (
    DEFAULT_BACKEND,
    OPENTRACKER,
    STRATEGIES,
    Content,
    Expect,
    Group,
    Inventory,
    Link,
    LinkChange,
    Node,
    Resources,
    Topology,
)
from orchestrator.options import GroupInput, GroupOption
from orchestrator.scenario_loader import load_scenario, select
from orchestrator.units import (
    format_size,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
)
from orchestrator.yamlsrc import YMap, line_of, parse_yaml

if TYPE_CHECKING:
    from orchestrator.backends.base import Backend

MAX_NODES = 2000
# folders of $MESHBED_HOME that are not meshes (orchestrator.state skips them)
RESERVED_MESH_NAMES = frozenset({"cache", "monitor", "results"})
TOP_KEYS = (
    "name",
    "backend",
    "chunk_size",
    "seed",
    "strategy",
    "defaults",
    "groups",
    "inventory",
    "content",
    "scenario",
    "expect",
    "monitoring",
    "timeout",
    "tracker",
    "access",
)
ACCESS_MODES = ("mesh", "open")
# plus the group options of every registered backend (Backend.group_options)
GROUP_KEYS = ("count", "backend", "link", "resources")
LINK_KEYS = ("up", "down", "latency", "jitter", "loss")
CONTENT_KEYS = ("size", "path", "seeders", "chunk_size", "magnet")
UNCAPPED = ("unlimited", "uncapped", "none")
DEFAULT_TIMEOUT = 600.0


def load_topology(path: Union[str, Path]) -> Topology:
    """Read and check a topology file. Raises InputError (``FILE:LINE: message``)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("topology file not found", source) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a topology file", source) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", source) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source) from None
    return load_topology_text(text, source)


def load_topology_text(text: str, source: Optional[Path] = None) -> Topology:
    """Parse a topology from text; relative paths resolve against ``source``'s folder."""
    src = Path(source) if source is not None else None
    return _TopologyLoader(src).load(text)


class _Catalogue:
    """The registered backends and the group options each declares. A backend is imported
    only when a group uses it, or when a group has a key outside GROUP_KEYS (then every
    backend's options are needed to say whose key it is)."""

    def __init__(self) -> None:
        self.names = tuple(registry.names())
        self._owners: Optional[dict[str, list[str]]] = None

    @property
    def owners(self) -> dict[str, list[str]]:
        """Option key -> the backends declaring it (imports every backend, once)."""
        if self._owners is None:
            classes, _ = registry.loadable()
            self._owners = {}
            for name, cls in classes.items():
                for opt in cls.group_options:
                    self._owners.setdefault(opt.key, []).append(name)
        return self._owners

    def option(self, backend: str, key: str) -> GroupOption:
        return next(o for o in registry.get(backend).group_options if o.key == key)

    def backend_class(self, name: str, line: Optional[int], r: Reader) -> type[Backend]:
        try:
            return registry.get(name)
        except Exception as exc:  # an installed plugin that does not import
            raise r.error(f"backend {name!r} is installed but does not load: "
                          f"{type(exc).__name__}: {exc}", line) from None


class _TopologyLoader:
    def __init__(self, source: Optional[Path]) -> None:
        self.source = source
        self.r = Reader(source)
        self.base = source.resolve().parent if source is not None else Path.cwd()
        self.catalogue = _Catalogue()
        self.magnet_lines: dict[str, Optional[int]] = {}  # content -> line of its `magnet:`

    def err(self, message: str, line: Optional[int]) -> InputError:
        return self.r.error(message, line)

    def load(self, text: str) -> Topology:
        r = self.r
        doc = parse_yaml(text, self.source)
        if doc is None:
            raise self.err("empty topology: it needs at least 'name' and 'groups'", 1)
        top = r.mapping(doc, "a topology", line_of(doc, 1), empty_ok=False)
        r.check_keys(top, TOP_KEYS, "the topology", required=("name", "groups"))
        name = r.get_name(top["name"], "name", top.value_line("name"))
        if name in RESERVED_MESH_NAMES:
            raise r.error(
                f"name {name!r} is reserved ($MESHBED_HOME/{name} holds meshbed's own files); pick another",
                top.value_line("name"),
            )
        backend = self.backend(top, "backend", DEFAULT_BACKEND)
        seed = r.get_int(top, "seed", "seed", 0, lo=0, hi=2**63 - 1)
        strategy = r.get_str(top, "strategy", "strategy", "swarm") or "swarm"
        if strategy not in STRATEGIES:
            raise self.err(
                f"unknown strategy {strategy!r}{did_you_mean(strategy, STRATEGIES)} "
                f"(use {' or '.join(STRATEGIES)})",
                top.value_line("strategy"),
            )
        chunk_size = self.chunk_size(top, "chunk_size")
        defaults = r.mapping(top.get("defaults"), "'defaults'", top.value_line("defaults"))
        r.check_keys(defaults, ("link", "resources"), "'defaults'")
        defaults_link = Link().merged(self.link_change(defaults, "defaults"))
        defaults_resources = self.resources(defaults, "defaults", Resources())
        monitoring = r.get_bool(top, "monitoring", "monitoring", False)
        tracker = self.tracker(top)
        access = r.get_str(top, "access", "access", "mesh") or "mesh"
        if access not in ACCESS_MODES:
            raise self.err(f"access must be mesh or open, not {access!r}", top.value_line("access"))
        timeout = r.get_unit(top, "timeout", "timeout", parse_duration)
        if timeout is not None and timeout <= 0:
            raise self.err("timeout must be more than 0s", top.value_line("timeout"))
        inventory = self.inventory(top)
        groups, nodes = self.groups(top, backend, defaults_link, defaults_resources, inventory)
        if access != "mesh":
            nodes = tuple(dataclasses.replace(n, access=access) for n in nodes)
        contents = self.contents(top, nodes, groups, chunk_size)
        scenario = load_scenario(
            r,
            top,
            groups,
            nodes,
            contents,
            timeout if timeout is not None else DEFAULT_TIMEOUT,
            self.link_change,
        )
        check_magnet_fetchers(self, contents, nodes, scenario)
        expect = self.expect(top)
        topology = Topology(
            name=name,
            source=self.source.resolve() if self.source is not None else None,
            backend=backend,
            seed=seed,
            strategy=strategy,
            chunk_size=chunk_size,
            defaults_link=defaults_link,
            groups=groups,
            nodes=nodes,
            contents=contents,
            scenario=scenario,
            expect=expect,
            inventory=inventory,
            monitoring=monitoring,
            tracker=tracker,
            tracker_line=top.value_line("tracker") if tracker else None,
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        )
        for used in topology.backends_used():
            registry.get(used).validate(topology)
        if tracker == OPENTRACKER:
            self.check_opentracker(topology)
        return topology

    def tracker(self, top: YMap) -> Optional[str]:
        """`tracker: opentracker | URL` (http, https or udp announce URL)."""
        value = self.r.get_str(top, "tracker", "tracker")
        if value is None or value == OPENTRACKER:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https", "udp") or not rest.strip("/") \
                or any(c.isspace() for c in value):
            raise self.err(f"tracker {value!r} is neither {OPENTRACKER} nor an http(s):// or "
                           "udp:// announce URL", top.value_line("tracker"))
        return value

    def check_opentracker(self, topology: Topology) -> None:
        line = topology.tracker_line
        runs = [b for b in topology.backends_used()
                if registry.get(b).capabilities & Capability.TRACKER]
        if not runs:
            able = sorted(n for n, c in registry.loadable()[0].items()
                          if c.capabilities & Capability.TRACKER)
            raise self.err(f"tracker: {OPENTRACKER} runs beside meshes of backend "
                           f"{' or '.join(able) or '(none)'}, not {'+'.join(topology.backends_used())};"
                           " give an announce URL instead", line)
        reason = registry.get(runs[0]).tracker_unavailable()
        if reason:
            raise self.err(f"tracker: {reason}", line)

    # --- small fields -------------------------------------------------------------------
    def backend(self, m: YMap, key: str, default: str) -> str:
        value = self.r.get_str(m, key, "backend", default) or default
        known = self.catalogue.names
        if value not in known:
            raise self.err(
                f"unknown backend {value!r}{did_you_mean(value, known)} (use {', '.join(known)})",
                m.value_line(key),
            )
        return value

    def chunk_size(self, m: YMap, key: str) -> Optional[int]:
        size = self.r.get_unit(m, key, "chunk_size", parse_size)
        if size is None:
            return None
        if size & (size - 1) or not MIN_CHUNK <= size <= MAX_CHUNK:
            raise self.err(
                f"chunk_size {format_size(size)} must be a power of two within "
                f"{format_size(MIN_CHUNK)}..{format_size(MAX_CHUNK)}",
                m.value_line(key),
            )
        return size

    def link_change(
        self, owner: YMap, where: str, key: str = "link", extra_keys: tuple[str, ...] = ()
    ) -> LinkChange:
        """The link fields given under ``owner[key]`` (a partial link)."""
        r = self.r
        m = r.mapping(owner.get(key), f"{where}: link", owner.value_line(key))
        r.check_keys(m, LINK_KEYS + extra_keys, f"{where} link")
        values: dict[str, Any] = {}
        for field, attr in (("up", "up_bps"), ("down", "down_bps")):
            if field not in m:
                continue
            raw = m[field]
            if raw is None or (isinstance(raw, str) and raw.strip().lower() in UNCAPPED):
                values[attr] = None
                continue
            rate = r.unit(raw, f"{where}: link {field}", parse_rate, m.value_line(field))
            if rate <= 0:
                raise self.err(
                    f"{where}: link {field} must be more than 0 (leave it out or write "
                    "'unlimited' for no cap)",
                    m.value_line(field),
                )
            values[attr] = rate
        for field in ("latency", "jitter"):
            if field not in m:
                continue
            raw = m[field]
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw != 0:
                raise self.err(
                    f"{where}: link {field} needs a unit, e.g. {raw}ms", m.value_line(field)
                )
            seconds = r.unit(
                raw if raw is not None else 0,
                f"{where}: link {field}",
                parse_duration,
                m.value_line(field),
            )
            values[f"{field}_ms"] = round(seconds * 1000.0, 6)  # exact ms round trips
        if "loss" in m:
            raw = m["loss"] if m["loss"] is not None else 0
            values["loss"] = r.unit(raw, f"{where}: link loss", parse_percent, m.value_line("loss"))
        return LinkChange(fields=frozenset(values), **values)

    def resources(self, owner: YMap, where: str, base: Resources) -> Resources:
        r = self.r
        if "resources" not in owner:
            return base
        m = r.mapping(owner["resources"], f"{where}: resources", owner.value_line("resources"))
        r.check_keys(m, ("cpus", "memory"), f"{where} resources")
        cpus = r.get_float(m, "cpus", f"{where}: resources cpus")
        memory = r.get_unit(m, "memory", f"{where}: resources memory", parse_size)
        if memory is not None and memory < 4 * 1024 * 1024:
            raise self.err(
                f"{where}: resources memory {format_size(memory)} is too small (at least 4MiB)",
                m.value_line("memory"),
            )
        return Resources(
            cpus=cpus if cpus is not None else base.cpus,
            memory_bytes=memory if memory is not None else base.memory_bytes,
        )

    def inventory(self, top: YMap) -> Optional[Inventory]:
        value = self.r.get_str(top, "inventory", "inventory")
        if value is None:
            return None
        from orchestrator.inventory import load_inventory

        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.base / path
        if not path.is_file():
            raise self.err(
                f"inventory {value!r} not found (looked at {path})", top.value_line("inventory")
            )
        return load_inventory(path)

    # --- groups -------------------------------------------------------------------------
    def groups(
        self,
        top: YMap,
        backend: str,
        defaults_link: Link,
        defaults_resources: Resources,
        inventory: Optional[Inventory],
    ) -> tuple[tuple[Group, ...], tuple[Node, ...]]:
        r = self.r
        gmap = r.mapping(top["groups"], "'groups'", top.value_line("groups"), empty_ok=False)
        if not gmap:
            raise self.err("'groups' is empty: a mesh needs at least one group", gmap.line)
        groups: list[Group] = []
        nodes: list[Node] = []
        for gname in gmap:
            line = gmap.key_line(gname)
            r.get_name(gname, "group name", line)
            spec = r.mapping(gmap[gname], f"group {gname!r}", gmap.value_line(gname))
            where = f"group {gname!r}"
            if any(k not in GROUP_KEYS for k in spec):  # backend options: whose are they?
                r.check_keys(spec, GROUP_KEYS + tuple(self.catalogue.owners), where)
            group, per_node = self.group(
                gname, spec, backend, defaults_link, defaults_resources, inventory
            )
            groups.append(group)
            for i, node_options in enumerate(per_node):
                nodes.append(
                    Node(
                        name=f"{gname}-{i}",
                        group=gname,
                        index=i,
                        backend=group.backend,
                        link=group.link,
                        resources=group.resources,
                        options=node_options,
                    )
                )
            if len(nodes) > MAX_NODES:
                raise self.err(
                    f"too many nodes: {len(nodes)} so far, at most {MAX_NODES} per mesh", line
                )
        # a group named like another group's node would make selectors ambiguous
        node_names = {n.name: n.group for n in nodes}
        for gname in gmap:
            if gname in node_names and node_names[gname] != gname:
                raise self.err(
                    f"group name {gname!r} is also the name of a node of group "
                    f"{node_names[gname]!r}; rename the group",
                    gmap.key_line(gname),
                )
        return tuple(groups), tuple(nodes)

    def group(
        self,
        gname: str,
        spec: YMap,
        mesh_backend: str,
        defaults_link: Link,
        defaults_resources: Resources,
        inventory: Optional[Inventory],
    ) -> tuple[Group, list[dict[str, Any]]]:
        r = self.r
        where = f"group {gname!r}"
        extra = [k for k in spec if k not in GROUP_KEYS]
        owners = self.catalogue.owners if extra else {}
        given = [k for k in extra if k in owners]
        # an option only one backend declares, marked so, picks that backend
        picked = [owners[k][0] for k in given if len(owners[k]) == 1
                  and self.catalogue.option(owners[k][0], k).selects_backend]
        backend = self.backend(spec, "backend", picked[0] if picked else mesh_backend)
        cls = self.catalogue.backend_class(backend, spec.value_line("backend") if "backend" in spec
                                           else spec.line, r)
        declared = {o.key: o for o in cls.group_options}
        for key in given:
            if key in declared:
                continue
            if any(self.catalogue.option(b, key).selects_backend for b in owners[key]):
                raise self.err(
                    f"{where}: {key} need backend {' or '.join(owners[key])}, not {backend!r}",
                    spec.value_line("backend") if "backend" in spec else spec.key_line(key),
                )
            names = sorted(owners[key])
            which = (f"the {names[0]} backend" if len(names) == 1
                     else f"{', '.join(names[:-1])} and {names[-1]}")
            raise self.err(
                f"{where}: {key} only applies to {which}, not {backend!r}", spec.key_line(key)
            )
        ginput = GroupInput(gname, spec, r, backend, inventory, MAX_NODES)
        options = {
            key: (opt.parse(ginput) if key in spec else opt.default)
            for key, opt in declared.items()
        }
        per_node = cls.plan_nodes(ginput, options)
        link = (
            defaults_link.merged(self.link_change(spec, where)) if "link" in spec else defaults_link
        )
        return Group(
            name=gname,
            count=len(per_node),
            backend=backend,
            link=link,
            resources=self.resources(spec, where, defaults_resources),
            options=options,
            line=spec.line,
        ), per_node

    # --- contents -----------------------------------------------------------------------
    def contents(
        self,
        top: YMap,
        nodes: tuple[Node, ...],
        groups: tuple[Group, ...],
        mesh_chunk: Optional[int],
    ) -> tuple[Content, ...]:
        r = self.r
        if "content" not in top:
            return ()
        cmap = r.mapping(top["content"], "'content'", top.value_line("content"))
        out: dict[str, Content] = {}
        magnets: list[tuple[str, YMap]] = []
        for cname in cmap:
            line = cmap.key_line(cname)
            r.get_name(cname, "content name", line)
            where = f"content {cname!r}"
            spec = r.mapping(cmap[cname], where, cmap.value_line(cname), empty_ok=False)
            r.check_keys(spec, CONTENT_KEYS, where)
            if "magnet" in spec:  # resolved once every content it may name is known
                magnets.append((cname, spec))
                continue
            has_size = spec.get("size") is not None
            has_path = spec.get("path") is not None
            if has_size and has_path:
                raise self.err(
                    f"{where} has both size and path: give size (synthetic) or path (a real file)",
                    spec.key_line("path"),
                )
            if not has_size and not has_path:
                raise self.err(
                    f"{where} needs size (synthetic content) or path (a real file)", line
                )
            path: Optional[Path] = None
            if has_path:
                path, size = self.content_path(spec, where)
            else:
                size = self.r.unit(
                    spec["size"], f"{where}: size", parse_size, spec.value_line("size")
                )
                if size <= 0:
                    raise self.err(f"{where}: size must be more than 0", spec.value_line("size"))
            if spec.get("seeders") is None:
                raise self.err(
                    f"{where} has no seeders: say who has it first, e.g. seeders: [seeders]",
                    spec.key_line("seeders") if "seeders" in spec else line,
                )
            seeders = select(
                r, spec["seeders"], spec.value_line("seeders"), groups, nodes, f"{where}: seeders"
            )
            chunk = self.chunk_size(spec, "chunk_size") or mesh_chunk or default_chunk_size(size)
            out[cname] = Content(name=cname, seeders=seeders, chunk_size=chunk, size=size, path=path)
        for cname, spec in magnets:
            out[cname] = magnet_content(self, cname, spec, out, nodes, groups)
        return tuple(out[c] for c in cmap)

    def content_path(self, spec: YMap, where: str) -> tuple[Path, int]:
        raw = spec["path"]
        line = spec.value_line("path")
        if not isinstance(raw, str) or not raw.strip():
            raise self.err(f"{where}: path must be a file path, got {kind(raw)}", line)
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.base / path
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before 3.13)
            raise self.err(f"{where}: cannot resolve {raw!r}: {exc}", line) from None
        if not path.exists():
            raise self.err(f"{where}: file {raw!r} not found (looked at {path})", line)
        if not path.is_file():
            raise self.err(f"{where}: {raw!r} is not a regular file", line)
        size = path.stat().st_size
        if size == 0:
            raise self.err(f"{where}: file {raw!r} is empty", line)
        return path, size

    # --- expectations -------------------------------------------------------------------
    def expect(self, top: YMap) -> Expect:
        r = self.r
        m = r.mapping(top.get("expect"), "'expect'", top.value_line("expect"))
        r.check_keys(m, ("all_complete_within", "min_efficiency"), "'expect'")
        within = r.get_unit(m, "all_complete_within", "expect: all_complete_within", parse_duration)
        if within is not None and within <= 0:
            raise self.err(
                "expect: all_complete_within must be more than 0s",
                m.value_line("all_complete_within"),
            )
        efficiency = r.get_unit(m, "min_efficiency", "expect: min_efficiency", parse_percent)
        return Expect(all_complete_within=within, min_efficiency=efficiency)
