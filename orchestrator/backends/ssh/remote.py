"""Shell snippets run on devices (POSIX sh, busybox-compatible) and parsers of their output.

Pure functions: no I/O here, so they are unit-testable. Paths handed in are absolute paths
the device reported itself; everything is quoted with ``shlex.quote``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from devices import Profile

MESH_NAME = re.compile(r"[a-z0-9-]{1,32}")
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
STOP_GRACE_TENTHS = 50  # graceful stop waits up to 5 s before SIGKILL

q = shlex.quote


@dataclass(frozen=True)
class Probe:
    """What a device told us about itself."""

    install_dir: str
    data_dir: str
    arch: str
    uid: Optional[int]
    python_version: Optional[tuple[int, int, int]]
    free_bytes: Optional[int]  # on the filesystem holding the data dir
    tools: frozenset[str] = field(default_factory=frozenset)  # setsid, nohup, systemd-run, tc, ...
    systemd: bool = False

    @property
    def python_text(self) -> str:
        return ".".join(map(str, self.python_version)) if self.python_version else "missing"

    def detach_method(self, profile: Profile) -> Optional[str]:
        """First of the profile's methods usable here. systemd-run needs systemd as init and
        root (a user manager would stop the unit when the SSH session ends)."""
        for method in profile.detach:
            if method == "systemd-run":
                if self.systemd and self.uid == 0 and "systemd-run" in self.tools:
                    return method
            elif method in self.tools:
                return method
        return None

    def tc_usable(self, profile: Profile) -> bool:
        return profile.tc and self.uid == 0 and "tc" in self.tools


def probe_command(profile: Profile, python: str) -> str:
    """One round trip: dirs (expanded by the device's shell), arch, uid, python, free disk, tools."""
    py = q(python)
    # profile dirs are trusted package data written for sh expansion ($HOME, ${X:-y})
    return "; ".join(
        [
            f'printf "install=%s\\n" "{profile.install_dir}"',
            f'printf "data=%s\\n" "{profile.data_dir}"',
            'printf "arch=%s\\n" "$(uname -m)"',
            'printf "uid=%s\\n" "$(id -u)"',
            f"{py} -c 'import sys; print(\"python=%d.%d.%d\" % sys.version_info[:3])' 2>/dev/null"
            " || echo python=",
            f'd="{profile.data_dir}"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done',
            "printf \"disk=%s\\n\" \"$(df -Pk \"$d\" 2>/dev/null | awk 'NR==2{print $4}')\"",
            "for t in setsid nohup systemd-run sha256sum; do"
            ' command -v $t >/dev/null 2>&1 && printf "tool=%s\\n" $t; done',
            # tc only when it can talk to the kernel (not under qemu-user, nor without sch_* support)
            "tc qdisc show dev lo >/dev/null 2>&1 && echo tool=tc",
            '[ -d /run/systemd/system ] && echo systemd=1',
            "true",
        ]
    )


def parse_probe(text: str) -> Probe:
    values: dict[str, str] = {}
    tools: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "tool":
            tools.add(value.strip())
        else:
            values[key] = value.strip()
    version: Optional[tuple[int, int, int]] = None
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", values.get("python", ""))
    if m:
        version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    disk = values.get("disk", "")
    uid = values.get("uid", "")
    return Probe(
        install_dir=values.get("install", ""),
        data_dir=values.get("data", ""),
        arch=values.get("arch", "?") or "?",
        uid=int(uid) if uid.isdigit() else None,
        python_version=version,
        free_bytes=int(disk) * 1024 if disk.isdigit() else None,
        tools=frozenset(tools),
        systemd=values.get("systemd") == "1",
    )


AGENT_MIN_PYTHON = (3, 9)  # peer/ runs on 3.9+, whatever a profile says


def size_text(n: Optional[int]) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def python_problem(version: Optional[tuple[int, int, int]], text: str, python: str,
                   min_python: tuple[int, int]) -> Optional[str]:
    """Why this Python cannot run the agent, or None."""
    floor = max(min_python, AGENT_MIN_PYTHON)
    if version is None:
        return f"no Python at {python!r}"
    if version[:2] < floor:
        return f"Python {text} is older than {floor[0]}.{floor[1]}"
    return None


def space_problem(free: Optional[int], data_dir: str, need: int) -> Optional[str]:
    """Why the data dir's filesystem cannot hold ``need`` bytes, or None."""
    if free is None:
        return f"cannot read free disk of {data_dir}"
    if free < need:
        return f"{size_text(free)} free in {data_dir} < {size_text(need)} the content needs"
    return None


CLOCK_COMMAND = "date +%s.%N"
# One line of wall-clock time per line read (a Python 3.9+ on the device: the agent needs one)
CLOCK_LOOP = "import sys, time\nfor _ in sys.stdin:\n    print('%.6f' % time.time(), flush=True)\n"


def parse_clock(text: str) -> Optional[float]:
    """Seconds since the epoch from ``date +%s.%N`` (busybox prints a literal N: whole seconds)."""
    word = text.strip().split()[0] if text.strip() else ""
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?.*", word)
    if not m:
        return None
    return float(f"{m.group(1)}.{m.group(2) or 0}")


def clock_skew(remote: float, sent: float, received: float) -> float:
    """Remote minus local, the local instant taken halfway through the round trip."""
    return remote - (sent + received) / 2


def check_mesh_dir(path: str, mesh: str) -> str:
    """Refuse to `rm -rf` anything but ``<abs dir>/meshbed/<mesh>``."""
    if (
        not MESH_NAME.fullmatch(mesh)
        or not path.startswith("/")
        or ".." in path.split("/")
        or not path.rstrip("/").endswith(f"/meshbed/{mesh}")
        or path.rstrip("/") == f"/meshbed/{mesh}"
    ):
        raise ValueError(f"refusing to remove {path!r}: not a meshbed mesh directory")
    return path.rstrip("/")


def unit_name(mesh: str, node: str) -> str:
    return "meshbed-" + re.sub(r"[^A-Za-z0-9_-]", "_", f"{mesh}-{node}")


def start_command(
    *,
    method: str,
    python: str,
    pyz: str,
    run_dir: str,
    args: Sequence[str],
    unit: str,
) -> str:
    """Start the agent detached; prints the pid when the method knows it at once."""
    cmd = " ".join(q(a) for a in [python, pyz, *args])
    log, pidfile, rd = q(f"{run_dir}/agent.log"), q(f"{run_dir}/agent.pid"), q(run_dir)
    # `;` not `&&`: a trailing `&` would put the whole and-list (holding the channel) in the background
    prelude = f"cd {rd} || exit 1; rm -f ready.json agent.pid; "
    if method == "systemd-run":
        return prelude + (
            f"systemd-run --quiet --collect --unit={q(unit)} -p WorkingDirectory={rd} "
            f"-p {q(f'StandardOutput=append:{run_dir}/agent.log')} "
            f"-p {q(f'StandardError=append:{run_dir}/agent.log')} {cmd}"
        )
    # A new session gets no SIGHUP when the SSH session ends, so setsid needs no nohup (which
    # busybox builds may lack). The background job is not a process-group leader, so setsid(1)
    # execs in place and $! is the agent itself; stdin/out/err leave the SSH channel.
    detach = method if method in ("setsid", "nohup") else "nohup"
    return prelude + f"{detach} {cmd} >>{log} 2>&1 </dev/null & echo $! >{pidfile}; cat {pidfile}"


def _owned_pid_snippet(run_dir: str) -> str:
    """Sets $p to the agent's pid if that process is still ours (its command line names
    run_dir), else empty: a recycled pid is never signalled."""
    rd = q(run_dir)
    return (
        f"p=$(cat {rd}/agent.pid 2>/dev/null); "
        f"if [ -n \"$p\" ] && ! tr '\\000' ' ' </proc/$p/cmdline 2>/dev/null | grep -qF -- {rd}; then p=; fi"
    )


# a client node's translator leads a process group holding the client (orchestrator/clients/node.py)
_GROUP_KILL = '[ -n "$p" ] && kill -KILL -"$p" 2>/dev/null'  # no `--`: dash takes it for a pid


def kill_command(run_dir: str, unit: Optional[str] = None, group: bool = False) -> str:
    """SIGKILL the agent (no goodbye); keep its files. ``group``: its whole process group."""
    parts = [_owned_pid_snippet(run_dir), *([_GROUP_KILL] if group else []),
             '[ -n "$p" ] && kill -KILL "$p" 2>/dev/null']
    if unit:
        parts.append(f"systemctl kill --signal=KILL {q(unit)} >/dev/null 2>&1")
    parts.append("true")
    return "; ".join(parts)


def stop_command(run_dir: str, unit: Optional[str] = None, group: bool = False) -> str:
    """SIGTERM, wait up to 5 s for the agent to exit, then SIGKILL (``group``: then SIGKILL
    what is left of its process group: a client the translator did not stop)."""
    rd = q(run_dir)
    alive = f"tr '\\000' ' ' </proc/$p/cmdline 2>/dev/null | grep -qF -- {rd}"
    parts = [
        _owned_pid_snippet(run_dir),
        (
            'if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null; i=0; '
            f"while [ $i -lt {STOP_GRACE_TENTHS} ] && {alive}; do sleep 0.1; i=$((i+1)); done; "
            f"{alive} && kill -KILL \"$p\" 2>/dev/null; fi"
        ),
    ]
    if group:
        parts.append(_GROUP_KILL)
    if unit:
        parts.append(f"systemctl stop {q(unit)} >/dev/null 2>&1")
    parts.append("true")
    return "; ".join(parts)


def alive_command(run_dir: str) -> str:
    """Prints ``alive`` when the agent of run_dir runs."""
    return _owned_pid_snippet(run_dir) + '; [ -n "$p" ] && echo alive; true'


def present_command(pyz: str, token_file: str) -> str:
    """Prints ``pyz`` and ``token`` for those of the two files that exist."""
    return f"[ -f {q(pyz)} ] && echo pyz; [ -f {q(token_file)} ] && echo token; true"


def remove_command(dirs: Sequence[str], mesh: str) -> str:
    checked = [check_mesh_dir(d, mesh) for d in dirs]
    return "rm -rf " + " ".join(q(d) for d in dict.fromkeys(checked)) + "; true"


def ports_of(ready: dict[str, object]) -> tuple[int, int]:
    """(api port, wire port) from the agent's ready file {"pid","api","wire"}."""
    api = str(ready["api"]).rsplit(":", 1)[1]
    wire = str(ready["wire"]).rsplit(":", 1)[1]
    return int(api), int(wire)
