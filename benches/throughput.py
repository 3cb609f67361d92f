#!/usr/bin/python3
"""Loopback throughput of one commit: xus -> xus against libtorrent -> libtorrent
and aria2 -> aria2, on the same data, in the same run. Prints MiB/s and ratios.

  benches/throughput.py [--size-mib 1024] [--files 8] [--runs 1] [--xus target/release/xus]

Everything stays on 127.0.0.1 (no DHT, no LSD; aria2 finds its peer through a
loopback opentracker, because aria2c cannot be given a peer address).
Needs: git, python3-libtorrent, aria2, opentracker (Debian packages).
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@x.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@x.invalid",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


def wait_line(proc, pattern, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before printing {pattern!r}")
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError(f"timed out waiting for {pattern!r}")


def make_repo(work, size_mib, files):
    src = os.path.join(work, "src")
    os.makedirs(src)
    git(src, "init", "-q", "-b", "main")
    per_file = size_mib * 1024 * 1024 // files
    for i in range(files):
        with open(os.path.join(src, f"data{i:02}.bin"), "wb") as f:
            left = per_file
            while left:
                chunk = min(left, 16 << 20)
                f.write(os.urandom(chunk))
                left -= chunk
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "bench data")
    return src, git(src, "rev-parse", "HEAD")


def run_xus(xus, src, torrent, work, run):
    seeder = subprocess.Popen([xus, "seed", "--repo", src, "--listen", "127.0.0.1:0", "--no-dht"],
                              stdout=subprocess.PIPE, text=True)
    try:
        addr = wait_line(seeder, r"^listening (\S+)").group(1)
        dst = os.path.join(work, f"dst-xus-{run}")
        start = time.monotonic()
        out = subprocess.run([xus, "fetch", torrent, "--repo", dst, "--bare", "--peer", addr],
                             capture_output=True, text=True, check=True)
        total = time.monotonic() - start
        m = re.search(r"timing: download ([\d.]+) s, import into Git ([\d.]+) s", out.stderr)
        shutil.rmtree(dst)
        return float(m.group(1)), total
    finally:
        seeder.kill()
        seeder.wait()


def run_libtorrent(torrent, seed_dir, work, run):
    driver = os.path.join(HERE, "..", "tests", "drivers", "lt_peer.py")
    seeder = subprocess.Popen(["/usr/bin/python3", driver, "seed", "--save", seed_dir, "--torrent", torrent,
                               "--timeout", "3600"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = wait_line(seeder, r"^listening (\d+)").group(1)
        wait_line(seeder, r"^seeding ")
        dst = os.path.join(work, f"dst-lt-{run}")
        os.makedirs(dst)
        start = time.monotonic()
        subprocess.run(["/usr/bin/python3", driver, "download", "--save", dst, "--torrent", torrent,
                        "--peer", f"127.0.0.1:{port}", "--timeout", "900"],
                       capture_output=True, text=True, check=True)
        elapsed = time.monotonic() - start
        shutil.rmtree(dst)
        return elapsed
    finally:
        seeder.kill()
        seeder.wait()


ARIA_COMMON = ["--interface=127.0.0.1", "--disable-ipv6=true", "--enable-dht=false",
               "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
               "--bt-exclude-tracker=*", "--console-log-level=warn", "--summary-interval=0",
               "--file-allocation=none", "--bt-max-peers=0"]


def run_aria2(torrent, info_hash, seed_dir, work, run):
    tracker_port = free_port()
    whitelist = os.path.join(work, "whitelist")
    with open(whitelist, "w") as f:
        f.write(info_hash + "\n")
    tracker = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(tracker_port),
                                "-P", str(tracker_port), "-w", whitelist],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    announce = f"--bt-tracker=http://127.0.0.1:{tracker_port}/announce"
    seeder = subprocess.Popen(["aria2c", *ARIA_COMMON, announce, f"--dir={seed_dir}",
                               "--check-integrity=false", "--bt-seed-unverified=true",
                               "--seed-ratio=0.0", f"--listen-port={free_port()}", torrent],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        dst = os.path.join(work, f"dst-aria-{run}")
        start = time.monotonic()
        subprocess.run(["aria2c", *ARIA_COMMON, announce, f"--dir={dst}", "--seed-time=0",
                        f"--listen-port={free_port()}", torrent],
                       check=True, capture_output=True, timeout=900)
        elapsed = time.monotonic() - start
        shutil.rmtree(dst)
        return elapsed
    finally:
        for p in (seeder, tracker):
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--xus", default=os.path.join(HERE, "..", "target", "release", "xus"))
    ap.add_argument("--skip-aria2", action="store_true")
    args = ap.parse_args()
    xus = os.path.abspath(args.xus)
    work = tempfile.mkdtemp(prefix="xus-bench-")
    os.chmod(work, 0o755)  # opentracker drops to user nobody and must read the whitelist
    try:
        print(f"making a {args.size_mib} MiB commit in {args.files} files ...", flush=True)
        src, commit = make_repo(work, args.size_mib, args.files)
        torrent = os.path.join(work, "c.torrent")
        t0 = time.monotonic()
        out = subprocess.run([xus, "torrent", "HEAD", "--repo", src, "-o", torrent],
                             capture_output=True, text=True, check=True).stdout
        build = time.monotonic() - t0
        info_hash = re.search(r"infohash (\w+)", out).group(1)
        seed_dir = os.path.join(work, "seed")
        os.makedirs(os.path.join(seed_dir, commit))
        subprocess.run(f"git archive HEAD | tar -x -C {seed_dir}/{commit}", shell=True, cwd=src, check=True)

        mib = args.size_mib
        rows = {"xus->xus transfer": [], "xus->xus incl. import": [], "libtorrent->libtorrent": [],
                "aria2->aria2": []}
        for run in range(args.runs):
            transfer, total = run_xus(xus, src, torrent, work, run)
            rows["xus->xus transfer"].append(transfer)
            rows["xus->xus incl. import"].append(total)
            rows["libtorrent->libtorrent"].append(run_libtorrent(torrent, seed_dir, work, run))
            if not args.skip_aria2:
                rows["aria2->aria2"].append(run_aria2(torrent, info_hash, seed_dir, work, run))
        print(f"\ncommit {commit}, {mib} MiB, torrent built in {build:.2f} s "
              f"({mib / build:.0f} MiB/s), {args.runs} run(s), medians:")
        lt = statistics.median(rows["libtorrent->libtorrent"])
        for name, times in rows.items():
            if not times:
                continue
            t = statistics.median(times)
            print(f"  {name:24} {t:8.2f} s {mib / t:8.1f} MiB/s   x{lt / t:.2f} of libtorrent")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
