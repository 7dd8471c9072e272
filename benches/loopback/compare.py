#!/usr/bin/python3
"""Loopback transfer comparison: fxtor against libtorrent, in one run on one machine.

A libtorrent seeder serves a torrent of random data over TCP on 127.0.0.1. Then, one after
the other, `fxtor download` and a libtorrent leecher fetch it from that same seeder; finally
`fxtor seed` serves it to `fxtor download` (no libtorrent in the way). For each: wall time,
throughput and CPU seconds of the downloading process.

  /usr/bin/python3 benches/loopback/compare.py [--size-mib 1024] [--fxtor target/release/fxtor]

Run with Debian's python3 (python3-libtorrent). Only 127.0.0.1 is used.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import libtorrent as lt

SETTINGS = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "alert_mask": 0,
    "allow_multiple_connections_per_ip": True,
}


def loopback_only(ses):
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    f.add_rule("127.0.0.0", "127.255.255.255", 0)
    ses.set_ip_filter(f)


def make_data(path, size):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            # Vary each MiB so no two pieces are equal.
            f.write(i.to_bytes(8, "little") + block[8:])


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_fxtor_download(fxtor, torrent, out, peer):
    before = children_cpu()
    start = time.monotonic()
    with tempfile.TemporaryFile() as log:
        subprocess.run([fxtor, "download", torrent, "-o", out, "--listen", "127.0.0.1:0", "--peer", peer],
                       check=True, stdout=log, stderr=log)
    return time.monotonic() - start, children_cpu() - before


LEECHER = r"""
import libtorrent as lt, os, sys, time, json
settings = json.loads(sys.argv[4])
ses = lt.session(settings)
atp = lt.add_torrent_params(); atp.ti = lt.torrent_info(sys.argv[1]); atp.save_path = sys.argv[2]
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
ip, port = sys.argv[3].rsplit(":", 1)
last = 0.0
while True:
    s = h.status()
    if s.is_seeding:
        break
    # A peer given before the torrent is ready can be dropped: ask again while unconnected.
    if s.num_peers == 0 and time.monotonic() - last > 0.5:
        h.connect_peer((ip, int(port)))
        last = time.monotonic()
    time.sleep(0.01)
"""


def timed_lt_download(torrent, out, peer):
    before = children_cpu()
    start = time.monotonic()
    subprocess.run(["/usr/bin/python3", "-c", LEECHER, torrent, out, peer, json.dumps(SETTINGS)], check=True)
    return time.monotonic() - start, children_cpu() - before


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--fxtor", default="target/release/fxtor")
    p.add_argument("--piece-length", type=int, default=1 << 20)
    args = p.parse_args()
    fxtor = os.path.abspath(args.fxtor)
    # Loopback only: no DHT, so fxtor never reaches the public routers.
    os.environ["FXTOR_NO_DHT"] = "1"
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        make_data(os.path.join(src, "data.bin"), size)
        torrent = os.path.join(tmp, "data.torrent")
        subprocess.run([fxtor, "create", os.path.join(src, "data.bin"), "-o", torrent, "--v1-only",
                        "--piece-length", str(args.piece_length)], check=True, stdout=subprocess.DEVNULL)

        ses = lt.session(SETTINGS)
        loopback_only(ses)
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = src
        h = ses.add_torrent(atp)
        while not h.status().is_seeding:
            time.sleep(0.05)
        lt_peer = "127.0.0.1:%d" % ses.listen_port()

        results = {}
        out = os.path.join(tmp, "fxtor-from-lt")
        results["fxtor <- libtorrent"] = timed_fxtor_download(fxtor, torrent, out, lt_peer)
        subprocess.run(["rm", "-rf", out])
        out = os.path.join(tmp, "lt-from-lt")
        results["libtorrent <- libtorrent"] = timed_lt_download(torrent, out, lt_peer)
        subprocess.run(["rm", "-rf", out])
        del h, ses

        seeder = subprocess.Popen([fxtor, "seed", torrent, src, "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = seeder.stdout.readline()
        fx_peer = line.strip().rsplit(" ", 1)[-1]
        time.sleep(0.5)
        out = os.path.join(tmp, "fxtor-from-fxtor")
        results["fxtor <- fxtor"] = timed_fxtor_download(fxtor, torrent, out, fx_peer)
        seeder.kill()
        seeder.wait()

    mib = size / (1 << 20)
    print(f"{args.size_mib} MiB v1 torrent, {args.piece_length >> 10} KiB pieces, TCP on 127.0.0.1")
    print("| downloader <- seeder | wall s | MB/s | CPU s | CPU s per GiB |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in results.items():
        print(f"| {name} | {wall:.2f} | {size / wall / 1e6:.0f} | {cpu:.2f} | {cpu / (mib / 1024):.2f} |")
    fx, ltr = results["fxtor <- libtorrent"], results["libtorrent <- libtorrent"]
    print(f"throughput ratio fxtor/libtorrent from the same seeder: {ltr[0] / fx[0]:.2f}; "
          f"CPU ratio: {fx[1] / ltr[1]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
