"""`meshbed down [NAME] [--all]`: remove everything a mesh created. Idempotent: a mesh that
is not there is not an error; works after a crash of the orchestrator (from state)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from orchestrator import state as statemod
from orchestrator.errors import InputError
from orchestrator.mesh import Mesh, StateUnreadable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="mesh name (needed when several are up)")
    parser.add_argument("--all", action="store_true", help="tear down every mesh")


def main(args: argparse.Namespace) -> int:
    home = statemod.home()
    existing = [p.name for p in statemod.mesh_dirs(home)]
    if args.name:
        if args.name not in existing:
            print(f"mesh {args.name} is not up (nothing to do)")
            return 0
        names = [args.name]
    elif args.all or len(existing) <= 1:
        names = existing
    else:
        raise InputError(f"several meshes are up ({', '.join(existing)}): name one or use --all")
    if not names:
        print(f"no mesh is up in {home} (nothing to do)")
        return 0
    unreadable = 0
    for name in names:
        try:
            mesh = Mesh.attach(name, say=print)
        except StateUnreadable as exc:  # say so, leave it, and go on with the others
            print(f"meshbed: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        asyncio.run(mesh.down())
    return 1 if unreadable else 0
