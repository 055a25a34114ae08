"""opentracker (Debian build: whitelist mode) in the seeder's namespace."""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.error
import urllib.request

from bench._netlab import Lab

PORT = 6969


def available() -> bool:
    return shutil.which("opentracker") is not None


async def start(lab: Lab, host: str, infohash_hex: str) -> str:
    """Start the tracker for one infohash; return its announce URL once it answers."""
    h = lab.hosts[host]
    d = h.dir / "tracker"
    d.mkdir(parents=True, exist_ok=True)
    # One hex infohash per line; the file is read from the chroot (-d) as user nobody.
    (d / "whitelist").write_text(infohash_hex + "\n")
    d.chmod(0o755)
    (d / "whitelist").chmod(0o644)
    lab.spawn(host, ["opentracker", "-i", h.ip, "-p", str(PORT), "-P", str(PORT),
                     "-d", str(d), "-w", "whitelist"], log="tracker.log")
    url = f"http://{h.ip}:{PORT}/announce"
    deadline = time.monotonic() + 15
    while True:
        try:
            await asyncio.to_thread(_get, f"http://{h.ip}:{PORT}/stats")
            return url
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("opentracker did not answer within 15s") from None
            await asyncio.sleep(0.2)


def _get(url: str) -> bytes:
    """Any HTTP answer (its /stats says 403 to non-admins) means it is listening."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()
