"""`meshbed monitor up|down|status|files`."""

from __future__ import annotations

import argparse

from orchestrator import monitor


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["up", "down", "status", "files"],
                   help="files: where the dashboards, provisioning and compose file are")
    p.add_argument("--port", type=int, default=monitor.PROMETHEUS_PORT, help="Prometheus port (127.0.0.1)")
    p.add_argument("--exporter-port", type=int, default=monitor.EXPORTER_PORT,
                   help="port of the results exporter (finished runs, link capacity) that Prometheus scrapes "
                   f"(default {monitor.EXPORTER_PORT})")
    p.add_argument("--no-grafana", action="store_true", help="do not try to start Grafana")
    p.add_argument("--purge", action="store_true", help="with down: also delete the stored samples")


def main(args: argparse.Namespace) -> int:
    if args.action == "up":
        monitor.up(args.port, args.exporter_port, grafana=not args.no_grafana)
    elif args.action == "down":
        monitor.down(purge=args.purge)
    elif args.action == "files":
        print(monitor.GRAFANA_DIR.resolve())
    else:
        state = monitor.load_state()
        if not state:
            print("monitoring is down")
        else:
            print(f"Prometheus: {state.get('prometheus_url')}")
            if state.get("grafana_url"):
                print(f"Grafana: {state['grafana_url']}")
            print(f"meshes scraped: {', '.join(monitor.meshes_with_targets()) or '(none)'}")
    return 0
