"""Agents as real processes (`python -m peer run` or `python3 peer.pyz run`) for tests and
benchmarks: start on 127.0.0.1 port 0, wait for the ready file, talk to the control API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional, Union

REPO = Path(__file__).resolve().parents[1]
_DEFAULT = object()


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: Optional[str] = None,
    raw: Optional[bytes] = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One request; returns (status, decoded JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if method == "POST" and data is None:
        data = b""
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, payload, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    if "json" in ctype:
        return status, json.loads(payload)
    return status, payload.decode(errors="replace")


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``predicate`` until truthy (bounded in time); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class AgentProc:
    """One `meshbed-peer run` process with its own data dir under ``root/name``."""

    def __init__(
        self,
        root: Path,
        name: str,
        *,
        token: Optional[str] = "test-token",
        token_via: str = "env",  # "env" | "file"
        extra: Optional[list[str]] = None,
        command: Optional[list[str]] = None,
        python: str = sys.executable,
        log_level: str = "info",
    ) -> None:
        self.name = name
        self.dir = root / name
        self.data_dir = self.dir / "data"
        self.ready_file = self.dir / "ready.json"
        self.log_file = self.dir / "agent.log"
        self.token = token
        self.token_via = token_via
        self.extra = list(extra or [])
        self.command = command or [python, "-m", "peer"]
        self.log_level = log_level
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.api = ""
        self.wire = ""

    # --- process ------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> AgentProc:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env.pop("MESHBED_TOKEN", None)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        args = [
            *self.command, "run",
            "--data-dir", str(self.data_dir),
            "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0",
            "--node", self.name, "--group", self.name.rsplit("-", 1)[0], "--mesh", "test",
            "--ready-file", str(self.ready_file),
            "--log-file", str(self.log_file), "--log-level", self.log_level,
            *self.extra,
        ]
        if self.token is not None:
            if self.token_via == "file":
                token_file = self.dir / "token"
                token_file.write_text(self.token + "\n")
                token_file.chmod(0o600)
                args += ["--token-file", str(token_file)]
            else:
                env["MESHBED_TOKEN"] = self.token
        with open(self.dir / "stderr.txt", "ab") as stderr:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.logs()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.name} not ready in {timeout}s: {self.logs()}")
            time.sleep(0.05)
        ready = json.loads(self.ready_file.read_text())
        assert ready["pid"] == self.proc.pid
        self.api, self.wire = ready["api"], ready["wire"]
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def logs(self) -> str:
        parts = []
        for f in (self.log_file, self.dir / "stderr.txt"):
            if f.exists():
                parts.append(f.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.terminate(10)
        except subprocess.TimeoutExpired:
            pass

    # --- control API --------------------------------------------------------------------
    def call(
        self, method: str, path: str, body: Any = None, *, token: Union[object, str, None] = _DEFAULT,
        raw: Optional[bytes] = None, timeout: float = 60.0,
    ) -> tuple[int, Any]:
        tok = self.token if token is _DEFAULT else token
        assert tok is None or isinstance(tok, str)
        return http(method, f"http://{self.api}{path}", body, token=tok, raw=raw, timeout=timeout)

    def ok(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        status, obj = self.call(method, path, body, timeout=timeout)
        assert status == 200, f"{method} {path} -> {status} {obj}"
        return obj

    def status(self) -> dict[str, Any]:
        return dict(self.ok("GET", "/status"))

    def torrent(self, infohash: str) -> Optional[dict[str, Any]]:
        t = self.status().get("torrents", {}).get(infohash)
        return dict(t) if t is not None else None

    def known(self, infohash: str) -> dict[str, Any]:
        """The torrent's status entry; AssertionError if the agent does not have it."""
        t = self.torrent(infohash)
        assert t is not None, f"{self.name} does not know {infohash}"
        return t

    def wait_complete(
        self, infohash: str, timeout: float = 120.0, verdict: bool = True
    ) -> dict[str, Any]:
        """Wait until complete and, with ``verdict`` and an expected SHA-256, until the
        whole-file check has a result."""

        def done() -> Optional[dict[str, Any]]:
            t = self.torrent(infohash)
            if not t or not t.get("complete"):
                return None
            waiting = verdict and t.get("sha256") and t.get("verified") is None
            return None if waiting else t

        try:
            return dict(wait_for(done, timeout, f"{self.name} to complete {infohash}", 0.2))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus: {self.torrent(infohash)}\n{self.logs()}") from None

    def share_synthetic(
        self, name: str, size: int, seed: int = 1, piece_length: Optional[int] = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"synthetic": {"name": name, "size": size, "seed": seed}}
        if piece_length:
            body["piece_length"] = piece_length
        return dict(self.ok("POST", "/share", body, timeout=300))
