"""`meshbed doctor`: what this host supports, and what each backend will use here
(kernel shaping or the agents' own emulation). Read-only; exit 0."""

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
                        help="remove docker containers/networks/volumes of meshes that have no "
                             "state in $MESHBED_HOME (left by a lost state folder); only the "
                             "named meshes when given")


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


def docker_orphans() -> dict[str, int]:
    """Meshes with labelled docker objects but no state folder here: mesh -> object count."""
    from orchestrator import state
    from orchestrator.backends.docker import client, containers, ping_error

    if ping_error() is not None:
        return {}
    c = client(timeout=30)
    try:
        present = containers.meshes_present(c)
    finally:
        c.close()
    known = {p.name for p in state.mesh_dirs(state.home())}
    return {m: n for m, n in sorted(present.items()) if m not in known}


def clean_orphans(orphans: dict[str, int]) -> None:
    import asyncio
    import tempfile
    from pathlib import Path

    from orchestrator.backends.base import MeshContext
    from orchestrator.backends.docker import DockerBackend

    for mesh in orphans:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = MeshContext(mesh=mesh, token="", state_dir=Path(tmp), state={},
                              save=lambda: None)
            asyncio.run(DockerBackend(ctx).teardown())


def main(args: argparse.Namespace) -> int:
    orphans = docker_orphans()
    wanted = getattr(args, "clean_orphans", None)
    if wanted is not None:
        if wanted:
            orphans = {m: n for m, n in orphans.items() if m in wanted}
        clean_orphans(orphans)
        print(f"removed the docker objects of {len(orphans)} orphaned meshes"
              + (f": {', '.join(orphans)}" if orphans else ""))
        return 0
    hosts = host_rows()
    backs = backend_rows()
    options = option_rows()
    if getattr(args, "json", False):
        import json

        print(json.dumps({
            "host": {r[0]: {"ok": r[1] == "yes", "detail": r[2]} for r in hosts},
            "backends": {b[0]: {"available": b[1], "rate": b[2], "delay": b[3], "partition": b[4]}
                         for b in backs},
            "group_options": {f"{b}.{k}": d for b, k, d in options},
            "docker_orphans": orphans,
        }, indent=1))
        return 0
    print(_table(("facility", "ok", "detail"), hosts))
    print()
    print(_table(("backend", "available", "rate caps", "latency/loss", "partition"), backs))
    if options:
        print()
        print(_table(("backend", "group option", "meaning"), options))
    if orphans:
        print()
        print("docker objects of meshes with no state in $MESHBED_HOME (another MESHBED_HOME, "
              "or a lost state folder): "
              + ", ".join(f"{m} ({n})" for m, n in orphans.items())
              + "; `meshbed doctor --clean-orphans` removes them")
    return 0
