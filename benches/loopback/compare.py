#!/usr/bin/python3
"""Loopback transfer comparison: fxtor against libtorrent, in one run on one machine.

A libtorrent seeder serves a torrent of random data over TCP on 127.0.0.1. Then, one after
the other, `fxtor download` (fxtor-tokio), fxtor-async-std's `download` example (the same
flags; under async-std's executor, and under smol's with --smol) and a libtorrent leecher
fetch it from that same seeder; finally `fxtor seed` serves it to `fxtor download` (no
libtorrent in the way). For each: wall time, throughput and CPU seconds of the downloading
process, and the ratios between them. With --rounds N the downloads from libtorrent run N
times, in turn, so that a busy moment of the machine does not fall on one of them only,
and the ratios are those of the medians.

  cargo build --release -p fxtor-tokio -p fxtor-async-std --examples
  /usr/bin/python3 benches/loopback/compare.py [--size-mib 1024] [--rounds 1] [--smol]
      [--fxtor target/release/fxtor] [--async-std target/release/examples/download]

Run with Debian's python3 (python3-libtorrent). Only 127.0.0.1 is used.
"""
import argparse
import json
import os
import resource
import statistics
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


def report(results, name, size, wall, cpu):
    """Keeps a measurement and prints its row at once (a later failure loses nothing)."""
    results.setdefault(name, []).append((wall, cpu))
    print(f"| {name} | {wall:.2f} | {size / wall / 1e6:.0f} | {cpu:.2f} | {cpu / (size / (1 << 30)):.2f} |",
          flush=True)


def timed_download(program, torrent, out, peer, env=None):
    """Runs a download program that takes the flags of `fxtor download`."""
    before = children_cpu()
    start = time.monotonic()
    with tempfile.TemporaryFile() as log:
        subprocess.run(program + [torrent, "-o", out, "--listen", "127.0.0.1:0", "--peer", peer],
                       check=True, stdout=log, stderr=log, env=env, timeout=600)
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
    p.add_argument("--async-std", default="target/release/examples/download",
                   help="fxtor-async-std's download example")
    p.add_argument("--smol", action="store_true", help="also run the example under smol")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--piece-length", type=int, default=1 << 20)
    args = p.parse_args()
    fxtor = os.path.abspath(args.fxtor)
    # Loopback only: no DHT, so fxtor never reaches the public routers.
    os.environ["FXTOR_NO_DHT"] = "1"
    downloaders = {
        "fxtor-tokio": ([fxtor, "download"], None),
        "fxtor-async-std": ([os.path.abspath(args.async_std)], dict(os.environ, FXTOR_EXECUTOR="async-std")),
    }
    if args.smol:
        downloaders["fxtor-async-std (smol)"] = ([os.path.abspath(args.async_std)],
                                                 dict(os.environ, FXTOR_EXECUTOR="smol"))
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

        print(f"{args.size_mib} MiB v1 torrent, {args.piece_length >> 10} KiB pieces, TCP on 127.0.0.1, "
              f"{args.rounds} round(s)")
        print("| downloader <- seeder | wall s | MB/s | CPU s | CPU s per GiB |")
        print("|---|---|---|---|---|", flush=True)
        results = {}
        for _ in range(args.rounds):
            for name, (program, env) in downloaders.items():
                out = os.path.join(tmp, "from-lt")
                report(results, name + " <- libtorrent", size,
                       *timed_download(program, torrent, out, lt_peer, env))
                subprocess.run(["rm", "-rf", out])
            out = os.path.join(tmp, "from-lt")
            report(results, "libtorrent <- libtorrent", size, *timed_lt_download(torrent, out, lt_peer))
            subprocess.run(["rm", "-rf", out])
        del h, ses

        seeder = subprocess.Popen([fxtor, "seed", torrent, src, "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = seeder.stdout.readline()
        fx_peer = line.strip().rsplit(" ", 1)[-1]
        # A peer that connects while the seeder still checks its data is turned away, and
        # `fxtor download` does not call a given peer again: wait for the check.
        while not line.startswith("checked:"):
            line = seeder.stdout.readline()
            if not line:
                sys.exit("fxtor seed ended before its check did")
        out = os.path.join(tmp, "fxtor-from-fxtor")
        report(results, "fxtor-tokio <- fxtor-tokio", size,
               *timed_download([fxtor, "download"], torrent, out, fx_peer))
        seeder.kill()
        seeder.wait()

    def median(name):
        """The median wall time and CPU seconds of a downloader (robust to one busy moment)."""
        runs = results[name + " <- libtorrent"]
        return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)

    print(f"ratios of the medians over {args.rounds} round(s):")
    tokio = median("fxtor-tokio")
    for name in downloaders:
        if name == "fxtor-tokio":
            continue
        other = median(name)
        print(f"{name} / fxtor-tokio from the same seeder: throughput {tokio[0] / other[0]:.2f}, "
              f"CPU {other[1] / tokio[1]:.2f}")
    ltr = median("libtorrent")
    print(f"fxtor-tokio / libtorrent from the same seeder: throughput {ltr[0] / tokio[0]:.2f}, "
          f"CPU {tokio[1] / ltr[1]:.2f}")

if __name__ == "__main__":
    sys.exit(main())
