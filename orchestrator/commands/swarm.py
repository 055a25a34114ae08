"""`meshbed swarm init|leave|status`: a single-node Docker Swarm for trying `backend: swarm`."""

from __future__ import annotations

import argparse

from orchestrator.errors import MeshbedError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["init", "leave", "status"])
    p.add_argument("--advertise-addr", default="127.0.0.1", help="address of this host in the swarm")


def main(args: argparse.Namespace) -> int:
    from orchestrator.backends.swarm import cluster

    try:
        if args.action == "init":
            made = cluster.init(args.advertise_addr)
            print("swarm initialised (single node)" if made else "already part of a swarm")
        elif args.action == "leave":
            left = cluster.leave()
            print("left the swarm; meshbed services, networks and secrets removed" if left else "not in a swarm")
        else:
            cl = cluster.client()
            state, manager = cluster.swarm_state(cl)
            print(f"swarm: {state}{' (manager)' if manager else ''}")
            if state == "active" and manager:
                for n in cl.nodes.list():
                    a = n.attrs
                    print(f"  {a['Description']['Hostname']} {a['Status']['State']} {a['Status'].get('Addr')} "
                          f"{a['Description']['Platform']['Architecture']}")
    except Exception as exc:  # noqa: BLE001 - docker SDK errors
        raise MeshbedError(f"swarm {args.action}: {exc}") from exc
    return 0
