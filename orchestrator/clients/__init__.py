"""Real BitTorrent clients as mesh nodes (`client:` in a group; docs/clients.md).

A client node runs the real client (libtorrent, qBittorrent, Transmission, aria2, Deluge)
beside a small translator (``orchestrator.clients.node``) that speaks the agent's control
API and exports the same ``meshbed_`` metrics, so the engine, the report and the dashboards treat it
like an agent. Backends that shape in the kernel declare the `client` group option
(``client_option()``) and start ``node_command(...)`` instead of the agent.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Callable, Optional

from orchestrator.clients.aria2 import Aria2Client
from orchestrator.clients.base import ClientAdapter
from orchestrator.clients.deluge import DelugeClient
from orchestrator.clients.libtorrent_session import LibtorrentClient
from orchestrator.clients.qbittorrent import QbittorrentClient
from orchestrator.clients.transmission import TransmissionClient

if TYPE_CHECKING:  # the translator runs this package inside client images: no yaml there
    from orchestrator.options import GroupInput, GroupOption

MESHBED = "meshbed"  # the default: the meshbed agent itself
ADAPTERS: dict[str, type[ClientAdapter]] = {
    c.name: c for c in (LibtorrentClient, QbittorrentClient, TransmissionClient, Aria2Client,
                        DelugeClient)
}
NAMES = (MESHBED, *ADAPTERS)


def adapter_class(name: str) -> type[ClientAdapter]:
    return ADAPTERS[name]


@functools.cache
def installed(name: str) -> bool:
    return name == MESHBED or ADAPTERS[name].installed()


def parse_client(g: GroupInput, check: Optional[Callable[[str], Optional[str]]] = None,
                 on_host: bool = True) -> str:
    """The group's client; ``check(kind)`` -> why the backend cannot run it here, or None.
    ``on_host``: the client runs on this host (ssh: on devices, checked over ssh instead)."""
    from orchestrator.fields import did_you_mean

    value = g.reader.get_str(g.spec, "client", f"{g.where}: client") or MESHBED
    line = g.spec.value_line("client")
    if value not in NAMES:
        raise g.error(f"{g.where}: unknown client {value!r}{did_you_mean(value, NAMES)} "
                      f"(use one of {', '.join(NAMES)})", line)
    if on_host and not installed(value):
        cls = ADAPTERS[value]
        raise g.error(f"{g.where}: client {value} is not installed on this host "
                      f"(apt-get install {cls.package})", line)
    problem = check(value) if check is not None and value != MESHBED else None
    if problem:
        raise g.error(f"{g.where}: {problem}", line)
    return value


def client_option(check: Optional[Callable[[str], Optional[str]]] = None,
                  on_host: bool = True) -> GroupOption:
    """The `client` group option; ``check``: the backend's own test of a client kind (docker:
    can its image be built from this host's files)."""
    from orchestrator.options import GroupOption

    return GroupOption(
        "client", "the BitTorrent client on this group's nodes: " + ", ".join(NAMES)
        + f" (default {MESHBED})", functools.partial(parse_client, check=check, on_host=on_host),
        default=MESHBED)


def client_of(options: dict[str, object]) -> str:
    """A node's (or group's) client from its options."""
    value = options.get("client")
    return value if isinstance(value, str) else MESHBED


def node_command(client: str, agent_args: list[str], python: Optional[str] = None) -> list[str]:
    """The command of a client node: the translator, given the agent's `run` arguments."""
    return [python or sys.executable, "-m", "orchestrator.clients.node", client, *agent_args]


def accepts_peers(client: str) -> bool:
    return client == MESHBED or ADAPTERS[client].accepts_peers
