#!/usr/bin/env python3
"""DHT benchmarks on a private loopback DHT (nothing leaves 127.0.0.1).

1. Latency: on an N-node DHT (`xus dht serve`), one machine seeds and
   publishes a topic head; then `xus fetch xus://TOPIC/main` runs R times,
   each from a fresh xus home and an empty repository, and the script reports
   p50 and p99 of the time from process start to head resolved, to the first
   peer found on the DHT, and to the metadata received from a connected peer
   (BEP 9 metadata needs a live connection, so this bounds "first peer
   connected" from above). With --silent S, S more nodes join the DHT and
   are stopped (SIGSTOP) once the head is published: they stay in every
   routing table and never answer, as nodes that left do on a real DHT.
2. Idle seed: `xus seed` serving C commits with the DHT on; reports the
   start-up time, resident memory, and CPU use over an idle window after the
   initial announces.

Usage: cargo build --release && benches/dht.py [--runs 50] [--nodes 100]
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_for(home):
    env = dict(os.environ)
    env["XUS_HOME"] = home
    env["XUS_LOOPBACK_ONLY"] = "1"
    for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        env[k] = "bench"
    for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        env[k] = "bench@xus.invalid"
    return env


def git(repo, *args, **kw):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          env=env_for(repo), **kw)


def percentile(values, p):
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))  # nearest rank
    return ordered[min(rank, len(ordered)) - 1]


class Lines:
    """A child's stdout lines, read on a thread."""

    def __init__(self, proc):
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, pred, timeout):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = deadline - time.time()
                if left <= 0:
                    raise RuntimeError("timed out; lines so far: %r" % self.lines[-5:])
                self.cond.wait(left)

    def count(self, pred):
        with self.cond:
            return sum(1 for line in self.lines if pred(line))


def start(cmd, env, **kw):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=kw.pop("stderr", subprocess.DEVNULL),
                            text=True, env=env, **kw)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--xus", default=os.path.join(ROOT, "target/release/xus"))
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--silent", type=int, default=0,
                    help="more nodes that join, then stop answering once the head is published")
    ap.add_argument("--timeout-ms", type=int, default=2000,
                    help="DHT request timeout of the xus processes (xus default 2000)")
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--settle-seconds", type=int, default=120,
                    help="wait after start-up so the first announce round is over")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.xus):
        sys.exit("%s is missing: run cargo build --release first" % args.xus)

    work = tempfile.mkdtemp(prefix="xus-dht-bench-")
    children = []
    try:
        dht = start([args.xus, "dht", "serve", "--bind", "127.0.0.1", "--nodes", str(args.nodes)],
                    env_for(os.path.join(work, "dht-home")))
        children.append(dht)
        dht_lines = Lines(dht)
        first = dht_lines.wait(lambda l: l.startswith("dht "), 120).split()[1]
        deadline = time.time() + 120
        while dht_lines.count(lambda l: l.startswith("dht ")) < args.nodes:
            if time.time() > deadline:
                raise RuntimeError("DHT nodes did not all start")
            time.sleep(0.1)
        silent = None
        if args.silent:
            silent = start([args.xus, "dht", "serve", "--bind", "127.0.0.1", "--nodes",
                            str(args.silent), "--bootstrap", first],
                           env_for(os.path.join(work, "silent-home")))
            children.append(silent)
            silent_lines = Lines(silent)
            while silent_lines.count(lambda l: l.startswith("dht ")) < args.silent:
                if time.time() > deadline:
                    raise RuntimeError("the silent nodes did not all start")
                time.sleep(0.1)
            time.sleep(5)  # they get known around the DHT
        flags = ["--bootstrap", first, "--dht-bind", "127.0.0.1", "--dht-timeout-ms", str(args.timeout_ms)]
        print("DHT: %d nodes on 127.0.0.1 (%d of them silent during the runs), entry %s, "
              "xus request timeout %d ms" % (args.nodes + args.silent, args.silent, first,
                                             args.timeout_ms))
        args.silent_proc = silent

        if not args.skip_latency:
            latency(args, work, flags, children)
        if not args.skip_idle:
            idle(args, work, flags, children)
    finally:
        for child in children:
            child.kill()
            child.wait()
        shutil.rmtree(work, ignore_errors=True)


def latency(args, work, flags, children):
    owner = os.path.join(work, "owner")
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    for i in range(10):
        with open(os.path.join(repo, "file%d" % i), "wb") as f:
            f.write(os.urandom(100_000))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "bench")
    subprocess.run([args.xus, "topic", "new", "bench"], env=env_for(owner), check=True, capture_output=True)
    topic = subprocess.run([args.xus, "topic", "list"], env=env_for(owner), check=True,
                           capture_output=True, text=True).stdout.split()[1]
    seed = start([args.xus, "seed", "--repo", repo, "--listen", "127.0.0.1:0", "--rescan", "1", *flags],
                 env_for(owner))
    children.append(seed)
    Lines(seed).wait(lambda l: l.startswith("listening "), 120)
    subprocess.run([args.xus, "publish", "--repo", repo, "--branch", "main", *flags],
                   env=env_for(owner), check=True, capture_output=True)

    if args.silent_proc is not None:
        os.kill(args.silent_proc.pid, signal.SIGSTOP)
    head, found, meta, total = [], [], [], []
    for i in range(args.runs):
        home = os.path.join(work, "reader%d" % i)
        dest = os.path.join(work, "dest%d" % i)
        t0 = time.time()
        out = subprocess.run([args.xus, "fetch", "xus://%s/main" % topic, "--repo", dest,
                              "--listen", "127.0.0.1:0", *flags],
                             env=env_for(home), capture_output=True, text=True, timeout=300)
        total.append((time.time() - t0) * 1000)
        if out.returncode != 0:
            raise RuntimeError("fetch %d failed: %s" % (i, out.stderr))
        err = out.stderr
        head.append(int(re.search(r"resolved after (\d+) ms", err).group(1)))
        found.append(int(re.search(r"first peer found on the DHT after (\d+) ms", err).group(1)))
        meta.append(int(re.search(r"metadata received from a connected peer after (\d+) ms", err).group(1)))
        shutil.rmtree(dest, ignore_errors=True)
    seed.kill()
    print("\nxus fetch xus://TOPIC/main, %d runs, fresh home and repo each (ms since process start):" % args.runs)
    print("| step | p50 | p99 | min | max |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in (("head resolved", head), ("first peer found on the DHT", found),
                         ("metadata from a connected peer", meta), ("whole fetch (wall clock)", total)):
        print("| %s | %d | %d | %d | %d |" % (name, statistics.median(values), percentile(values, 99),
                                              min(values), max(values)))


def idle(args, work, flags, children):
    """Runs the idle measurement with the DHT on, then off for comparison."""
    repo = make_many_commits(args, work)
    rows = [measure_idle(args, work, repo, flags, "DHT on", children),
            measure_idle(args, work, repo, ["--no-dht"], "DHT off", children)]
    print("\nxus seed serving %d commits (%d s settle, %d s window):" % (args.commits, args.settle_seconds, args.idle_seconds))
    print("| seed | start-up to `listening` | resident memory (max) | CPU in the idle window |")
    print("| --- | ---: | ---: | ---: |")
    for name, startup, rss, cpu in rows:
        print("| %s | %.1f s | %.1f MiB | %.1f %% of one core |" % (name, startup, rss, cpu))


def make_many_commits(args, work):
    repo = os.path.join(work, "many")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    # One fast-import stream: C commits, each changing one small file.
    stream = []
    for i in range(args.commits):
        data = ("commit %d\n" % i).encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"committer bench <bench@xus.invalid> %d +0000\n" % (1700000000 + i))
        stream.append(b"data 2\nc\n")
        stream.append(b"M 100644 inline file%d\n" % (i % 50))
        stream.append(b"data %d\n%s\n" % (len(data), data))
    git(repo, "fast-import", "--quiet", input=b"".join(stream))
    return repo


def measure_idle(args, work, repo, flags, name, children):
    revs = git(repo, "rev-list", "main", text=False).stdout.decode().split()
    assert len(revs) == args.commits, len(revs)
    home = os.path.join(work, "idle-home-" + name.replace(" ", "-"))
    t0 = time.time()
    env = env_for(home)
    env["XUS_LOG"] = "warn,xus=info"
    log_path = os.path.join(work, "seed-%s.err" % name.replace(" ", "-"))
    log = open(log_path, "w")
    seed = start([args.xus, "seed", "--repo", repo, "--listen", "127.0.0.1:0", *flags, *revs],
                 env, stderr=log)
    children.append(seed)
    Lines(seed).wait(lambda l: l.startswith("listening "), 1800)
    startup = time.time() - t0
    time.sleep(args.settle_seconds)
    rounds = re.findall(r"announce round done count=(\d+) seconds=([0-9.]+)", open(log_path).read())
    for count, seconds in rounds:
        print("  %s: announced %s infohashes in %.1f s" % (name, count, float(seconds)))
    c0, w0 = cpu_seconds(seed.pid), time.time()
    rss_samples = []
    while time.time() - w0 < args.idle_seconds:
        rss_samples.append(rss_mib(seed.pid))
        time.sleep(1)
    cpu = (cpu_seconds(seed.pid) - c0) / (time.time() - w0) * 100
    seed.kill()
    seed.wait()
    return (name, startup, max(rss_samples), cpu)


if __name__ == "__main__":
    main()
