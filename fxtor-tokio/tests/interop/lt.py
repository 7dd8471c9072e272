#!/usr/bin/python3
"""libtorrent's view of torrents, for fxtor's interop tests.

Run with Debian's /usr/bin/python3 (python3-libtorrent). Every session this script makes stays
on 127.0.0.1 with DHT, LSD, UPnP and NAT-PMP off.

  lt.py create PATH OUT --mode v1|v2|hybrid [--piece-length N] [--tracker URL]...
  lt.py info TORRENT            -> JSON: libtorrent's reading of the file
  lt.py check TORRENT SAVE_PATH -> JSON: whether libtorrent's own check finds every piece
"""
import argparse
import json
import os
import sys
import time

import libtorrent as lt


def create(args):
    fs = lt.file_storage()
    lt.add_files(fs, args.path)
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[args.mode]
    ct = lt.create_torrent(fs, args.piece_length, flags=flags)
    for tier, url in enumerate(args.tracker or []):
        ct.add_tracker(url, tier)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(args.path)))
    with open(args.out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


def info(args):
    ti = lt.torrent_info(args.torrent)
    ih = ti.info_hashes()
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        files.append({
            "path": fs.file_path(i).replace(os.sep, "/"),
            "size": fs.file_size(i),
            "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
        })
    trackers = {}
    for t in ti.trackers():
        trackers.setdefault(t.tier, []).append(t.url)
    json.dump({
        "name": ti.name(),
        "info_hash_v1": str(ih.v1) if ih.has_v1() else None,
        "info_hash_v2": str(ih.v2) if ih.has_v2() else None,
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "total_size": ti.total_size(),
        "private": ti.priv(),
        "trackers": [trackers[k] for k in sorted(trackers)],
        "files": files,
    }, sys.stdout)


def check(args):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)
    deadline = time.time() + 300
    checked = False
    while not checked and time.time() < deadline:
        ses.wait_for_alert(500)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_checked_alert, lt.torrent_error_alert)):
                checked = True
    s = h.status()
    json.dump({
        "state": str(s.state),
        "progress": s.progress,
        "num_pieces": s.num_pieces,
        "total_pieces": atp.ti.num_pieces(),
        "error": s.errc.message() if s.errc.value() != 0 else None,
        "info_hash_v1": str(h.info_hashes().v1) if h.info_hashes().has_v1() else None,
        "info_hash_v2": str(h.info_hashes().v2) if h.info_hashes().has_v2() else None,
    }, sys.stdout)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("path")
    c.add_argument("out")
    c.add_argument("--mode", choices=["v1", "v2", "hybrid"], default="hybrid")
    c.add_argument("--piece-length", type=int, default=0)
    c.add_argument("--tracker", action="append")
    i = sub.add_parser("info")
    i.add_argument("torrent")
    k = sub.add_parser("check")
    k.add_argument("torrent")
    k.add_argument("save_path")
    args = p.parse_args()
    {"create": create, "info": info, "check": check}[args.cmd](args)


if __name__ == "__main__":
    main()
