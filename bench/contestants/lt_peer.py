"""One libtorrent peer (seeder or leecher), run inside a namespace by the libtorrent
contestant: `python3 lt_peer.py --torrent T --save DIR --ip IP --done FILE [--seed]`.

Settings as a fair user would pick for a private LAN swarm: TCP only (uTP off, as for
every contestant), no DHT/LSD/UPnP/NAT-PMP, no rate limits; everything else default.
Writes the unix time to --done when the torrent is complete (every piece SHA-1 checked),
and the bytes it uploaded to --stats every second. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from typing import Any

import libtorrent as lt


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save", required=True)
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, default=6881)
    ap.add_argument("--done", required=True)
    ap.add_argument("--stats")
    ap.add_argument("--seed", action="store_true")
    ap.add_argument("--ready", help="leecher: written once the session is up (torrent paused)")
    ap.add_argument("--go", help="leecher: resume the torrent once this file exists, so "
                    "process start-up is not timed (the agents are up before a fetch too)")
    ap.add_argument("--timeline", help="append one JSON line per second (peers, rates, "
                    "progress, connected addresses): what a straggler waited for")
    ap.add_argument("--lifetime", type=float, default=3600.0,
                    help="exit after this many seconds even if nobody stops us")
    args = ap.parse_args()
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    settings: Any = {
        "listen_interfaces": f"{args.ip}:{args.port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    }
    if args.timeline:  # tracker replies, connects, disconnects and their reasons to the log
        c = lt.alert.category_t
        settings["alert_mask"] |= (c.tracker_notification | c.connect_notification
                                   | c.peer_notification)
    ses = lt.session(settings)
    info = lt.torrent_info(args.torrent)
    params: Any = {"ti": info, "save_path": args.save}
    if args.go:
        params["flags"] = lt.torrent_flags.paused
    handle = ses.add_torrent(params)
    if args.go:
        if args.ready:
            write_atomic(args.ready, f"{time.time():.6f}\n")
        deadline = time.monotonic() + args.lifetime
        while not os.path.exists(args.go) and not stop and time.monotonic() < deadline:
            time.sleep(0.01)
        handle.resume()
    done = False
    last_stats = last_line = 0.0
    end = time.monotonic() + args.lifetime
    while not stop and time.monotonic() < end:
        ses.wait_for_alert(200)
        for alert in ses.pop_alerts():
            if args.timeline:
                print(f"{time.time():.3f} {type(alert).__name__}: {alert.message()}", flush=True)
            if isinstance(alert, lt.torrent_finished_alert) and not done:
                done = True
                write_atomic(args.done, f"{time.time():.6f}\n")
        st = handle.status()
        if not done and st.is_seeding:
            done = True
            write_atomic(args.done, f"{time.time():.6f}\n")
        now = time.monotonic()
        if args.timeline and now - last_line >= 1.0:
            last_line = now
            peers = handle.get_peer_info()
            with open(args.timeline, "a") as f:
                f.write(json.dumps({
                    "t": round(time.time(), 3), "progress": round(st.progress, 4),
                    "down": st.download_payload_rate, "up": st.upload_payload_rate,
                    "peers": st.num_peers, "seeds": st.num_seeds,
                    "connect_candidates": st.connect_candidates,
                    "list_peers": st.list_peers,
                    "unchoked_us": sum(1 for p in peers if not p.flags & p.choked),
                    "interested_in": sum(1 for p in peers if p.flags & p.interesting),
                    "addrs": sorted(p.ip[0] for p in peers)}) + "\n")
        if args.stats and now - last_stats >= 1.0:
            last_stats = now
            write_atomic(args.stats, json.dumps({
                "uploaded": st.total_payload_upload, "downloaded": st.total_payload_download,
                "peers": st.num_peers}))
    ses.pause()


if __name__ == "__main__":
    main()
