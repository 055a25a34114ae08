"""One asyncssh connection per device, reused for every step; host keys always verified.

Host keys are checked against the device's ``known_hosts`` file (default
``~/.ssh/known_hosts``). An unknown host is refused unless the device says
``trust_on_first_use: true``, in which case its key is appended to that file. A host whose
key differs from the recorded one is always refused. Passwords are never used: the key
file named in the inventory, or the ssh-agent / default keys.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from orchestrator.errors import MeshbedError
from orchestrator.model import Device, Inventory

try:  # the backend reports the import failure through unavailable_reason()
    import asyncssh
except ImportError:  # pragma: no cover - exercised only without asyncssh
    asyncssh = None  # type: ignore[assignment]

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0


class DeviceError(MeshbedError):
    """Something failed on (or on the way to) a named device."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"device {device}: {message}")
        self.device = device
        self.message = message


class HostKeyError(DeviceError):
    """The device's host key is unknown (and not trusted on first use) or has changed."""


class RemoteCommandError(DeviceError):
    def __init__(self, device: str, command: str, status: Optional[int], stderr: str) -> None:
        tail = stderr.strip().splitlines()[-3:]
        super().__init__(
            device, f"`{command[:120]}` exited {status}: {' | '.join(tail) or 'no output'}"
        )
        self.status = status
        self.stderr = stderr


@dataclass(frozen=True)
class SshTarget:
    """Everything needed to open an SSH connection to one device."""

    name: str
    host: str
    port: int = 22
    user: Optional[str] = None
    key: Optional[str] = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    trust_on_first_use: bool = False
    jump: Optional[SshTarget] = None

    @property
    def known_hosts_path(self) -> Path:
        return Path(os.path.expanduser(self.known_hosts))

    @property
    def host_pattern(self) -> str:
        """How the host is written in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def _parse_jump(spec: str, via: Device) -> tuple[Optional[str], str, int]:
    user: Optional[str] = None
    if "@" in spec:
        user, spec = spec.split("@", 1)
    host, port = spec, 22
    if spec.startswith("["):  # [v6addr]:port
        host, _, rest = spec[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 22
    elif spec.count(":") == 1:
        host, p = spec.split(":")
        port = int(p)
    return user or via.user, host, port


def target_for(device: Device, inventory: Optional[Inventory] = None, _depth: int = 0) -> SshTarget:
    """Resolve a device (and its jump host: an inventory device name or ``[user@]host[:port]``)."""
    jump: Optional[SshTarget] = None
    if device.jump:
        if _depth > 4:
            raise DeviceError(device.name, "jump host chain longer than 4 (a loop?)")
        jump_device: Optional[Device] = None
        if inventory is not None:
            try:
                jump_device = inventory.get(device.jump)
            except KeyError:
                jump_device = None
        if jump_device is not None:
            jump = target_for(jump_device, inventory, _depth + 1)
        else:
            user, host, port = _parse_jump(device.jump, device)
            jump = SshTarget(
                name=f"jump:{user or ''}@{host}:{port}",  # devices naming the same jump share it
                host=host,
                port=port,
                user=user,
                key=device.key,
                known_hosts=device.known_hosts or DEFAULT_KNOWN_HOSTS,
                trust_on_first_use=device.trust_on_first_use,
            )
    return SshTarget(
        name=device.name,
        host=device.host,
        port=device.port,
        user=device.user,
        key=device.key,
        known_hosts=device.known_hosts or DEFAULT_KNOWN_HOSTS,
        trust_on_first_use=device.trust_on_first_use,
        jump=jump,
    )


def _record_host_key(target: SshTarget, key: Any) -> None:
    path = target.known_hosts_path
    path.parent.mkdir(parents=True, exist_ok=True)
    keytype, blob = key.export_public_key("openssh").decode().split()[:2]
    line = f"{target.host_pattern} {keytype} {blob}\n"
    # O_APPEND writes of one short line are atomic on local filesystems.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _load_known_hosts(target: SshTarget) -> Any:
    path = target.known_hosts_path
    if path.exists():
        try:
            return asyncssh.read_known_hosts(str(path))
        except (OSError, ValueError) as exc:
            raise HostKeyError(target.name, f"cannot read known_hosts {path}: {exc}") from None
    if not target.trust_on_first_use:
        raise HostKeyError(
            target.name,
            f"known_hosts file {path} does not exist; add the device's host key "
            "(ssh-keyscan) or set trust_on_first_use: true",
        )
    return asyncssh.import_known_hosts("")


class _VerifyingClient(asyncssh.SSHClient if asyncssh else object):  # type: ignore[misc]
    """Called by asyncssh only for keys not already trusted by known_hosts."""

    def __init__(self, target: SshTarget, known_hosts: Any) -> None:
        self.target = target
        self.known_hosts = known_hosts
        self.refusal: Optional[str] = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        recorded = asyncssh.match_known_hosts(self.known_hosts, host, addr, port)[0]
        fingerprint = key.get_fingerprint()
        path = self.target.known_hosts_path
        if recorded:
            self.refusal = (
                f"HOST KEY CHANGED for {self.target.host_pattern}: it offered {fingerprint}, "
                f"which is not the key recorded in {path}. Refusing to connect (the device was "
                "reinstalled, or someone is in the middle); remove the old line if expected"
            )
            return False
        if self.target.trust_on_first_use:
            _record_host_key(self.target, key)
            return True
        self.refusal = (
            f"host key of {self.target.host_pattern} ({fingerprint}) is not in {path}; add it "
            "(ssh-keyscan) or set trust_on_first_use: true"
        )
        return False


@dataclass(frozen=True)
class RunResult:
    stdout: str
    stderr: str
    status: int


class DeviceConnection:
    """An open connection to one device, with a lazily opened SFTP session."""

    def __init__(self, target: SshTarget, conn: Any) -> None:
        self.target = target
        self.conn = conn
        self._sftp: Any = None
        self._sftp_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.target.name

    async def run(
        self,
        command: str,
        *,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        stdin: Optional[str] = None,
    ) -> RunResult:
        """Run ``command`` (POSIX sh syntax) on the device. The login shell only execs
        ``/bin/sh``, so a user whose shell is fish or csh works too."""
        try:
            proc = await asyncio.wait_for(
                self.conn.run(f"exec /bin/sh -c {shlex.quote(command)}", check=False, input=stdin),
                timeout,
            )
        except asyncio.TimeoutError:
            raise DeviceError(self.name, f"`{command[:120]}` timed out after {timeout:.0f}s") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeviceError(self.name, f"connection lost: {exc}") from None
        out = proc.stdout if isinstance(proc.stdout, str) else (proc.stdout or b"").decode()
        err = proc.stderr if isinstance(proc.stderr, str) else (proc.stderr or b"").decode()
        status = proc.exit_status if proc.exit_status is not None else -1
        if check and status != 0:
            raise RemoteCommandError(self.name, command, status, err)
        return RunResult(out, err, status)

    async def sftp(self) -> Any:
        async with self._sftp_lock:
            if self._sftp is None:
                try:
                    self._sftp = await self.conn.start_sftp_client()
                except (OSError, asyncssh.Error) as exc:
                    raise DeviceError(self.name, f"cannot start SFTP: {exc}") from None
            return self._sftp

    async def put(self, local: Path, remote: str) -> None:
        sftp = await self.sftp()
        try:
            await sftp.put(str(local), remote)
        except (OSError, asyncssh.Error) as exc:
            raise DeviceError(self.name, f"SFTP upload to {remote} failed: {exc}") from None

    async def write_text(self, remote: str, text: str, mode: int = 0o600) -> None:
        """Create ``remote`` with ``mode`` from the start (the token never sits world-readable)."""
        sftp = await self.sftp()
        try:
            attrs = asyncssh.SFTPAttrs(permissions=mode)
            async with sftp.open(remote, "w", attrs) as f:
                await f.write(text)
            await sftp.chmod(remote, mode)
        except (OSError, asyncssh.Error) as exc:
            raise DeviceError(self.name, f"cannot write {remote}: {exc}") from None

    async def read_text(self, remote: str) -> Optional[str]:
        """Contents of ``remote``, or None when it does not exist."""
        sftp = await self.sftp()
        try:
            async with sftp.open(remote, "r") as f:
                data = await f.read()
        except asyncssh.SFTPNoSuchFile:
            return None
        except (OSError, asyncssh.Error) as exc:
            raise DeviceError(self.name, f"cannot read {remote}: {exc}") from None
        return data if isinstance(data, str) else data.decode()

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        self.conn.close()


async def open_connection(
    target: SshTarget, *, tunnel: Any = None, connect_timeout: float = CONNECT_TIMEOUT
) -> DeviceConnection:
    if asyncssh is None:  # pragma: no cover
        raise DeviceError(target.name, "asyncssh is not installed")
    known_hosts = _load_known_hosts(target)
    client = _VerifyingClient(target, known_hosts)
    options: dict[str, Any] = {
        "port": target.port,
        "username": target.user or getpass.getuser(),
        "known_hosts": known_hosts,
        "password": None,
        "kbdint_auth": False,
        "gss_auth": False,
        "connect_timeout": connect_timeout,
        "keepalive_interval": 15,
    }
    if target.key:
        options["client_keys"] = [os.path.expanduser(target.key)]
    if tunnel is not None:
        options["tunnel"] = tunnel
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(target.host, client_factory=lambda: client, **options),
            connect_timeout + 5,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyError(target.name, client.refusal or str(exc)) from None
    except asyncssh.PermissionDenied:
        how = f"key {target.key}" if target.key else "ssh-agent / default keys"
        raise DeviceError(
            target.name,
            f"permission denied for {options['username']}@{target.host}:{target.port} ({how}); "
            "meshbed never uses passwords",
        ) from None
    except (asyncio.TimeoutError, TimeoutError):
        raise DeviceError(
            target.name, f"unreachable: {target.host}:{target.port} timed out after {connect_timeout:.0f}s"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise DeviceError(target.name, f"unreachable: {target.host}:{target.port}: {exc}") from None
    return DeviceConnection(target, conn)


class ConnectionPool:
    """At most one connection per device (and per jump host), opened on first use."""

    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.connect_timeout = connect_timeout
        self._conns: dict[str, DeviceConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, target: SshTarget) -> DeviceConnection:
        lock = self._locks.setdefault(target.name, asyncio.Lock())
        async with lock:
            conn = self._conns.get(target.name)
            if conn is not None and not conn.conn.is_closed():
                return conn
            tunnel = None
            if target.jump is not None:
                tunnel = (await self.get(target.jump)).conn
            conn = await open_connection(
                target, tunnel=tunnel, connect_timeout=self.connect_timeout
            )
            self._conns[target.name] = conn
            return conn

    def names(self) -> Iterable[str]:
        return list(self._conns)

    async def close(self) -> None:
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            try:
                await asyncio.wait_for(conn.conn.wait_closed(), 5)
            except (asyncio.TimeoutError, OSError, Exception):  # noqa: BLE001 - closing anyway
                pass


def quote(arg: str) -> str:
    return shlex.quote(arg)
