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
  lt.py magnet LINK SAVE_PATH --peer IP:PORT [--peer IP:PORT]...
        -> as download, from a magnet link: the metadata (and a v2 torrent's piece layers)
           come from those peers too
  lt.py pair TORRENT SEED_PATH PEER_PATH [--download-limit BYTES_PER_S]
        -> two sessions: A seeds from SEED_PATH (peer exchange off for it); B downloads into
           PEER_PATH (slowly, so it stays a downloader) and dials A. Prints {"seed": "IP:PORT", "peer": "IP:PORT"} on
           one line once B is connected to A, then runs until killed. Peer exchange is on
           (libtorrent's default): B tells its other peers about A.
  lt.py join TORRENT SAVE_PATH --peer IP:PORT [--download-limit BYTES_PER_S] [--expect IP:PORT]
        -> downloads slowly from that peer, printing {"port": N} once connected to it. With
           --expect, exits 0 with JSON once it is connected to the expected address, learnt
           by peer exchange (1 after --timeout seconds); without, runs until killed.

Sessions that transfer use TCP only (no uTP) and an IP filter that lets in 127.0.0.0/8 only.
"""
import argparse
import json
import warnings
import os
import sys
import time

import libtorrent as lt

# `session.status()` is deprecated but is the simplest count of DHT nodes there is.
warnings.filterwarnings("ignore", category=DeprecationWarning)


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
        for a in next_alerts(ses, 500):
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


def next_alerts(ses, timeout_ms):
    """The session's alerts, waiting up to `timeout_ms` for one. Not `wait_for_alert`: the
    alert it returns points into a queue that libtorrent's own thread may grow, moving it,
    before the binding reads it (a segfault in the binding was seen here that way);
    `pop_alerts` takes the queue away from that thread first."""
    deadline = time.time() + timeout_ms / 1000
    while True:
        alerts = ses.pop_alerts()
        if alerts or time.time() >= deadline:
            return alerts
        time.sleep(0.02)


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
        next_alerts(ses, 200)
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
        next_alerts(ses, 1000)


def download(args):
    ses = transfer_session()
    h = add(ses, args.torrent, args.save_path)
    deadline = time.time() + args.timeout
    wait_checked(ses, h, deadline)
    fetch(ses, h, args.peer, deadline)


def magnet(args):
    ses = transfer_session()
    atp = lt.parse_magnet_uri(args.link)
    atp.save_path = args.save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)
    fetch(ses, h, args.peer, time.time() + args.timeout)


def fetch(ses, h, peer_args, deadline):
    """Downloads from the peers `peer_args` (IP:PORT) only, re-checks, prints JSON, exits."""
    peers = [(p.rsplit(":", 1)[0].strip("[]"), int(p.rsplit(":", 1)[1])) for p in peer_args]
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
        next_alerts(ses, 200)
    s = h.status()
    finished = s.has_metadata and s.is_seeding
    downloaded = s.total_payload_download
    # Its own check of what it wrote.
    checked = False
    if finished:
        h.force_recheck()
        time.sleep(0.2)
        checked = wait_checked(ses, h, deadline + 120)
    s = h.status()
    ti = h.torrent_file()
    total = ti.num_pieces() if ti is not None else None
    result = {
        "has_metadata": s.has_metadata,
        "finished": finished,
        "check_passed": checked and s.num_pieces == total,
        "num_pieces": s.num_pieces,
        "total_pieces": total,
        "downloaded": downloaded,
        "error": s.errc.message() if s.errc.value() != 0 else None,
    }
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["finished"] and result["check_passed"] else 1)


def pair(args):
    a = transfer_session()
    # A takes no peers from peer exchange: it only seeds to those that dial it, so a third
    # peer's connection to A is the one that peer opened.
    ha = add(a, args.torrent, args.seed_path, lt.torrent_flags.disable_pex)
    deadline = time.time() + 300
    if not wait_checked(a, ha, deadline) or not ha.status().is_seeding:
        sys.exit("pair: A does not seed")
    b = transfer_session()
    hb = add(b, args.torrent, args.peer_path)
    hb.set_download_limit(args.download_limit)
    wait_checked(b, hb, deadline)
    for ses in (a, b):
        ses.apply_settings({
            # Every peer here is on 127.0.0.1: without this, a second one is taken for a
            # duplicate of the first and disconnected.
            "allow_multiple_connections_per_ip": True,
            # Connections and disconnections go to stderr, for a failing test to show.
            "alert_mask": lt.alert.category_t.status_notification
            | lt.alert.category_t.error_notification
            | lt.alert.category_t.peer_notification,
        })
    seed = ("127.0.0.1", a.listen_port())
    announced = False
    dialled_at = 0
    while True:
        if not any(p.ip == seed for p in hb.get_peer_info()):
            if time.time() - dialled_at > 5:
                hb.connect_peer(seed)
                dialled_at = time.time()
        elif not announced:
            print(json.dumps({"seed": "127.0.0.1:%d" % a.listen_port(),
                              "peer": "127.0.0.1:%d" % b.listen_port()}), flush=True)
            announced = True
        if not announced and time.time() > deadline:
            sys.exit("pair: B never connected to A")
        for name, ses in (("A", a), ("B", b)):
            for alert in next_alerts(ses, 100):
                if alert.what() in ("peer_connect", "peer_disconnected", "peer_error",
                                    "incoming_connection", "peer_blocked"):
                    print("%s: %s" % (name, alert.message()), file=sys.stderr, flush=True)


def join(args):
    ses = transfer_session()
    ses.apply_settings({"allow_multiple_connections_per_ip": True})
    h = add(ses, args.torrent, args.save_path)
    h.set_download_limit(args.download_limit)
    deadline = time.time() + args.timeout
    wait_checked(ses, h, deadline)
    ip, port = args.peer.rsplit(":", 1)
    peer = (ip, int(port))
    announced = False
    dialled_at = 0
    while True:
        infos = h.get_peer_info()
        connected = any(p.ip == peer for p in infos)
        if not connected and time.time() - dialled_at > 5:
            h.connect_peer(peer)
            dialled_at = time.time()
        if connected and not announced:
            print(json.dumps({"port": ses.listen_port()}), flush=True)
            announced = True
        for p in infos:
            if args.expect and "%s:%d" % p.ip == args.expect and p.source & lt.peer_info.pex:
                print(json.dumps({"learnt": args.expect, "source": int(p.source)}), flush=True)
                sys.exit(0)
        if (args.expect or not announced) and time.time() > deadline:
            print(json.dumps({"learnt": None, "peers": ["%s:%d" % p.ip for p in infos]}),
                  flush=True)
            sys.exit(1)
        next_alerts(ses, 200)


def dht_session(bootstrap):
    """A session on 127.0.0.1 whose DHT joins a private DHT through `bootstrap` (loopback
    "ip:port" strings only; none: it is the first node). The restrictions that assume one
    node per public IP are off (every node here shares 127.0.0.1), and so is the rate limit
    that would block a whole test network from one IP."""
    for node in bootstrap:
        assert node.startswith("127."), "DHT tests stay on loopback: " + node
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": True,
        "dht_bootstrap_nodes": ",".join(bootstrap),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1000000,
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "enable_outgoing_tcp": True, "enable_incoming_tcp": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
        | lt.alert.category_t.dht_notification | lt.alert.category_t.tracker_notification,
    })
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    ses.set_ip_filter(f)
    # Bootstrap nodes are "routers" to libtorrent, never in its routing table: with a
    # network this small, it must also know them as plain nodes (pinged, then added).
    for node in bootstrap:
        ip, port = node.rsplit(":", 1)
        ses.add_dht_node((ip, int(port)))
    return ses


def wait_dht(ses, deadline):
    """Waits until the DHT's routing table holds a node; False on timeout."""
    while time.time() < deadline:
        if ses.status().dht_nodes > 0:  # (deprecated, but the simplest count there is)
            return True
        next_alerts(ses, 200)
    return False


def dht_node(args):
    """A DHT node and nothing else: prints its port, then serves until killed."""
    ses = dht_session(args.bootstrap or [])
    print(json.dumps({"port": ses.listen_port()}), flush=True)
    while True:
        next_alerts(ses, 1000)


def dht_seed(args):
    """Joins the DHT, then seeds a torrent and announces it there; prints its port once the
    announce has had time to land, and announces again every 10 seconds."""
    ses = dht_session(args.bootstrap)
    if not wait_dht(ses, time.time() + 60):
        sys.exit("dht-seed: the DHT did not come up")
    h = add(ses, args.torrent, args.save_path)
    if not wait_checked(ses, h, time.time() + 300):
        sys.exit("dht-seed: the check did not finish")
    h.force_dht_announce()
    # The announce's lookup takes a few round trips on loopback (milliseconds).
    deadline = time.time() + 2
    while time.time() < deadline:
        next_alerts(ses, 200)
    print(json.dumps({"port": ses.listen_port(), "state": str(h.status().state)}), flush=True)
    announced_at = time.time()
    while True:
        next_alerts(ses, 1000)
        # Keep announcing: nodes that join later learn of us sooner.
        if time.time() - announced_at > 10:
            h.force_dht_announce()
            announced_at = time.time()


def dht_download(args):
    """Joins the DHT, adds a bare magnet link and downloads from the peers the DHT gives;
    checks what it wrote."""
    ses = dht_session(args.bootstrap)
    deadline = time.time() + args.timeout
    if not wait_dht(ses, deadline):
        sys.exit("dht-download: the DHT did not come up")
    atp = lt.parse_magnet_uri(args.magnet)
    atp.save_path = args.save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)
    announced_at = time.time()
    while time.time() < deadline:
        s = h.status()
        if s.errc.value() != 0 or s.is_seeding or s.is_finished:
            break
        if s.num_peers == 0 and time.time() - announced_at > 5:
            h.force_dht_announce()
            announced_at = time.time()
        next_alerts(ses, 200)
    finished = h.status().is_seeding
    checked = False
    if finished:
        h.force_recheck()
        time.sleep(0.2)
        checked = wait_checked(ses, h, deadline + 120)
    s = h.status()
    result = {
        "finished": finished,
        "check_passed": checked and h.torrent_file() is not None
        and s.num_pieces == h.torrent_file().num_pieces(),
        "downloaded": s.total_payload_download,
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
    m = sub.add_parser("magnet")
    m.add_argument("link")
    m.add_argument("save_path")
    m.add_argument("--peer", action="append", required=True)
    m.add_argument("--timeout", type=float, default=300)
    r = sub.add_parser("pair")
    r.add_argument("torrent")
    r.add_argument("seed_path")
    r.add_argument("peer_path")
    r.add_argument("--download-limit", type=int, default=16384)
    j = sub.add_parser("join")
    j.add_argument("torrent")
    j.add_argument("save_path")
    j.add_argument("--peer", required=True)
    j.add_argument("--download-limit", type=int, default=16384)
    j.add_argument("--expect")
    j.add_argument("--timeout", type=float, default=60)
    n = sub.add_parser("dht-node")
    n.add_argument("--bootstrap", action="append")
    ds = sub.add_parser("dht-seed")
    ds.add_argument("torrent")
    ds.add_argument("save_path")
    ds.add_argument("--bootstrap", action="append", required=True)
    dd = sub.add_parser("dht-download")
    dd.add_argument("magnet")
    dd.add_argument("save_path")
    dd.add_argument("--bootstrap", action="append", required=True)
    dd.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    {"create": create, "info": info, "check": check, "seed": seed, "download": download,
     "magnet": magnet, "pair": pair, "join": join,
     "dht-node": dht_node, "dht-seed": dht_seed, "dht-download": dht_download}[args.cmd](args)


if __name__ == "__main__":
    main()
