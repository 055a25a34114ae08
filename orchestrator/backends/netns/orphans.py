"""A netns mesh's kernel objects when no state names them: found by meshbed's names and
marks, removed by the backend's own teardown from a state rebuilt from them.

The mark: the bridge's alias (``ip link set dev BR alias``) holds ``meshbed:`` and the
mesh's state folder, so leftovers are told from a live mesh of another MESHBED_HOME by
whether that folder still holds state. Rules carry the comment ``meshbed:MESH``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any, Optional

from orchestrator.backends.netns import bridge, namespaces
from orchestrator.hostnet import iptables

MARK = "meshbed:"
ALIAS_MAX = 255  # IFALIASZ - 1
_NS = re.compile(r"^mb-([0-9a-f]{6})-\d+$")
_BRIDGE = re.compile(r"^mb-([0-9a-f]{6})$")
_VETH = re.compile(r"^mb([0-9a-f]{6})v\d+$")
_CHAIN = re.compile(r"^MBP-([0-9a-f]{6})(-\d+)?$")


def mark_bridge(name: str, state_dir: Path) -> None:
    """Write the state folder into the bridge's alias (skipped when it does not fit:
    the mesh name in its rules' comments still names it)."""
    text = MARK + str(state_dir)
    if len(text.encode()) <= ALIAS_MAX:
        subprocess.run(["ip", "link", "set", "dev", name, "alias", text],
                       capture_output=True, timeout=10)


def bridge_mark(name: str) -> Optional[Path]:
    try:
        text = Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
    except OSError:
        return None
    return Path(text[len(MARK):]) if text.startswith(MARK) and len(text) > len(MARK) else None


def _links() -> list[str]:
    try:
        return os.listdir("/sys/class/net")
    except OSError:
        return []


def _rule_spec(line: str) -> list[str]:
    """``-A FORWARD ...`` as iptables -S prints it -> the spec ``delete_rule`` takes."""
    return shlex.split(line)[1:]


def find() -> dict[str, dict[str, Any]]:
    """Tag -> what carries it: {"things", "rules", "state_dir", "mesh"}."""
    found: dict[str, dict[str, Any]] = {}

    def entry(tag: str) -> dict[str, Any]:
        return found.setdefault(tag, {"things": [], "rules": [], "state_dir": None, "mesh": None})

    for ns in sorted(namespaces.existing()):
        m = _NS.match(ns)
        if m:
            entry(m.group(1))["things"].append(f"namespace {ns}")
    for link in sorted(_links()):
        m = _BRIDGE.match(link)
        if m and os.path.isdir(f"/sys/class/net/{link}/bridge"):
            e = entry(m.group(1))
            e["things"].append(f"bridge {link}")
            mark = bridge_mark(link)
            if mark is not None:
                e["state_dir"] = str(mark)
                e["mesh"] = mark.name
        m = _VETH.match(link)
        if m:
            entry(m.group(1))["things"].append(f"veth {link}")
    for line in iptables.rules_mentioning([f"--comment {MARK}", f'--comment "{MARK}', "MBP-"],
                                          tables=("filter",)):
        if line.startswith("-N "):
            m = _CHAIN.match(line.split()[1])
            if m:
                entry(m.group(1))["things"].append(f"iptables chain {line.split()[1]}")
            continue
        spec = _rule_spec(line)
        dev = spec[spec.index("-i") + 1] if "-i" in spec else ""
        m = _BRIDGE.match(dev)
        if not m or spec[0] != "FORWARD":
            continue
        e = entry(m.group(1))
        e["things"].append("iptables rule " + " ".join(spec))
        e["rules"].append(spec)
        if e["mesh"] is None and "--comment" in spec:
            e["mesh"] = spec[spec.index("--comment") + 1][len(MARK):] or None
    return found


def state_for(tag: str, info: dict[str, Any]) -> dict[str, Any]:
    """The backend state its teardown needs to remove this tag's objects."""
    st: dict[str, Any] = {"tag": tag, "bridge": bridge.bridge_name(tag), "nodes": {},
                          "rules": info.get("rules", []), "chains": []}
    if info.get("state_dir"):
        st["data_root"] = str(Path(info["state_dir"]) / "netns")
    return st


async def delete_veths(tag: str) -> None:
    """Host-side veths of the tag still there (normally gone with their namespaces)."""
    await bridge.delete_links([n for n in _links() if (m := _VETH.match(n)) and m.group(1) == tag])

