"""Contents: make the torrent locally, have the seeders share it, check they agree.

Synthetic content is deterministic (``peer.synthetic``): the orchestrator generates it once
into ``$MESHBED_HOME/cache/`` and hashes it there; every seeder generates the very same
bytes itself (POST /share {"synthetic": ...}), so nothing is copied. The infohash each
seeder returns must equal the local one. Real files are copied with ``backend.put_file``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from orchestrator.errors import DeployError, InputError
from orchestrator.model import Content, Topology
from orchestrator.peerclient import PeerError
from peer import metainfo, synthetic
from peer.metadata import make_magnet

if TYPE_CHECKING:
    from orchestrator.mesh import Mesh


@dataclass(frozen=True)
class SeededContent:
    name: str
    infohash: str
    metainfo: str  # base64 .torrent
    size: int
    chunks: int
    piece_length: int
    sha256: str
    seed: int
    synthetic: bool
    path: Optional[str] = None
    tracker: Optional[str] = None  # announce URL the metainfo carries (`tracker:`)
    # `magnet: "@NAME"`: fetchers get this magnet link (BEP 9) instead of the metainfo;
    # everything else is NAME's (same infohash, bytes and sha256)
    magnet: Optional[str] = None

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, name: str, data: dict[str, Any]) -> SeededContent:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["name"] = name
        return cls(**fields)

    def with_tracker(self, url: str) -> SeededContent:
        """The same content, its metainfo announcing to ``url`` (same infohash: outside info)."""
        meta = metainfo.parse(base64.b64decode(self.metainfo))
        meta = replace(meta, trackers=((url,),))
        return replace(self, tracker=url,
                       metainfo=base64.b64encode(meta.to_torrent_bytes()).decode(),
                       magnet=self.magnet_link((url,)) if self.magnet else None)

    def as_magnet(self, name: str) -> SeededContent:
        """Content ``name`` fetched by this content's magnet link."""
        return replace(self, name=name, magnet=self.magnet_link((self.tracker,) if self.tracker else ()))

    def magnet_link(self, trackers: tuple[str, ...] = ()) -> str:
        # dn: the torrent's name (the seeded content's), which the info dict carries anyway
        meta = metainfo.parse(base64.b64decode(self.metainfo))
        return make_magnet(bytes.fromhex(self.infohash), name=meta.name, trackers=trackers)

    def share_body(self, rel: Optional[str] = None) -> dict[str, Any]:
        body: dict[str, Any] = {"piece_length": self.piece_length}
        if self.tracker:
            body["trackers"] = [[self.tracker]]
        if self.synthetic:
            body["synthetic"] = {"name": self.name, "size": self.size, "seed": self.seed}
        else:
            body["file"] = rel
        return body

    async def reshare_if_missing(self, mesh: Mesh, node: str) -> None:
        """After a restart: a seeder that did not pick its torrent up from disk shares again."""
        if self.magnet or mesh.topology is None \
                or node not in mesh.topology.content(self.name).seeders:
            return  # a magnet content: its seeders reshare the content it names
        status = await mesh.client(node).status()
        if self.infohash in status.get("torrents", {}):
            return
        await _share_on(mesh, node, self)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return h.hexdigest()
            h.update(block)


def _prepare_sync(topology: Topology, content: Content, cache: Path) -> SeededContent:
    if content.synthetic:
        assert content.size is not None
        # The file is named like the content: the torrent's name is part of the infohash.
        path = cache / "synthetic" / f"{topology.seed}-{content.size}" / content.name
        if path.exists() and path.stat().st_size == content.size:
            sha = _sha256_file(path)
        else:
            sha = synthetic.write_file(path, topology.seed, content.name, content.size)
    else:
        assert content.path is not None
        path = content.path
        if not path.is_file():
            raise InputError(f"content {content.name}: no such file {path}", topology.source)
        sha = _sha256_file(path)
    meta = metainfo.create(path, piece_length=content.chunk_size, hybrid=False)
    return SeededContent(
        name=content.name,
        infohash=meta.hexhash,
        metainfo=base64.b64encode(meta.to_torrent_bytes()).decode(),
        size=meta.length,
        chunks=meta.num_pieces,
        piece_length=meta.piece_length,
        sha256=sha,
        seed=topology.seed,
        synthetic=content.synthetic,
        path=None if content.synthetic else str(path),
    )


async def prepare_content(topology: Topology, content: Content, cache: Path) -> SeededContent:
    return await asyncio.to_thread(_prepare_sync, topology, content, cache)


async def _share_on(mesh: Mesh, node: str, seeded: SeededContent) -> None:
    rel: Optional[str] = None
    if not seeded.synthetic:
        assert seeded.path is not None
        rel = await mesh.backend_of(node).put_file(mesh.node(node), Path(seeded.path), Path(seeded.path).name)
    try:
        answer = await mesh.client(node).share(seeded.share_body(rel))
    except PeerError as exc:
        raise DeployError(f"{node}: sharing {seeded.name} failed: {exc}") from None
    if answer.get("infohash") != seeded.infohash:
        raise DeployError(
            f"{node}: sharing {seeded.name} gave infohash {answer.get('infohash')}, "
            f"the orchestrator made {seeded.infohash} (same bytes and piece length expected)"
        )


async def seed_content(mesh: Mesh, content: Content, seeded: SeededContent) -> None:
    """Every seeder shares the content; the state records it for status/watch."""
    if content.magnet_of is None:  # a magnet content's seeders share the content it names
        await asyncio.gather(*(_share_on(mesh, n, seeded) for n in content.seeders))
    assert mesh.state is not None
    mesh.state.data["contents"][content.name] = seeded.to_state()
    mesh.state.save()
