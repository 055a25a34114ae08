"""`meshbed swarm init|leave|status`: a single-node Docker Swarm for trying `backend: swarm`;
`meshbed swarm lab up|down`: a manager and workers, each a real dockerd in its own network
namespace on this machine, to try what only several hosts show (overlay, placement, node loss)."""

from __future__ import annotations

import argparse
import re
import sys

from orchestrator.errors import InputError, MeshbedError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["init", "leave", "status", "lab"])
    p.add_argument("lab_action", nargs="?", choices=["up", "down", "status"],
                   help="with `lab`: up, down or status")
    p.add_argument("--advertise-addr", default="127.0.0.1", help="address of this host in the swarm")
    p.add_argument("--workers", type=int, default=2, help="lab: number of worker engines (default 2)")
    p.add_argument("--id", dest="lab_id", default=None, help="lab: its id (default: new one; down: every lab)")


def main(args: argparse.Namespace) -> int:
    from orchestrator.backends.swarm import cluster

    if args.action == "lab":
        return _lab(args)
    if args.lab_action is not None:
        raise InputError(f"swarm {args.action}: unexpected argument {args.lab_action!r}")
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
                    labels = ",".join(f"{k}={v}" for k, v in sorted((a["Spec"].get("Labels") or {}).items()))
                    print(f"  {a['Description']['Hostname']} {a['Status']['State']} {a['Status'].get('Addr')} "
                          f"{a['Description']['Platform']['Architecture']} {labels}")
    except Exception as exc:  # noqa: BLE001 - docker SDK errors
        raise MeshbedError(f"swarm {args.action}: {exc}") from exc
    return 0


def _lab(args: argparse.Namespace) -> int:
    from orchestrator.backends.swarm import lab

    action = args.lab_action or "status"
    if action == "up":
        if not 1 <= args.workers <= 8:
            raise InputError("swarm lab: --workers must be 1..8")
        if args.lab_id is not None and not re.fullmatch(r"[a-z0-9]{1,6}", args.lab_id):
            raise InputError(f"swarm lab: --id {args.lab_id!r} must be 1-6 of [a-z0-9] (it names interfaces)")
        try:
            made = lab.up(workers=args.workers, lab_id=args.lab_id, say=print)
        except lab.LabError as exc:
            raise MeshbedError(f"swarm lab up: {exc}") from exc
        print(f"lab {made.lab_id} is up; point meshbed (and docker) at its manager:")
        print(f"  export DOCKER_HOST={made.docker_host}")
        print(f"node labels: {lab.ROLE_LABEL}=manager|worker1..; `meshbed swarm lab down --id {made.lab_id}` removes it")
        return 0
    labs = [x for x in lab.find_labs() if args.lab_id in (None, x.lab_id)]
    if action == "status":
        if not labs:
            print("no swarm lab")
        for x in labs:
            print(f"lab {x.lab_id}: DOCKER_HOST={x.docker_host} bridge {x.bridge} {x.subnet}")
            for e in x.engines:
                print(f"  {e.role:8} {e.hostname:14} {e.ip:15} {e.docker_host}")
        return 0
    rc = 0
    for x in labs:
        left = lab.down(x, say=print)
        if left:
            print(f"lab {x.lab_id}: could not remove: {', '.join(left)}", file=sys.stderr)
            rc = 1
    if not labs:
        print("no swarm lab")
    return rc
