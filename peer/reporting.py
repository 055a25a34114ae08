"""What a torrent reports: the control API's status and the metrics snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peer.metrics import ContentSnapshot, copies_bucket

if TYPE_CHECKING:
    from peer.torrent import Torrent


def torrent_status(t: Torrent) -> dict[str, Any]:
    meta, core = t.meta, t.core
    complete = core.complete
    return {
        "name": meta.name,
        "size": meta.total_size,
        "piece_length": meta.piece_length,
        "pieces": meta.num_pieces,
        "have": core.picker.have_count,
        "complete": complete,
        "verified": t.verified,
        "sha256": t.sha256,
        "seeding": complete and core.upload,
        "upload": core.upload,
        "started_at": t.started_at,
        "completed_at": t.completed_at,
        "seconds": t.seconds,
        "downloaded": core.downloaded,
        "uploaded": core.uploaded,
        "redownloaded": core.redownloaded,
        "wasted": core.wasted,
        "wasted_from": dict(core.wasted_from),
        "uploaded_first": core.uploaded_first,
        "resumed_pieces": t.resumed_pieces,
        "bytes_from": dict(core.bytes_from),
        "bytes_to": dict(core.bytes_to),
        "rejected": dict(core.rejected),
        "requests_rejected": core.requests_rejected,
        "piece_cache": {"hits": t.cache.hits, "misses": t.cache.misses},
        "peers": len(core.peers),
        "known": {src: sum(1 for kp in core.known.values() if kp.source == src)
                  for src in ("given", "pex", "incoming")},
        "rarest_copies": core.rarest_copies(),
        "rate_up": round(core.rate_up.rate, 1),
        "rate_down": round(core.rate_down.rate, 1),
        "tracker": _tracker_status(t),
    }


def _tracker_status(t: Torrent) -> Any:
    ann = t.announcer
    if ann is None:
        return None
    last = ann.last
    return {
        "announces": ann.announces, "errors": dict(ann.errors),
        "last": None if last is None else {
            "interval": last.interval, "peers": len(last.peers), "seeders": last.seeders,
            "leechers": last.leechers, "warning": last.warning},
    }


def torrent_snapshot(t: Torrent) -> ContentSnapshot:
    core = t.core
    replication: dict[str, int] = {}
    for n in core.picker.replication():
        b = copies_bucket(n)
        replication[b] = replication.get(b, 0) + 1
    return ContentSnapshot(
        content=t.meta.name, bytes_sent=core.uploaded, bytes_received=core.downloaded,
        pieces_held=core.picker.have_count, pieces_total=t.meta.num_pieces,
        connected_peers=len(core.peers), rarest_copies=core.rarest_copies(),
        completed_at=t.completed_at, replication=replication, wasted=core.wasted,
        requests_rejected=core.requests_rejected, first_copies=core.uploaded_first,
    )
