"""Upload capacity of the meshes that are up, as Prometheus gauges for the results exporter:
``meshbed_link_upload_bits_per_second{mesh,node,group}`` from each mesh's state (the access
link's `up` as last applied). Grafana divides the swarm's upload rate by it: the upload
utilisation over time (the report's ``distribution.CONTENT.utilisation``, live). Uncapped
uploads have no finite capacity and get no series."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STATE_FILE = "state.json"


class CapacityCollector(Collector):
    def __init__(self, home: Path) -> None:
        self.home = home

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily("meshbed_link_upload_bits_per_second",
                                "Upload cap of a node's access link (meshes that are up)",
                                labels=["mesh", "node", "group"])
        for state_file in sorted(self.home.glob(f"*/{STATE_FILE}")):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue  # a mesh being written or removed right now
            mesh = str(state.get("mesh") or state_file.parent.name)
            nodes = state.get("nodes") or {}
            for node, link in (state.get("links") or {}).items():
                up = (link or {}).get("up_bps")
                if isinstance(up, (int, float)) and node in nodes:
                    fam.add_metric([mesh, node, str(nodes[node].get("group", ""))], float(up))
        yield fam
