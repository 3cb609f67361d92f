#!/usr/bin/python3
"""How soon a seed serves: `xus seed` from its Git object database against
libtorrent seeding the same files, in the same run.

  benches/seed_start.py [--size-mib 1024] [--files 8] [--commits 1000] [--runs 3]
                        [--xus target/release/xus] [--xus-before PATH]

Measures, from process start to the line that says it serves:
  * one commit of --size-mib MiB in --files files (its torrent already cached,
    as on every start but the first): `xus seed` until `listening`; libtorrent
    until every piece is checked (its default), and with seed_mode (it trusts
    the files and hashes each piece on first upload, as xus now does);
  * --commits commits, one per branch, `xus seed --all-branches` (the path a
    topic master takes for every head it serves);
  * with --xus-before, the same with an older xus binary, for a before/after
    figure from one run.
Then one fetch from the started seed proves it really serves. Everything stays
on 127.0.0.1, off the DHT. Needs git and python3-libtorrent (Debian packages).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from throughput import git, make_repo, wait_line  # noqa: E402

LT_PEER = os.path.join(HERE, "..", "tests", "drivers", "lt_peer.py")


def time_xus_seed(xus, repo, extra=()):
    """Seconds from spawn to `listening`, and the process (still running)."""
    start = time.monotonic()
    seeder = subprocess.Popen([xus, "seed", "--repo", repo, "--listen", "127.0.0.1:0", "--no-dht", *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = wait_line(seeder, r"^listening (\S+)", timeout=3600).group(1)
    return time.monotonic() - start, seeder, addr


def stop(proc):
    proc.kill()
    proc.wait()


def time_lt_seed(torrent, seed_dir, seed_mode):
    args = ["/usr/bin/python3", LT_PEER, "seed", "--save", seed_dir, "--torrent", torrent, "--timeout", "3600"]
    if seed_mode:
        args.append("--seed-mode")
    start = time.monotonic()
    seeder = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_line(seeder, r"^seeding ", timeout=3600)
        return time.monotonic() - start
    finally:
        stop(seeder)


def python_start():
    """What starting the libtorrent driver costs before it does anything."""
    start = time.monotonic()
    subprocess.run(["/usr/bin/python3", "-c", "import libtorrent"], check=True)
    return time.monotonic() - start


def many_commits(work, count):
    """A repository with `count` branches, each one small commit apart."""
    repo = os.path.join(work, "many")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    stream = []
    for i in range(count):
        data = f"commit {i}\n".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"committer bench <bench@xus.invalid> %d +0000\n" % (1700000000 + i))
        stream.append(b"data 2\nc\n")
        stream.append(b"M 100644 inline file%d\n" % (i % 50))
        stream.append(b"data %d\n%s\n" % (len(data), data))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
    revs = git(repo, "rev-list", "--reverse", "main").split()
    lines = "".join(f"create refs/heads/b{i:05} {rev}\n" for i, rev in enumerate(revs))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    return repo


def fetch_once(xus, addr, torrent, work):
    dst = os.path.join(work, "fetched")
    subprocess.run([xus, "fetch", torrent, "--repo", dst, "--bare", "--peer", addr],
                   capture_output=True, text=True, check=True)
    shutil.rmtree(dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--xus", default=os.path.join(HERE, "..", "target", "release", "xus"))
    ap.add_argument("--xus-before")
    args = ap.parse_args()
    binaries = [("xus", os.path.abspath(args.xus))]
    if args.xus_before:
        binaries.append(("xus before", os.path.abspath(args.xus_before)))
    work = tempfile.mkdtemp(prefix="xus-seed-start-")
    try:
        print(f"making a {args.size_mib} MiB commit in {args.files} files ...", flush=True)
        src, commit = make_repo(work, args.size_mib, args.files)
        torrent = os.path.join(work, "c.torrent")
        subprocess.run([binaries[0][1], "torrent", "HEAD", "--repo", src, "-o", torrent],
                       capture_output=True, check=True)
        seed_dir = os.path.join(work, "seed")
        os.makedirs(os.path.join(seed_dir, commit))
        subprocess.run(f"git archive HEAD | tar -x -C {seed_dir}/{commit}", shell=True, cwd=src, check=True)
        print(f"making {args.commits} commits, one per branch ...", flush=True)
        many = many_commits(work, args.commits)
        # The first start builds and caches every torrent; time the starts after it.
        _, first, _ = time_xus_seed(binaries[0][1], many, ["--all-branches"])
        stop(first)

        rows = {}
        for run in range(args.runs):
            for name, xus in binaries:
                elapsed, seeder, addr = time_xus_seed(xus, src)
                if run == 0:
                    fetch_once(xus, addr, torrent, work)
                stop(seeder)
                rows.setdefault(f"{name} seed, 1 commit", []).append(elapsed)
                elapsed, seeder, _ = time_xus_seed(xus, many, ["--all-branches"])
                stop(seeder)
                rows.setdefault(f"{name} seed, {args.commits} commits", []).append(elapsed)
            rows.setdefault("libtorrent, full check", []).append(time_lt_seed(torrent, seed_dir, False))
            rows.setdefault("libtorrent, seed_mode", []).append(time_lt_seed(torrent, seed_dir, True))
        print(f"\nready to serve, medians of {args.runs} (process start to the line saying it serves):")
        print(f"  ({args.size_mib} MiB in {args.files} files; libtorrent rows include "
              f"{python_start():.2f} s of starting Python)")
        for name, times in rows.items():
            print(f"  {name:32} {statistics.median(times):8.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
