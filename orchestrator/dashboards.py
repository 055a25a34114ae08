"""Grafana dashboards as code. `python -m orchestrator.dashboards` rewrites grafana/dashboards/*.json
(the generated files are committed; a test checks they are up to date and runs every query
against a real Prometheus)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "meshbed-prometheus"}
SEL = 'mesh=~"$mesh",group=~"$group"'
RATE = "$__rate_interval"


def _variables(extra_backend: bool = False) -> dict[str, Any]:
    def var(name: str, query: str, label: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": query, "refId": f"var-{name}"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": "All", "value": "$__all"},
        }

    items = [
        var("mesh", "label_values(meshbed_agent_info, mesh)", "Mesh"),
        var("group", 'label_values(meshbed_agent_info{mesh=~"$mesh"}, group)', "Group"),
    ]
    if extra_backend:
        items.append(var("backend", 'label_values(meshbed_agent_info{mesh=~"$mesh"}, backend)', "Backend"))
    return {"list": items}


class _Builder:
    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._y = 0
        self._x = 0

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        kind: str = "timeseries",
        unit: str = "short",
        width: int = 12,
        height: int = 8,
        description: str = "",
        options: dict[str, Any] | None = None,
    ) -> None:
        if self._x + width > 24:
            self._x = 0
            self._y += height
        pid = len(self.panels) + 1
        self.panels.append(
            {
                "id": pid,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"x": self._x, "y": self._y, "w": width, "h": height},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": options or {},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DATASOURCE,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self._x += width


def _dashboard(uid: str, title: str, panels: list[dict[str, Any]], backend_var: bool = False) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["meshbed"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": _variables(backend_var),
        "annotations": {"list": []},
        "panels": panels,
    }


def swarm_overview() -> dict[str, Any]:
    b = _Builder()
    b.panel(
        "Completion per node",
        [(f"meshbed_completion_ratio{{{SEL}}}", "{{node}} {{content}}")],
        unit="percentunit",
        width=24,
        description="Share of the content's chunks each node holds (verified).",
    )
    b.panel(
        "Swarm completion per content",
        [(f"avg by (content) (meshbed_completion_ratio{{{SEL}}})", "{{content}}")],
        unit="percentunit",
    )
    b.panel(
        "Nodes complete",
        [(f"count by (content) (meshbed_completion_ratio{{{SEL}}} >= 1)", "{{content}}")],
        kind="stat",
    )
    b.panel(
        "Chunk replication (chunks by copies seen, mean over nodes)",
        [(f"avg by (copies) (meshbed_piece_replication{{{SEL}}})", "{{copies}} copies")],
        kind="timeseries",
        description="How many chunks have k copies among the peers a node sees.",
    )
    b.panel(
        "Copies of the rarest chunk",
        [(f"min by (content) (meshbed_rarest_piece_copies{{{SEL}}})", "{{content}}")],
    )
    b.panel(
        "Upload by group",
        [(f"sum by (group) (rate(meshbed_bytes_sent_total{{{SEL}}}[{RATE}]))", "{{group}}")],
        unit="Bps",
    )
    b.panel(
        "Download by group",
        [(f"sum by (group) (rate(meshbed_bytes_received_total{{{SEL}}}[{RATE}]))", "{{group}}")],
        unit="Bps",
    )
    b.panel(
        "Connected peers per node",
        [(f"sum by (node) (meshbed_connected_peers{{{SEL}}})", "{{node}}")],
    )
    b.panel(
        "Rejected chunks by reason",
        [(f"sum by (reason) (increase(meshbed_rejected_pieces_total{{{SEL}}}[5m]))", "{{reason}}")],
    )
    b.panel(
        "Chunk fetch duration (p50 / p90 / p99)",
        [
            (
                f"histogram_quantile({q}, sum by (le) (rate(meshbed_piece_fetch_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        unit="s",
    )
    b.panel(
        "Chunks held / total",
        [
            (f"sum by (content) (meshbed_pieces_held{{{SEL}}})", "held {{content}}"),
            (f"sum by (content) (meshbed_content_pieces{{{SEL}}})", "total {{content}}"),
        ],
    )
    b.panel(
        "Completion time per node (since the first completion)",
        [
            (
                f"meshbed_completion_timestamp_seconds{{{SEL}}} > 0",
                "{{node}} {{content}}",
            )
        ],
        kind="table",
        unit="dateTimeAsIso",
        width=24,
    )
    b.panel(
        "Upload utilisation (swarm upload / upload capacity of the nodes up)",
        [(
            f"sum by (mesh) (rate(meshbed_bytes_sent_total{{{SEL}}}[{RATE}])) * 8"
            f" / sum by (mesh) (meshbed_link_upload_bits_per_second{{{SEL}}}"
            ' * on (mesh, node) up{job="meshbed"})',
            "{{mesh}}",
        )],
        unit="percentunit",
        width=24,
        description="1 = every node that is up uploads at its link's cap (the fluid model's assumption). "
                    "Capacity comes from the results exporter (`meshbed monitor up`); uncapped uploads "
                    "have none. The report's distribution.CONTENT.utilisation is the same per second.",
    )
    # `engine`: the host/engine running the node where a backend spans several (swarm)
    b.panel(
        "Download by engine",
        [(f"sum by (engine) (rate(meshbed_bytes_received_total{{{SEL}}}[{RATE}]))", "{{engine}}")],
        unit="Bps",
    )
    b.panel(
        "Completion by engine",
        [(f"avg by (engine, content) (meshbed_completion_ratio{{{SEL}}})", "{{engine}} {{content}}")],
        unit="percentunit",
    )
    # where the upload time goes (issue 12): each node's use of its link, and what the
    # swarm's upload carried
    b.panel(
        "Upload used / capacity per node",
        [(
            f"sum by (mesh, node) (rate(meshbed_bytes_sent_total{{{SEL}}}[{RATE}])) * 8"
            f" / on (mesh, node) group_left() meshbed_link_upload_bits_per_second{{{SEL}}}",
            "{{node}}",
        )],
        unit="percentunit",
        description="1 = the node uploads at its link's cap. Idle upload shows here first.",
    )
    sent = f"sum by (mesh) (rate(meshbed_bytes_sent_total{{{SEL}}}[{RATE}]))"
    first = f"sum by (mesh) (rate(meshbed_first_copy_bytes_total{{{SEL}}}[{RATE}]))"
    waste = f"sum by (mesh) (rate(meshbed_wasted_bytes_total{{{SEL}}}[{RATE}]))"
    b.panel(
        "What the upload carried: first copies, further copies, waste",
        [(first, "first copies {{mesh}}"),
         (f"clamp_min({sent} - {first} - {waste}, 0)", "further copies {{mesh}}"),
         (waste, "waste {{mesh}}")],
        unit="Bps",
        description="First copies: pieces none of the uploader's peers held. Waste: bytes their "
                    "receivers dropped (end-game copies that lost the race). The report's "
                    "distribution.CONTENT.carried is the same per second, over upload capacity.",
    )
    return _dashboard("meshbed-swarm", "meshbed / swarm overview", b.panels)


def scalability() -> dict[str, Any]:
    b = _Builder()
    sel = 'mesh=~"$mesh"'
    b.panel(
        "Distribution time vs nodes (per run)",
        [
            (f"meshbed_run_distribution_seconds{{{sel}}}", "{{strategy}} n={{nodes}} {{mesh}}/{{content}}"),
            (f"meshbed_run_lower_bound_seconds{{{sel}}}", "bound n={{nodes}} {{mesh}}/{{content}}"),
        ],
        kind="barchart",
        unit="s",
        width=24,
        description="Exported by `meshbed monitor` from the reports of finished runs.",
    )
    b.panel(
        "Efficiency (lower bound / measured)",
        [(f"meshbed_run_efficiency{{{sel}}}", "{{strategy}} n={{nodes}} {{mesh}}/{{content}}")],
        kind="bargauge",
        unit="percentunit",
    )
    b.panel(
        "Client-server bound vs measured",
        [
            (f"meshbed_run_client_server_bound_seconds{{{sel}}}", "client-server n={{nodes}} {{mesh}}"),
            (f"meshbed_run_distribution_seconds{{{sel}}}", "measured n={{nodes}} {{mesh}}"),
        ],
        kind="barchart",
        unit="s",
    )
    b.panel(
        "Live: nodes complete vs nodes in the mesh",
        [
            (f"count by (mesh) (meshbed_completion_ratio{{{SEL}}} >= 1)", "complete {{mesh}}"),
            ('count by (mesh) (meshbed_agent_info{mesh=~"$mesh",group=~"$group"})', "nodes {{mesh}}"),
        ],
        width=24,
    )
    return _dashboard("meshbed-scalability", "meshbed / scalability", b.panels)


def devices() -> dict[str, Any]:
    b = _Builder()
    sel = 'mesh=~"$mesh",group=~"$group",backend=~"$backend"'
    b.panel(
        "Agent CPU per node",
        [(f'rate(process_cpu_seconds_total{{job="meshbed",{sel}}}[{RATE}])', "{{node}}")],
        unit="percentunit",
    )
    b.panel(
        "Agent RSS per node",
        [(f'process_resident_memory_bytes{{job="meshbed",{sel}}}', "{{node}}")],
        unit="bytes",
    )
    b.panel(
        "Protocol errors by node and reason",
        [(f"sum by (node, reason) (increase(meshbed_protocol_errors_total{{{sel}}}[5m]))", "{{node}} {{reason}}")],
    )
    b.panel(
        "Banned peers",
        [(f"sum by (node) (meshbed_banned_peers_total{{{sel}}})", "{{node}}")],
    )
    b.panel(
        "Agents up",
        [(f'up{{job="meshbed",{sel}}}', "{{node}}")],
        kind="stat",
        width=12,
    )
    b.panel(
        "Open file descriptors",
        [(f'process_open_fds{{job="meshbed",{sel}}}', "{{node}}")],
    )
    return _dashboard("meshbed-devices", "meshbed / devices", b.panels, backend_var=True)


DASHBOARDS = {
    "swarm-overview.json": swarm_overview,
    "scalability.json": scalability,
    "devices.json": devices,
}


def render_all() -> dict[str, str]:
    return {name: json.dumps(fn(), indent=2, sort_keys=True) + "\n" for name, fn in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    out = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
