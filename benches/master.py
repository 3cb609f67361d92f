#!/usr/bin/env python3
"""Topic master benchmarks on loopback (private DHT, nothing leaves 127.0.0.1).

1. Push latency: a writer holds a 10,000-file repository that the master
   already has; it changes one file and runs `xus push`. A follower
   (`xus follow --interval 1`) prints `updated`. Reported per run: push
   start to push exit, and push start to the follower's update. R runs.
2. Fan-out: a commit adding SIZE MiB is pushed; then 16 fresh peers (fresh
   home, empty repository) fetch `xus://TOPIC/main` at once. Reported: the
   master's upload bytes during the fan-out (from its `GET /status`) divided
   by the commit's size (every file of its tree: fresh peers need it all),
   and the wall-clock time.

Usage: cargo build --release && benches/master.py [--runs 10] [--peers 16] [--size-mib 64]
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_MS = 300


def env_for(home):
    env = dict(os.environ)
    env["XUS_HOME"] = home
    env["XUS_LOOPBACK_ONLY"] = "1"
    for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        env[k] = "bench"
    for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        env[k] = "bench@xus.invalid"
    return env


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True, env=env_for(repo)).stdout.strip()


class Lines:
    """A child's stdout lines, read on a thread."""

    def __init__(self, proc):
        self.lines = []
        self.times = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.times.append(time.time())
                self.cond.notify_all()

    def wait(self, pred, timeout, after=0):
        """(line, time) of the first line from index `after` matching."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.lines)):
                    if pred(self.lines[i]):
                        return self.lines[i], self.times[i]
                left = deadline - time.time()
                if left <= 0:
                    raise RuntimeError("timed out; lines so far: %r" % self.lines[-5:])
                self.cond.wait(left)

    def __len__(self):
        with self.cond:
            return len(self.lines)


def start(cmd, env, log=None):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=open(log, "w") if log else subprocess.DEVNULL,
                            text=True, env=env)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=30) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--xus", default=os.path.join(ROOT, "target/release/xus"))
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--peers", type=int, default=16)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--master-upload-kib", type=int, default=0,
                    help="cap on the master's upload ([limits] max_upload_kib); 0: none")
    args = ap.parse_args()
    if not os.path.exists(args.xus):
        sys.exit("%s is missing: run cargo build --release first" % args.xus)
    xus = args.xus
    work = tempfile.mkdtemp(prefix="xus-master-bench-")
    children = []
    try:
        dht = start([xus, "dht", "serve", "--bind", "127.0.0.1", "--nodes", str(args.nodes)],
                    env_for(os.path.join(work, "dht-home")))
        children.append(dht)
        dht_lines = Lines(dht)
        first = dht_lines.wait(lambda l: l.startswith("dht "), 120)[0].split()[1]
        flags = ["--bootstrap", first, "--dht-bind", "127.0.0.1", "--dht-timeout-ms", str(TIMEOUT_MS)]

        owner = os.path.join(work, "owner")
        subprocess.run([xus, "topic", "new", "bench"], env=env_for(owner), check=True, capture_output=True)
        topic = subprocess.run([xus, "topic", "list"], env=env_for(owner), check=True,
                               capture_output=True, text=True).stdout.split()[1]
        writer_home = os.path.join(work, "writer")
        key = subprocess.run([xus, "writer", "new"], env=env_for(writer_home), check=True,
                             capture_output=True, text=True).stdout.strip()
        http_port = free_port()
        config = os.path.join(work, "master.toml")
        with open(config, "w") as f:
            f.write("""data_dir = "data"
[listen]
bittorrent = "127.0.0.1:0"
http = "127.0.0.1:%d"
[dht]
bootstrap = ["%s"]
bind = "127.0.0.1"
request_timeout_ms = %d
[[topic]]
name = "bench"
secret_file = "%s"
writers = ["%s"]
backups = ["%s", "%s"]
""" % (http_port, first, TIMEOUT_MS, os.path.join(owner, "topics", "bench.secret"), key,
       os.path.join(work, "backup-a.git"), os.path.join(work, "backup-b.git")))
            if args.master_upload_kib:
                f.write("[limits]\nmax_upload_kib = %d\n" % args.master_upload_kib)
        master = start([xus, "master", "--config", config, "--init"], env_for(owner), log=os.path.join(work, "master.log"))
        children.append(master)
        Lines(master).wait(lambda l: l.startswith("master http "), 120)

        repo = os.path.join(work, "repo")
        os.makedirs(repo)
        git(repo, "init", "-q", "-b", "main")
        for i in range(args.files):
            d = os.path.join(repo, "d%03d" % (i // 100))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
                f.write("file %d\n" % i * 20)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "base")
        push = [xus, "push", "--master", "http://127.0.0.1:%d/" % http_port, "--branch", "main",
                "--listen", "127.0.0.1:0", "--repo", repo]
        t0 = time.time()
        subprocess.run(push, env=env_for(writer_home), check=True, capture_output=True)
        print("DHT: %d nodes, request timeout %d ms; repository of %d files; first push %.2f s"
              % (args.nodes, TIMEOUT_MS, args.files, time.time() - t0))

        follower_repo = os.path.join(work, "follower")
        follower = start([xus, "follow", "xus://%s/main" % topic, "--repo", follower_repo, "--interval", "1",
                          "--listen", "127.0.0.1:0", *flags], env_for(os.path.join(work, "follower-home")),
                         log=os.path.join(work, "follower.log"))
        children.append(follower)
        lines = Lines(follower)
        lines.wait(lambda l: l.startswith("updated "), 300)

        push_s, visible_s = [], []
        for run in range(args.runs):
            with open(os.path.join(repo, "d000", "f00000.txt"), "w") as f:
                f.write("changed in run %d\n" % run)
            git(repo, "commit", "-qam", "run %d" % run)
            commit = git(repo, "rev-parse", "HEAD")
            seen = len(lines)
            t0 = time.time()
            out = subprocess.run(push, env=env_for(writer_home), capture_output=True, text=True)
            t_push = time.time()
            if out.returncode != 0:
                raise RuntimeError("push failed: %s" % out.stderr)
            _, t_seen = lines.wait(lambda l: l.startswith("updated ") and commit in l, 300, after=seen)
            push_s.append(t_push - t0)
            visible_s.append(t_seen - t0)
        print("\n1-file change on a %d-file repository, %d runs (seconds):" % (args.files, args.runs))
        print("| step | p50 | min | max |")
        print("| --- | ---: | ---: | ---: |")
        for name, values in (("`xus push` start to exit (accepted: backed up, head published)", push_s),
                             ("`xus push` start to follower updated (polls every 1 s)", visible_s)):
            print("| %s | %.2f | %.2f | %.2f |" % (name, statistics.median(values), min(values), max(values)))

        # Fan-out: SIZE MiB of new bytes, 16 fresh peers at once.
        with open(os.path.join(repo, "asset.bin"), "wb") as f:
            f.write(os.urandom(args.size_mib << 20))
        git(repo, "add", "asset.bin")
        git(repo, "commit", "-qm", "asset")
        out = subprocess.run(push, env=env_for(writer_home), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("push of the asset failed: %s" % out.stderr)
        follower.kill()
        before = status(http_port)["uploaded_bytes"]
        t0 = time.time()
        fetchers = []
        for i in range(args.peers):
            fetchers.append(subprocess.Popen(
                [xus, "fetch", "xus://%s/main" % topic, "--bare", "--repo", os.path.join(work, "peer%d" % i),
                 "--listen", "127.0.0.1:0", *flags],
                env=dict(env_for(os.path.join(work, "peer-home%d" % i)),
                         XUS_LOG=os.environ.get("XUS_BENCH_PEER_LOG", "warn")),
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "peer%d.log" % i), "w")))
        failed = sum(1 for p in fetchers if p.wait(timeout=900) != 0)
        elapsed = time.time() - t0
        uploaded = status(http_port)["uploaded_bytes"] - before
        commit_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(repo)
                           if ".git" not in d for f in fs)
        print("\n%d fresh peers fetch a commit at once (%.1f MiB, %d MiB of it new), master upload cap %s, %d failed:"
              % (args.peers, commit_bytes / 2**20, args.size_mib,
                 "%d KiB/s" % args.master_upload_kib if args.master_upload_kib else "none", failed))
        print("| measure | value |")
        print("| --- | ---: |")
        print("| master upload | %.1f MiB |" % (uploaded / 2**20))
        print("| master upload / commit size | %.2f |" % (uploaded / commit_bytes))
        print("| share of all bytes the peers got that came from the master | %.3f |"
              % (uploaded / (commit_bytes * args.peers)))
        print("| wall clock, all %d fetches | %.1f s |" % (args.peers, elapsed))
    except Exception:
        for log in ("master.log", "follower.log", "peer0.log"):
            path = os.path.join(work, log)
            if os.path.exists(path):
                with open(path) as f:
                    print("--- %s (last lines)\n%s" % (log, "".join(f.readlines()[-15:])), file=sys.stderr)
        raise
    finally:
        for child in children:
            child.kill()
            child.wait()
        if os.environ.get("XUS_BENCH_KEEP"):
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
