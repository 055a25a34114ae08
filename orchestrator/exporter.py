"""A small exporter of finished runs (`python -m orchestrator.exporter --port 9109 --dir DIR`):
every report JSON in DIR becomes gauges, so Grafana can chart distribution time against the
number of nodes and efficiency against the lower bound across runs."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.capacity import CapacityCollector

LABELS = ["mesh", "content", "strategy", "nodes", "backend"]
KEEP_LAST = 200  # newest reports exported; bounds the series count


class ResultsCollector(Collector):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _reports(self) -> list[dict[str, Any]]:
        files = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime)[-KEEP_LAST:]
        out = []
        for f in files:
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fams = {
            "seconds": GaugeMetricFamily("meshbed_run_distribution_seconds", "Measured distribution time of a finished run", labels=LABELS),
            "lower_bound_seconds": GaugeMetricFamily("meshbed_run_lower_bound_seconds", "Fluid-model lower bound of the run", labels=LABELS),
            "client_server_bound_seconds": GaugeMetricFamily("meshbed_run_client_server_bound_seconds", "Time a central server would need", labels=LABELS),
            "efficiency": GaugeMetricFamily("meshbed_run_efficiency", "Lower bound divided by measured time", labels=LABELS),
        }
        latest: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        for rep in self._reports():
            nodes = len(rep.get("nodes") or {})
            strategy = str(rep.get("strategy", "swarm"))
            for content, dist in (rep.get("distribution") or {}).items():
                key = (str(rep.get("name")), str(content), strategy, str(nodes), str(rep.get("backend", "")))
                latest[key] = dist  # newest run of the same shape wins
        for shape, dist in latest.items():
            for field, fam in fams.items():
                value = dist.get(field)
                if isinstance(value, (int, float)):
                    fam.add_metric(list(shape), float(value))
        yield from fams.values()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="meshbed-results-exporter")
    p.add_argument("--port", type=int, default=9109)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dir", type=Path, required=True)
    args = p.parse_args(argv)
    registry = CollectorRegistry()
    registry.register(ResultsCollector(args.dir))
    registry.register(CapacityCollector(args.dir.parent))  # results/ lives in $MESHBED_HOME
    start_http_server(args.port, addr=args.host, registry=registry)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main())
