"""A fork server for local agents: one interpreter with the agent's modules loaded, which
forks a child per agent instead of starting a new interpreter each time.

Why: an exec'd agent spends ~0.3 CPU s importing and keeps ~19 MB of private memory; a forked
one shares the parent's loaded modules copy-on-write (frozen out of the cycle collector, so it
does not dirty them), which is what lets a thousand local agents fit on one host.

Protocol: an abstract unix socket (no file, no path-length limit), one request per
connection: a JSON line ``{"args": [...], "cmdline": [...], "log": PATH, "exit_file": PATH}``
(``args``: what follows ``python -m peer``; ``cmdline``: the whole command), answered by
``{"pid": N}`` or ``{"error": "..."}``. Only the server's own user may connect (SO_PEERCRED).

A child becomes what ``python -m peer run ...`` would be: its own session, stdin from
/dev/null, stdout and stderr appended to its log, and its command line rewritten in place to
``cmdline`` (the kernel shows /proc/PID/cmdline from the argv area, which the server's
``--room`` argument makes large enough), so ``ps`` and every lookup by command line see an
ordinary agent. The server reaps its children and writes each exit status to the child's
``exit_file``. It exits when its ``--data-dir`` goes away (the mesh was torn down).

Runs on Python 3.9 with the stdlib only, like the rest of ``peer``.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

MAX_REQUEST = 64 * 1024
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def address(name: str) -> str:
    """The abstract socket address for ``name`` (Linux: a leading NUL, no file)."""
    return "\0" + name


def rewrite_cmdline(argv: list[str]) -> bool:
    """Overwrite this process's argv area with ``argv`` (NUL-separated, NUL-padded): what
    /proc/self/cmdline shows from now on. False when it does not fit."""
    try:
        raw = Path("/proc/self/stat").read_bytes()
        fields = raw[raw.rfind(b")") + 2 :].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48, 49
    except (OSError, IndexError, ValueError):
        return False
    data = b"\0".join(a.encode() for a in argv) + b"\0"
    size = end - start
    if start <= 0 or len(data) > size:
        return False
    ctypes.memmove(start, data + b"\0" * (size - len(data)), size)
    return True


def _preload() -> None:
    """Import what an agent imports, so children share it instead of importing it again."""
    import asyncio  # noqa: F401
    import encodings.idna  # noqa: F401  (what resolving a host name imports)

    import peer.agent  # noqa: F401
    import peer.cli  # noqa: F401
    import peer.control  # noqa: F401
    import peer.metrics  # noqa: F401
    import peer.shaping  # noqa: F401


def _reap() -> None:
    """Collect exited children; write each one's exit status where its request asked."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        path = _exit_files.pop(pid, None)
        # an earlier agent of the same node reaped late must not speak for the current one
        if path is not None and _latest.get(path) == pid:
            try:
                Path(path).write_text(f"{os.waitstatus_to_exitcode(status)}\n")
            except OSError:
                pass


_exit_files: dict[int, str] = {}  # child pid -> where its exit status goes
_latest: dict[str, int] = {}  # exit file -> the child that owns it now


def _child(listener: socket.socket, conn: socket.socket, request: dict[str, Any]) -> None:
    """In the forked child: become the agent, never return."""
    code = 1
    try:
        listener.close()
        conn.close()
        os.setsid()
        # as a fresh interpreter has them (SIGPIPE stays ignored: writes to a closed socket
        # must raise, not kill the agent)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        cmdline = [str(a) for a in request.get("cmdline") or request["args"]]
        rewrite_cmdline(cmdline)
        sys.argv = cmdline
        from peer.cli import main

        code = main([str(a) for a in request["args"]])
    except SystemExit as exc:  # as the interpreter maps it: None is 0, a message is 1
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never fall back into the server
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _read_request(conn: socket.socket) -> dict[str, Any]:
    conn.settimeout(5.0)
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    request = json.loads(data.decode())
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    if request.get("ping"):
        return request
    if not isinstance(request.get("args"), list) or not request.get("log"):
        raise ValueError("a request needs args (a list) and log")
    return request


def _serve_one(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        _, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                     _PEERCRED.size))
        if uid != os.getuid():
            return  # someone else's process: no answer
        try:
            request = _read_request(conn)
        except (OSError, ValueError) as exc:
            conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            return
        if request.get("ping"):
            conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
            return
        pid = os.fork()
        if pid == 0:
            _child(listener, conn, request)
        if request.get("exit_file"):
            path = str(request["exit_file"])
            _exit_files[pid] = path
            _latest[path] = pid
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def serve(name: str, data_dir: Path, poll: float = 0.5) -> int:
    """Listen on the abstract socket ``name`` and fork agents until ``data_dir`` is gone."""
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address(name))
    except OSError as exc:
        print(f"meshbed-peer fork-server: cannot listen on @{name}: {exc}", file=sys.stderr)
        return 1
    listener.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    gc.collect()
    gc.freeze()  # the children's collector then leaves the shared objects (and pages) alone
    print(f"fork server @{name} ready (pid {os.getpid()})", flush=True)
    try:
        while data_dir.is_dir():
            _reap()
            ready, _, _ = select.select([listener], [], [], poll)
            if ready:
                try:
                    _serve_one(listener)
                except OSError as exc:  # a client that went away mid-request
                    print(f"fork server: {exc}", file=sys.stderr, flush=True)
    finally:
        listener.close()
    return 0
