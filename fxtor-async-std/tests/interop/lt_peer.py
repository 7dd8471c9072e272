#!/usr/bin/python3
"""libtorrent as the other peer of fxtor-async-std's interop tests.

Run with Debian's /usr/bin/python3 (python3-libtorrent). The session listens on 127.0.0.1
only, with DHT, local peer discovery, UPnP and NAT-PMP off, and every wait is bounded.

  lt_peer.py seed TORRENT DIR
      checks DIR's data, prints {"port": N} once it seeds, and serves until its standard
      input closes (or the time limit passes)
  lt_peer.py download TORRENT DIR --peer IP:PORT
      downloads from that peer into DIR and prints {"complete": bool, ...}; exit status 0
      only if every piece arrived and passed libtorrent's check
"""
import argparse
import json
import sys
import threading
import time

import libtorrent as lt

LIMIT_SECONDS = 240


def start_session():
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    })


def add(ses, torrent, directory):
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = directory
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(params)


def wait_until(ses, done):
    """Pumps alerts until done() or the time limit; whether done() became true."""
    deadline = time.monotonic() + LIMIT_SECONDS
    while time.monotonic() < deadline:
        if done():
            return True
        ses.wait_for_alert(200)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.torrent_error_alert):
                print(alert.message(), file=sys.stderr)
    return done()


def seed(args):
    ses = start_session()
    handle = add(ses, args.torrent, args.dir)
    if not wait_until(ses, lambda: handle.status().is_seeding):
        print(json.dumps({"error": "the data did not check out", "progress": handle.status().progress}))
        return 1
    print(json.dumps({"port": ses.listen_port()}), flush=True)
    # Serve until the test closes our standard input, bounded by the time limit.
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    wait_until(ses, closed.is_set)
    return 0


def download(args):
    ses = start_session()
    handle = add(ses, args.torrent, args.dir)
    host, port = args.peer.rsplit(":", 1)
    handle.connect_peer((host, int(port)))
    complete = wait_until(ses, lambda: handle.status().is_seeding)
    status = handle.status()
    print(json.dumps({
        "complete": complete,
        "progress": status.progress,
        "pieces": status.num_pieces,
        "downloaded": status.total_payload_download,
    }))
    return 0 if complete else 1


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("seed", "download"):
        command = commands.add_parser(name)
        command.add_argument("torrent")
        command.add_argument("dir")
        if name == "download":
            command.add_argument("--peer", required=True)
    args = parser.parse_args()
    return {"seed": seed, "download": download}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
