#!/usr/bin/python3
"""libtorrent's view of torrents, for fxtor's interop tests.

Run with Debian's /usr/bin/python3 (python3-libtorrent). Every session this script makes stays
on 127.0.0.1 with DHT, LSD, UPnP and NAT-PMP off.

  lt.py create PATH OUT --mode v1|v2|hybrid [--piece-length N] [--tracker URL]...
  lt.py info TORRENT            -> JSON: libtorrent's reading of the file
  lt.py check TORRENT SAVE_PATH -> JSON: whether libtorrent's own check finds every piece
  lt.py seed TORRENT SAVE_PATH [--upload-limit BYTES_PER_S] [--tracker URL]... [--ip IP]
        -> announces to the torrent's trackers and those given, checks the data, prints {"port": N, ...} on one line once it seeds, then seeds
           until killed
  lt.py download TORRENT SAVE_PATH --peer IP:PORT [--peer IP:PORT]...
        -> downloads from those peers only, re-checks the data when finished, prints JSON
           and exits 0 if every piece is there (1 otherwise, or after --timeout seconds)

Sessions that transfer use TCP only (no uTP) and an IP filter that lets in 127.0.0.0/8 only.
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
    if args.canonical:
        flags |= lt.create_torrent.canonical_files
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


def transfer_session(ip="127.0.0.1"):
    """A session for transfers: on `ip` (127.0.0.1 unless told), TCP only, nothing but
    loopback peers. Its outgoing connections (to trackers too) leave from `ip`."""
    ses = lt.session({
        "listen_interfaces": ip + ":0",
        "outgoing_interfaces": ip,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "enable_outgoing_tcp": True, "enable_incoming_tcp": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    ses.set_ip_filter(f)
    return ses


def add(ses, torrent, save_path, flags_on=0):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags |= flags_on
    return ses.add_torrent(atp)


def wait_checked(ses, h, deadline):
    """Waits for the torrent to leave the checking states; False on error or timeout."""
    while time.time() < deadline:
        s = h.status()
        if s.errc.value() != 0:
            return False
        if s.state not in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data) \
                and s.has_metadata:
            return True
        ses.wait_for_alert(200)
        ses.pop_alerts()
    return False


def seed(args):
    ses = transfer_session(args.ip)
    h = add(ses, args.torrent, args.save_path)
    for tier, url in enumerate(args.tracker or []):
        h.add_tracker({"url": url, "tier": tier})
    if args.upload_limit:
        # The torrent's own limit: the session's global one does not reach loopback peers
        # (they are in the local peer class), and limiting that class throttles far below
        # the figure asked for.
        h.set_upload_limit(args.upload_limit)
    if not wait_checked(ses, h, time.time() + 300):
        sys.exit("seed: the check did not finish")
    s = h.status()
    print(json.dumps({"port": ses.listen_port(), "ip": args.ip, "state": str(s.state), "progress": s.progress}),
          flush=True)
    while True:
        ses.wait_for_alert(1000)
        ses.pop_alerts()


def download(args):
    ses = transfer_session()
    h = add(ses, args.torrent, args.save_path)
    deadline = time.time() + args.timeout
    wait_checked(ses, h, deadline)
    peers = [(p.rsplit(":", 1)[0].strip("[]"), int(p.rsplit(":", 1)[1])) for p in args.peer]
    connected_at = 0
    while time.time() < deadline:
        s = h.status()
        if s.errc.value() != 0:
            break
        if s.is_seeding or s.is_finished:
            break
        if time.time() - connected_at > 5:
            for peer in peers:
                h.connect_peer(peer)
            connected_at = time.time()
        ses.wait_for_alert(200)
        ses.pop_alerts()
    finished = h.status().is_seeding
    downloaded = h.status().total_payload_download
    # Its own check of what it wrote.
    checked = False
    if finished:
        h.force_recheck()
        time.sleep(0.2)
        checked = wait_checked(ses, h, deadline + 120)
    s = h.status()
    result = {
        "finished": finished,
        "check_passed": checked and s.num_pieces == h.torrent_file().num_pieces(),
        "num_pieces": s.num_pieces,
        "total_pieces": h.torrent_file().num_pieces(),
        "downloaded": downloaded,
        "error": s.errc.message() if s.errc.value() != 0 else None,
    }
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["finished"] and result["check_passed"] else 1)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("path")
    c.add_argument("out")
    c.add_argument("--mode", choices=["v1", "v2", "hybrid"], default="hybrid")
    c.add_argument("--piece-length", type=int, default=0)
    c.add_argument("--tracker", action="append")
    c.add_argument("--canonical", action="store_true",
                   help="v1: order and pad files as a v2 torrent would (pad files)")
    i = sub.add_parser("info")
    i.add_argument("torrent")
    k = sub.add_parser("check")
    k.add_argument("torrent")
    k.add_argument("save_path")
    s = sub.add_parser("seed")
    s.add_argument("torrent")
    s.add_argument("save_path")
    s.add_argument("--upload-limit", type=int, default=0)
    s.add_argument("--tracker", action="append")
    s.add_argument("--ip", default="127.0.0.1")
    d = sub.add_parser("download")
    d.add_argument("torrent")
    d.add_argument("save_path")
    d.add_argument("--peer", action="append", required=True)
    d.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    {"create": create, "info": info, "check": check, "seed": seed, "download": download}[args.cmd](args)


if __name__ == "__main__":
    main()
