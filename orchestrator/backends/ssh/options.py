"""The ssh backend's group option: ``devices: [NAME or TAG, ...]`` from the inventory."""

from __future__ import annotations

from typing import Any

from orchestrator.clients import MESHBED, client_of, client_option
from orchestrator.options import GroupInput, GroupOption


def parse_devices(g: GroupInput) -> tuple[str, ...]:
    wanted = g.reader.get_str_list(g.spec, "devices", f"{g.where}: devices")
    if not wanted:
        raise g.error(f"{g.where}: devices is empty", g.spec.value_line("devices"))
    if g.inventory is None:
        raise g.error(
            f"{g.where} lists devices but the topology has no 'inventory:' file",
            g.spec.key_line("devices"),
        )
    from orchestrator.inventory import resolve_devices

    return resolve_devices(g.inventory, wanted, g.reader, g.where)


GROUP_OPTIONS = (
    GroupOption(
        "devices",
        "inventory devices or tags to run on, one node per device (picks this backend)",
        parse_devices,
        default=(),
        selects_backend=True,
    ),
    # real clients installed on the devices (orchestrator/backends/ssh/clients.py)
    client_option(on_host=False),
)


def plan_nodes(g: GroupInput, options: dict[str, Any]) -> list[dict[str, Any]]:
    """One node per device; ``count``, when given, must agree."""
    devices: tuple[str, ...] = options["devices"]
    if not devices:
        raise g.error(
            f"{g.where} runs on the ssh backend but lists no devices (add devices: [...])",
            g.spec.key_line("backend") if "backend" in g.spec else g.spec.line,
        )
    if "count" in g.spec:
        given = g.reader.get_int(g.spec, "count", f"{g.where}: count", len(devices), lo=0)
        if given != len(devices):
            raise g.error(
                f"{g.where}: count {given} does not match the {len(devices)} devices selected "
                f"({', '.join(devices)}); drop count or fix it",
                g.spec.value_line("count"),
            )
    client = client_of(options)
    if client == MESHBED:
        return [{"device": d} for d in devices]
    line = g.spec.value_line("client")  # errors found on the devices point at it
    return [{"device": d, "client": client, "client_line": line} for d in devices]


def device_of(node_options: dict[str, Any]) -> str:
    return str(node_options.get("device") or "")
