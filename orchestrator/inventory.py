"""Device inventory (ssh backend): YAML -> ``model.Inventory``.

```yaml
defaults: {user: pi, key: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts}
devices:
  pi-kitchen: {host: 192.168.1.20, profile: raspberry-pi-4, tags: [pi, arm64]}
```
``defaults`` are merged into each device (a device's own value wins); ``~`` in key and
known_hosts is expanded; relative key/known_hosts paths resolve against the inventory's
directory. Passwords are refused: keys or ssh-agent only. Profiles must be one of
``devices/profiles/<name>.yaml``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from orchestrator.errors import InputError
from orchestrator.fields import Reader, did_you_mean, kind
from orchestrator.model import Device, Inventory
from orchestrator.yamlsrc import YMap, line_of, parse_yaml

KNOWN_PROFILES = (
    "raspberry-pi-4",
    "raspberry-pi-5",
    "laptop-linux",
    "openwrt-router",
    "generic-linux",
)
DEVICE_KEYS = (
    "host",
    "port",
    "user",
    "key",
    "known_hosts",
    "profile",
    "tags",
    "jump",
    "python",
    "trust_on_first_use",
)
DEFAULT_KEYS = tuple(k for k in DEVICE_KEYS if k != "host")
SECRET_KEYS = ("password", "passwd", "pass", "passphrase", "sudo_password", "become_password")
DEVICE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PASSWORD_REFUSAL = "passwords never live in the file: use a key or ssh-agent"


def profile_names() -> tuple[str, ...]:
    """Profiles shipped in ``devices/profiles/*.yaml`` (the fixed five when none are there)."""
    try:
        import devices

        folder = Path(devices.__file__).parent / "profiles"
        found = tuple(sorted(p.stem for p in folder.glob("*.yaml")))
    except (ImportError, OSError, TypeError):
        found = ()
    return found or KNOWN_PROFILES


def _path_value(value: str, base: Path) -> str:
    expanded = Path(os.path.expanduser(value))
    if not expanded.is_absolute():
        expanded = base / expanded
    return str(expanded)


def load_inventory(path: Union[str, Path]) -> Inventory:
    """Read and check an inventory file. InputError (FILE:LINE) on anything wrong."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("inventory file not found", source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read inventory: {exc}", source) from None
    return load_inventory_text(text, source)


def load_inventory_text(text: str, source: Optional[Path] = None) -> Inventory:
    r = Reader(source)
    base = source.resolve().parent if source is not None else Path.cwd()
    doc = parse_yaml(text, source)
    if doc is None:
        raise r.error("empty inventory: it needs a 'devices:' mapping", 1)
    top = r.mapping(doc, "an inventory", line_of(doc, 1), empty_ok=False)
    r.check_keys(top, ("defaults", "devices"), "the inventory", required=("devices",))
    defaults = r.mapping(top.get("defaults"), "'defaults'", top.value_line("defaults"))
    _refuse_secrets(r, defaults)
    r.check_keys(defaults, DEFAULT_KEYS, "inventory defaults")
    devices_map = r.mapping(top["devices"], "'devices'", top.value_line("devices"), empty_ok=False)
    if not devices_map:
        raise r.error("'devices' is empty: list at least one device", devices_map.line)
    profiles = profile_names()
    out: list[Device] = []
    for name, spec_value in devices_map.items():
        line = devices_map.key_line(name)
        if not DEVICE_NAME_RE.fullmatch(name):
            raise r.error(
                f"device name {name!r} is not valid: use letters, digits, '.', '_', '-'", line
            )
        spec = r.mapping(
            spec_value, f"device {name!r}", devices_map.value_line(name), empty_ok=False
        )
        _refuse_secrets(r, spec)
        r.check_keys(spec, DEVICE_KEYS, f"device {name!r}", required=("host",))
        out.append(_device(r, name, spec, defaults, profiles, base))
    _check_tags(r, devices_map, out)
    _check_jumps(r, devices_map, out)
    return Inventory(
        path=source.resolve() if source is not None else Path("<inventory>"), devices=tuple(out)
    )


def _refuse_secrets(r: Reader, m: YMap) -> None:
    for key in m:
        if key.lower() in SECRET_KEYS:
            raise r.error(f"{key!r}: {PASSWORD_REFUSAL}", m.key_line(key))


def _pick(spec: YMap, defaults: YMap, key: str) -> tuple[YMap, bool]:
    """Which mapping gives ``key`` (the device's own wins over defaults) and whether any does."""
    if key in spec and spec[key] is not None:
        return spec, True
    if key in defaults and defaults[key] is not None:
        return defaults, True
    return spec, False


def _device(
    r: Reader, name: str, spec: YMap, defaults: YMap, profiles: Sequence[str], base: Path
) -> Device:
    where = f"device {name!r}"
    host = r.get_str(spec, "host", f"{where}: host")
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise r.error(f"{where}: host must be a host name or address", spec.value_line("host"))
    src, _ = _pick(spec, defaults, "port")
    port = r.get_int(src, "port", f"{where}: port", 22, lo=1, hi=65535)
    values: dict[str, Any] = {}
    for key in ("user", "key", "known_hosts", "jump", "python"):
        src, given = _pick(spec, defaults, key)
        if given:
            values[key] = r.get_str(src, key, f"{where}: {key}")
    for key in ("key", "known_hosts"):
        if values.get(key):
            values[key] = _path_value(values[key], base)
    src, given = _pick(spec, defaults, "profile")
    profile = r.get_str(src, "profile", f"{where}: profile", "generic-linux") or "generic-linux"
    if profile not in profiles:
        hint = did_you_mean(profile, profiles) or f" (profiles: {', '.join(profiles)})"
        raise r.error(f"{where}: unknown profile {profile!r}{hint}", src.value_line("profile"))
    tags: list[str] = []
    for m in (defaults, spec):
        for tag, line in r.get_str_list(m, "tags", f"{where}: tags"):
            if not DEVICE_NAME_RE.fullmatch(tag):
                raise r.error(f"{where}: tag {tag!r} is not valid", line)
            if tag not in tags:
                tags.append(tag)
    src, _ = _pick(spec, defaults, "trust_on_first_use")
    tofu = r.get_bool(src, "trust_on_first_use", f"{where}: trust_on_first_use", False)
    return Device(
        name=name,
        host=host,
        port=port,
        profile=profile,
        tags=tuple(tags),
        trust_on_first_use=tofu,
        **values,
    )


def _check_tags(r: Reader, devices_map: YMap, devices: Sequence[Device]) -> None:
    names = {d.name for d in devices}
    for d in devices:
        for tag in d.tags:
            if tag in names:
                raise r.error(
                    f"device {d.name!r}: tag {tag!r} is also a device name; "
                    "rename one so `devices: [...]` is not ambiguous",
                    devices_map.key_line(d.name),
                )


def _check_jumps(r: Reader, devices_map: YMap, devices: Sequence[Device]) -> None:
    """A jump through inventory devices must not lead back to where it started."""
    jumps = {d.name: d.jump for d in devices if d.jump}
    for d in devices:
        chain, at = [d.name], jumps.get(d.name)
        while at in jumps or at == d.name:
            chain.append(at)
            if at in chain[:-1]:
                raise r.error(f"device {d.name!r}: jump hosts form a loop ({' -> '.join(chain)})",
                              devices_map.key_line(d.name))
            at = jumps.get(at)


def resolve_devices(
    inventory: Inventory, wanted: Sequence[tuple[str, int]], r: Reader, where: str
) -> tuple[str, ...]:
    """Device names for a group's ``devices: [NAME or TAG, ...]`` (each with its line)."""
    names = [d.name for d in inventory.devices]
    tags = sorted({t for d in inventory.devices for t in d.tags})
    out: list[str] = []
    for item, line in wanted:
        if item in names:
            picked = [item]
        elif item in tags:
            picked = [d.name for d in inventory.devices if item in d.tags]
        else:
            raise r.error(
                f"{where}: unknown device or tag {item!r}{did_you_mean(item, names + tags)} "
                f"in {inventory.path.name}",
                line,
            )
        for name in picked:
            if name not in out:
                out.append(name)
    return tuple(out)


__all__ = ["load_inventory", "load_inventory_text", "resolve_devices", "profile_names", "kind"]
