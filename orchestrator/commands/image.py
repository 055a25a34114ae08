"""`meshbed image build [--offline] [--base IMAGE] [--tag T] [--debootstrap]`: build the peer
container image (the repo's Dockerfile + peer.pyz). `meshbed up` does this by itself when the
image for the current agent is missing; this command is for doing it ahead of time."""

from __future__ import annotations

import argparse
import time

from orchestrator.errors import BackendUnavailable, InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="image_command", metavar="ACTION")
    build = sub.add_parser("build", help="build the peer image", description=__doc__)
    build.add_argument("--offline", action="store_true",
                       help="no registry: make the base image from this host's Python "
                            "(meshbed/base:offline) and build on it")
    build.add_argument("--base", metavar="IMAGE",
                       help="base image with python3 (default python:3.12-slim when it can be "
                            "pulled or is present, else the offline base)")
    build.add_argument("--tag", metavar="T", help="image tag (default meshbed/peer:<hash>)")
    build.add_argument("--debootstrap", action="store_true",
                       help="with --offline: make the base with debootstrap (needs a Debian "
                            "mirror; slower) instead of copying the host's Python")
    build.add_argument("--rebuild-base", action="store_true",
                       help="with --offline: make the offline base again even if present")
    build.add_argument("--client", action="append", metavar="KIND", default=[],
                       help="also build the image of this real client (docs/clients.md), always "
                            "offline from this host's packages; `all`: every client installed "
                            "here; repeatable")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "image_command", None) != "build":
        raise InputError("usage: meshbed image build [--offline] [--base IMAGE] [--tag T]")
    from orchestrator import pyz
    from orchestrator.backends.docker import DockerBackend, client
    from orchestrator.dockerlib import images

    reason = DockerBackend.unavailable_reason()
    if reason:
        raise BackendUnavailable(f"backend docker: {reason}")
    t0 = time.monotonic()
    c = client()
    try:
        agent = pyz.ensure_pyz()
        base = args.base
        if args.offline and base is None:
            if args.rebuild_base or not images.image_exists(c, images.OFFLINE_BASE):
                if args.debootstrap:
                    images.build_debootstrap_base(c)
                else:
                    images.build_offline_base(c)
            base = images.OFFLINE_BASE
        elif args.debootstrap or args.rebuild_base:
            raise InputError("--debootstrap and --rebuild-base go with --offline")
        base = images.ensure_base(c, base, True if args.offline else None)
        tag = args.tag or images.peer_tag(c, agent, base)
        if images.image_exists(c, tag) and not args.tag:
            print(f"{tag} is up to date (agent {agent.name}, base {base})")
        else:
            images.build_peer_image(c, agent, base, tag)
        print(f"image {tag} ready in {time.monotonic() - t0:.1f} s")
        for kind, client_tag in build_client_images(c, client_kinds(args.client)).items():
            print(f"image {client_tag} ready ({kind})")
    finally:
        c.close()
    return 0


def client_kinds(asked: list[str]) -> list[str]:
    """`--client` values: kinds by name, or `all` for every client installed here."""
    from orchestrator import clients

    kinds: list[str] = []
    for value in asked:
        for kind in value.split(","):
            if kind == "all":
                kinds += [k for k in clients.ADAPTERS if clients.installed(k)]
            elif kind in clients.ADAPTERS:
                kinds.append(kind)
            else:
                raise InputError(f"--client {kind}: not a client (use one of "
                                 f"{', '.join(clients.ADAPTERS)} or all)")
    return sorted(set(kinds))


def build_client_images(docker: object, kinds: list[str]) -> dict[str, str]:
    """kind -> tag, each built when missing (the image of a client not on this host: exit 2)."""
    from orchestrator.clients import image

    for kind in kinds:
        problem = image.image_problem(kind)
        if problem:
            raise InputError(f"--client {kind}: {problem}")
    return image.ensure_client_images(docker, kinds)
