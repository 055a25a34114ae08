"""Per-device steps of the ssh backend, each over the device's one connection.

Layout on a device (``INSTALL``/``DATA`` are the profile's dirs as the device expands them):

    INSTALL/meshbed/peer-<sha256[:16]>.pyz   shared by meshes; content-addressed, so a running
                                             agent never sees its zipapp replaced under it
    INSTALL/meshbed/<mesh>/<node>/           token (0600), agent.pid, ready.json, agent.log
    DATA/meshbed/<mesh>/<node>/data/         the agent's data dir

`down` removes ``INSTALL/meshbed/<mesh>`` and ``DATA/meshbed/<mesh>`` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from devices import Profile
from orchestrator.backends.ssh import remote
from orchestrator.backends.ssh.connection import DeviceConnection, DeviceError, asyncssh

READY_TIMEOUT = 30.0
READY_POLL = 0.05
READY_POLL_MAX = 0.4
LOG_TAIL_BYTES = 4000


@dataclass(frozen=True)
class NodePaths:
    run_dir: str
    data_dir: str

    @property
    def token_file(self) -> str:
        return f"{self.run_dir}/token"

    @property
    def ready_file(self) -> str:
        return f"{self.run_dir}/ready.json"

    @property
    def log_file(self) -> str:
        return f"{self.run_dir}/agent.log"


def mesh_dirs(probe: remote.Probe, mesh: str) -> list[str]:
    dirs = [f"{probe.install_dir}/meshbed/{mesh}", f"{probe.data_dir}/meshbed/{mesh}"]
    return list(dict.fromkeys(remote.check_mesh_dir(d, mesh) for d in dirs))


def node_paths(install_dir: str, data_dir: str, mesh: str, node: str) -> NodePaths:
    if not remote.NODE_NAME.fullmatch(node):
        raise ValueError(f"node name {node!r} cannot be a path component")
    return NodePaths(
        run_dir=f"{install_dir}/meshbed/{mesh}/{node}",
        data_dir=f"{data_dir}/meshbed/{mesh}/{node}/data",
    )


async def probe(conn: DeviceConnection, profile: Profile, python: str) -> remote.Probe:
    result = await conn.run(remote.probe_command(profile, python), timeout=30)
    found = remote.parse_probe(result.stdout)
    if not found.install_dir.startswith("/") or not found.data_dir.startswith("/"):
        raise DeviceError(
            conn.name,
            f"profile {profile.name}: install/data dir did not expand to absolute paths "
            f"({found.install_dir!r}, {found.data_dir!r})",
        )
    return found


async def measure_skew(conn: DeviceConnection, samples: int = 5, python: Optional[str] = None) -> Optional[float]:
    """Remote clock minus local clock in seconds, half-RTT corrected, best of ``samples``.

    Asked through one long-lived remote process so each round trip costs the network, not a
    login shell's start-up (which would skew the midpoint): the device's Python printing
    ``time.time()`` per line when ``python`` is given (busybox ``date`` has whole seconds
    only), else ``sh`` running ``date +%s.%N``. Python's own start-up only delays the first
    sample, which the best-of (smallest round trip) drops."""
    if python:
        skew = await _skew_through(conn, f"exec {remote.q(python)} -u -c {remote.q(remote.CLOCK_LOOP)}",
                                   "\n", samples + 1)
        if skew is not None:
            return skew
    return await _skew_through(conn, "exec /bin/sh", remote.CLOCK_COMMAND + "\n", samples)


async def _skew_through(conn: DeviceConnection, command: str, ask: str, samples: int) -> Optional[float]:
    try:
        proc = await conn.conn.create_process(command, term_type=None)
    except Exception as exc:  # noqa: BLE001 - asyncssh raises several kinds here
        raise DeviceError(conn.name, f"cannot start a shell: {exc}") from None
    best: Optional[tuple[float, float]] = None  # (rtt, skew)
    try:
        for _ in range(samples):
            t0 = time.time()
            proc.stdin.write(ask)
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            t1 = time.time()
            value = remote.parse_clock(line)
            if value is None:
                return None
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, remote.clock_skew(value, t0, t1))
    except (asyncio.TimeoutError, OSError) as exc:
        raise DeviceError(conn.name, f"clock read failed: {exc}") from None
    finally:
        proc.stdin.write_eof()
        proc.close()
    return best[1] if best else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


async def ensure_pyz(conn: DeviceConnection, local: Path, sha: str, install_dir: str,
                     stem: str = "peer") -> tuple[str, bool]:
    """Make sure ``INSTALL/meshbed/<stem>-<sha>.pyz`` holds exactly ``local`` (``stem``: peer,
    or client for the translator of client nodes); push by SFTP only when the device's copy
    is missing or differs. Returns (remote path, pushed?).

    SFTP only (no shell round trips): the device's copy is read back and hashed here, which
    for a ~100 KiB zipapp costs less than starting a remote shell."""
    base = f"{install_dir}/meshbed"
    path = f"{base}/{stem}-{sha[:16]}.pyz"
    sftp = await conn.sftp()
    try:
        await sftp.makedirs(base, exist_ok=True)
        try:
            async with sftp.open(path, "rb") as f:
                data = await f.read()
            if hashlib.sha256(data).hexdigest() == sha:
                return path, False
        except asyncssh.SFTPNoSuchFile:
            pass
        # Upload beside it, then rename: devices sharing a filesystem may push at the same time.
        tmp = f"{path}.{secrets.token_hex(4)}.tmp"
        await sftp.put(str(local), tmp)
        try:
            await sftp.posix_rename(tmp, path)
        except asyncssh.SFTPOpUnsupported:
            if await sftp.exists(path):
                await sftp.remove(path)
            await sftp.rename(tmp, path)
    except (OSError, asyncssh.Error) as exc:
        raise DeviceError(conn.name, f"cannot install {stem}.pyz in {base}: {exc}") from None
    return path, True


def fresh_dirs_command(paths: NodePaths) -> str:
    """Fresh run dir and data dir (a redeploy starts clean); the token arrives on stdin and
    is written with umask 077, so it is never readable by others, not even for a moment."""
    rd, dd = remote.q(paths.run_dir), remote.q(paths.data_dir)
    return (
        f"rm -rf {rd} {dd} && mkdir -p {rd} {dd}/inbox && chmod 700 {rd} && "
        f"(umask 077 && cat >{remote.q(paths.token_file)}) || exit 1"
    )


def restore_dirs_command(paths: NodePaths) -> str:
    """The node's dirs and token again after a reboot emptied them (files in RAM), keeping
    whatever data survived; the token arrives on stdin as in fresh_dirs_command."""
    rd, dd = remote.q(paths.run_dir), remote.q(paths.data_dir)
    return (
        f"mkdir -p {rd} {dd}/inbox && chmod 700 {rd} && "
        f"(umask 077 && cat >{remote.q(paths.token_file)}) || exit 1"
    )


async def start_agent(
    conn: DeviceConnection,
    *,
    method: str,
    python: str,
    pyz: str,
    paths: NodePaths,
    args: list[str],
    unit: str,
    fresh_token: Optional[str] = None,
) -> Optional[int]:
    """Start the agent detached (one round trip). With ``fresh_token`` the node's dirs are
    first recreated empty and the token file written, in the same round trip."""
    start = remote.start_command(
        method=method, python=python, pyz=pyz, run_dir=paths.run_dir, args=args, unit=unit
    )
    if fresh_token is not None:
        start = f"{fresh_dirs_command(paths)}; {start}"
    result = await conn.run(start, timeout=30, stdin=fresh_token)
    words = result.stdout.split()
    return int(words[-1]) if words and words[-1].isdigit() else None


async def log_tail(conn: DeviceConnection, paths: NodePaths) -> str:
    try:
        result = await conn.run(
            f"tail -c {LOG_TAIL_BYTES} {remote.q(paths.log_file)} 2>/dev/null; true", timeout=10
        )
    except DeviceError as exc:
        return f"(log unavailable: {exc.message})"
    return result.stdout


async def wait_ready(
    conn: DeviceConnection, node: str, paths: NodePaths, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    """Read the agent's ready file back over SFTP; fail fast (with its log) if it died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_alive_check = loop.time() + 2.0
    poll = READY_POLL
    while loop.time() < deadline:
        text = await conn.read_text(paths.ready_file)
        if text:
            try:
                ready: dict[str, Any] = json.loads(text)
                remote.ports_of(ready)
                return ready
            except (ValueError, KeyError, IndexError):
                pass  # written atomically by the agent, but be lenient with odd content
        if loop.time() >= next_alive_check:
            next_alive_check = loop.time() + 2.0
            alive = await conn.run(remote.alive_command(paths.run_dir), timeout=10)
            if "alive" not in alive.stdout and not await conn.read_text(paths.ready_file):
                tail = await log_tail(conn, paths)
                raise DeviceError(conn.name, f"agent of {node} exited at start:\n{tail}")
        await asyncio.sleep(poll)
        poll = min(poll * 1.5, READY_POLL_MAX)  # an agent is up in ~0.2 s on a quiet device
    tail = await log_tail(conn, paths)
    raise DeviceError(conn.name, f"agent of {node} not ready after {timeout:.0f}s:\n{tail}")


async def tcp_reachable(host: str, port: int, timeout: float = 5.0) -> Optional[str]:
    """None when a TCP connection to host:port opens from here, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None
