"""`meshbed doctor`: what this host supports, what each backend will use here (kernel
shaping or the agents' own emulation) and what backends left for meshes with no state.
Read-only, exit 0; `--clean-orphans` removes those leftovers (exit 1 if some stay)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Optional

Row = tuple[str, str, str]  # facility, yes/no, detail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--clean-orphans", nargs="*", metavar="MESH", default=None,
                        help="remove what any backend left for meshes that have no state "
                             "(a lost state folder, a crash); only the named meshes when given")


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0][:70] if text else ""


def _one_line(text: str) -> str:
    """A reason as one whole line: never cut mid-sentence (logs and grep want all of it)."""
    return " ".join(text.split())


def _docker() -> tuple[Row, Row]:
    from orchestrator.backends.docker import ping_error

    err = ping_error()
    if err is not None:
        return ("docker engine", "no", _one_line(err)), ("swarm", "no", "needs the Docker engine")
    import docker

    c = docker.from_env(timeout=5)
    try:
        version = c.version()
        swarm = (c.info().get("Swarm") or {}).get("LocalNodeState", "unknown")
    finally:
        c.close()
    return (
        ("docker engine", "yes", f"{version.get('Version')} (API {version.get('ApiVersion')})"),
        ("swarm", "yes" if swarm == "active" else "no",
         f"state {swarm}" + ("" if swarm == "active" else "; `meshbed swarm init` to start one")),
    )


def _bridge_netfilter() -> Optional[bool]:
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return None


def host_rows() -> list[Row]:
    from orchestrator.backends import tc

    probe = tc.probe()
    yn = {True: "yes", False: "no"}
    rows: list[Row] = []
    docker_row, swarm_row = _docker()
    rows.append(docker_row)
    rows.append(("root", yn[probe["root"]], f"euid {os.geteuid()}"))
    rows.append(("tc", yn[probe["tc"]], _version(["tc", "-V"]) if probe["tc"] else "iproute2 missing"))
    for q, what in (("tbf", "rate caps"), ("htb", "rate classes"),
                    ("netem", "latency/jitter/loss"), ("ifb", "ingress redirect")):
        detail = what if probe[q] else f"{what}: not in this kernel" if probe["root"] else "needs root to probe"
        rows.append((q, yn[probe[q]], detail))
    rows.append(("iptables", yn[probe["iptables"]],
                 _version(["iptables", "-V"]) if shutil.which("iptables") else "not installed"))
    bnf = _bridge_netfilter()
    rows.append(("br_netfilter", yn[bool(bnf)], "bridged traffic passes iptables" if bnf
                 else "module not loaded (docker loads it)" if bnf is None else "hook off"))
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    rows.append(("sshd", yn[sshd is not None], sshd or "openssh-server not installed"))
    has_asyncssh = importlib.util.find_spec("asyncssh") is not None
    asyncssh_version = ""
    if has_asyncssh:
        import asyncssh

        asyncssh_version = str(getattr(asyncssh, "__version__", ""))
    rows.append(("asyncssh", yn[has_asyncssh], asyncssh_version or "pip install asyncssh"))
    prom = shutil.which("prometheus")
    rows.append(("prometheus", yn[prom is not None],
                 _version([prom, "--version"]) if prom else "binary not on PATH"))
    rows.append(swarm_row)
    return rows


def backend_rows() -> list[tuple[str, str, str, str, str]]:
    """(backend, available, rate, delay/loss, partition): each backend describes itself."""
    from orchestrator import backends as registry

    out = []
    for name in registry.names():
        try:
            cls = registry.get(name)
            reason = cls.unavailable_reason()
            d = cls.describe()
        except Exception as exc:  # a broken backend must not break the doctor
            out.append((name, _one_line(f"no: {exc}"), "-", "-", "-"))
            continue
        out.append((name, "yes" if reason is None else _one_line(f"no: {reason}"),
                    d.rate, d.delay, d.partition))
    return out


def option_rows() -> list[tuple[str, str, str]]:
    """(backend, group option, what it does) for every registered backend."""
    from orchestrator import backends as registry

    classes, _ = registry.loadable()
    return [(name, o.key, o.description) for name, cls in classes.items()
            for o in cls.group_options]


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _clean(wanted: list[str]) -> int:
    from orchestrator import orphans, state

    found, failed = orphans.find(state.home())
    if wanted:
        found = [o for o in found if o.mesh in wanted]
    left = orphans.remove(found)
    for o in found:
        status = "could not remove " + "; ".join(left[o]) if o in left else "removed"
        print(f"{o.backend}: {o.mesh}: {status} ({len(o.things)} objects)")
    for name, why in failed.items():
        print(f"{name}: cannot look for orphans: {why}")
    print(f"{len(found) - len(left)} of {len(found)} orphaned meshes removed")
    return 1 if left else 0


def main(args: argparse.Namespace) -> int:
    from orchestrator import orphans, state

    wanted = getattr(args, "clean_orphans", None)
    if wanted is not None:
        return _clean(list(wanted))
    found, failed = orphans.find(state.home())
    hosts = host_rows()
    backs = backend_rows()
    options = option_rows()
    if getattr(args, "json", False):
        import json

        by_backend: dict[str, dict[str, list[str]]] = {}
        for o in found:
            by_backend.setdefault(o.backend, {})[o.mesh] = list(o.things)
        print(json.dumps({
            "host": {r[0]: {"ok": r[1] == "yes", "detail": r[2]} for r in hosts},
            "backends": {b[0]: {"available": b[1], "rate": b[2], "delay": b[3], "partition": b[4]}
                         for b in backs},
            "group_options": {f"{b}.{k}": d for b, k, d in options},
            "orphans": by_backend,
            "orphan_search_failed": failed,
        }, indent=1))
        return 0
    print(_table(("facility", "ok", "detail"), hosts))
    print()
    print(_table(("backend", "available", "rate caps", "latency/loss", "partition"), backs))
    if options:
        print()
        print(_table(("backend", "group option", "meaning"), options))
    if found:
        print()
        print("left by meshes with no state (a lost state folder, a crash, or another "
              "MESHBED_HOME): " + ", ".join(f"{o.mesh} ({o.backend}, {len(o.things)})" for o in found)
              + "; `meshbed doctor --clean-orphans [MESH ...]` removes them")
    for name, why in failed.items():
        print(f"{name}: cannot look for orphans: {why}")
    return 0
