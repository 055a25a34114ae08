"""Device profiles for the ssh backend (YAML files shipped as package data).

A profile says how meshbed runs on a kind of device: which interpreter, the oldest Python
it accepts, where peer.pyz and the agents' files go, how big the data dir may grow, how a
process is started so it outlives the SSH session, and whether kernel shaping (tc) may be
used. Profiles are read with ``importlib.resources`` so they work from a wheel or a zip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

DETACH_METHODS = ("systemd-run", "setsid", "nohup")
_FIELDS = {"description", "python", "min_python", "install_dir", "data_dir", "data_cap", "detach", "tc"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\s*$")
_UNITS = {
    None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
}


class ProfileError(ValueError):
    """A profile is unknown or malformed."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    python: str  # interpreter command on the device
    min_python: tuple[int, int]
    install_dir: str  # POSIX-sh expanded on the device; holds peer.pyz and meshbed/<mesh>/<node>/
    data_dir: str  # POSIX-sh expanded on the device; agents' data under meshbed/<mesh>/<node>/
    data_cap_bytes: int  # the data dir may grow to this; `devices check` wants this much free
    detach: tuple[str, ...]  # preference order, first available on the device wins
    tc: bool  # kernel shaping allowed (also needs root on the device)

    @property
    def min_python_text(self) -> str:
        return f"{self.min_python[0]}.{self.min_python[1]}"


def parse_size(text: object) -> int:
    """``"2GiB"`` -> bytes (binary and decimal units, plain integers as bytes)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ProfileError(f"bad size {text!r} (use B, KiB, MiB, GiB, KB, MB, GB)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _parse_version(text: object) -> tuple[int, int]:
    m = re.match(r"^\s*(\d+)\.(\d+)\s*$", str(text))
    if not m:
        raise ProfileError(f"bad min_python {text!r} (want MAJOR.MINOR)")
    return int(m.group(1)), int(m.group(2))


def profile_names() -> list[str]:
    root = resources.files(__name__) / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def parse_profile(name: str, text: str) -> Profile:
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ProfileError(f"profile {name}: not a mapping")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ProfileError(f"profile {name}: unknown keys {', '.join(sorted(unknown))}")
    missing = {"python", "min_python", "install_dir", "data_dir", "data_cap"} - set(raw)
    if missing:
        raise ProfileError(f"profile {name}: missing keys {', '.join(sorted(missing))}")
    detach = raw.get("detach", ["setsid", "nohup"])
    if isinstance(detach, str):
        detach = [detach]
    bad = [d for d in detach if d not in DETACH_METHODS]
    if bad or not detach:
        raise ProfileError(f"profile {name}: detach must be a list of {', '.join(DETACH_METHODS)}")
    return Profile(
        name=name,
        description=str(raw.get("description", name)),
        python=str(raw["python"]),
        min_python=_parse_version(raw["min_python"]),
        install_dir=str(raw["install_dir"]).rstrip("/") or "/",
        data_dir=str(raw["data_dir"]).rstrip("/") or "/",
        data_cap_bytes=parse_size(raw["data_cap"]),
        detach=tuple(str(d) for d in detach),
        tc=bool(raw.get("tc", False)),
    )


@cache
def load_profile(name: str) -> Profile:
    """The shipped profile ``name`` (ProfileError naming the known ones when unknown)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ProfileError(f"unknown device profile {name!r}")
    path = resources.files(__name__) / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise ProfileError(
            f"unknown device profile {name!r} (known: {', '.join(profile_names())})"
        )
    return parse_profile(name, path.read_text(encoding="utf-8"))
